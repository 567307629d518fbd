// @threadgrad/export: trained models as ONNX graphs and safetensors weights. MIT licensed.
export { exportOnnx, saveOnnx, ONNX_IR_VERSION, ONNX_OPSET, type OnnxExportOptions, type Scaling } from "./onnx.js";
export { toSafetensors, saveSafetensors, type SafetensorsOptions } from "./safetensors.js";
export type { WriteOptions } from "./write-file.js";
