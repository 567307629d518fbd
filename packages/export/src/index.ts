export { exportOnnx, saveOnnx, ONNX_IR_VERSION, ONNX_OPSET, type OnnxExportOptions } from "./onnx.js";
export type { WriteOptions } from "./write-file.js";
