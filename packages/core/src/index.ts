// @threadgrad/core: tensors, define-by-run autograd, nn modules and losses. MIT licensed.
import "./ops/methods.js";

export { Tensor, isTensor, TENSOR_BRAND, type GradHook } from "./tensor/tensor.js";
export {
  type DType,
  type FloatDType,
  type TypedArray,
  type FloatArray,
  FLT_MIN,
  setDefaultDtype,
  getDefaultDtype,
  promoteTypes,
} from "./tensor/dtype.js";
export { type Shape, broadcastShapes, numelOf } from "./tensor/shape.js";
export * from "./tensor/creation.js";
export {
  Generator,
  CounterGenerator,
  mulberry32,
  manualSeed,
  defaultGenerator,
  setSampleContext,
  getSampleContext,
  type GeneratorState,
} from "./tensor/random.js";
export { noGrad, enableGrad, isGradEnabled, setGradEnabled } from "./autograd/grad-mode.js";
export { grad, backward, type GradOptions, type BackwardOptions } from "./autograd/engine.js";
export { Node } from "./autograd/node.js";
export { Function, FunctionCtx } from "./autograd/function.js";
export { vjp, jacobian, hessian, hvp } from "./autograd/functional.js";
export { gradcheck, gradgradcheck, type GradcheckOptions } from "./autograd/gradcheck.js";
export { OPS, defineOp, record, type TensorLike } from "./ops/op.js";
export {
  add,
  sub,
  mul,
  div,
  pow,
  neg,
  exp,
  log,
  log1p,
  sqrt,
  abs,
  sign,
  erf,
  tanh,
  sigmoid,
  relu,
  softplus,
  maximum,
  minimum,
  clamp,
  where,
  to,
  clone,
} from "./ops/elementwise.js";
export { sum, mean, max, min, logsumexp, argmax, argmin, sumTo } from "./ops/reduce.js";
export { gelu, softmax, logSoftmax, variance as var, std, norm } from "./ops/composite.js";
export {
  reshape,
  view,
  permute,
  transpose,
  narrow,
  slice,
  cat,
  stack,
  expand,
  broadcastTo,
  squeeze,
  unsqueeze,
  flatten,
} from "./ops/shape.js";
export { gather, scatterAdd, indexSelect, indexAdd } from "./ops/indexing.js";
export { mm, matmul, dot, outer } from "./ops/linalg.js";
export { conv1d, conv2d } from "./ops/conv.js";
export { maxPool2d, avgPool2d, adaptiveAvgPool2d } from "./ops/pool.js";
export { batchNorm, groupNorm, setBatchNormReducer, type BatchNormReducer } from "./ops/norm.js";
export { maskedFill, tril, triu } from "./ops/masking.js";
export { split, chunk } from "./ops/split.js";
export { eq, ne, lt, le, gt, ge, logicalAnd, logicalOr } from "./ops/compare.js";
export * as nn from "./nn/index.js";
export * as F from "./nn/functional.js";
export { setKernelBackend, getKernelBackend, type KernelBackend } from "./kernels/backend.js";
export { setNativeBlas, nativeBlasStatus, describeMatmul, type BlasInfo } from "./kernels/blas.js";
export { createWasmKernels, type WasmKernels, type Region } from "./kernels/wasm/wasm-kernels.js";
export {
  adamScalarsF32,
  adamUpdateF32,
  adagradUpdateF32,
  rmspropUpdateF32,
  sgdUpdateF32,
  type AdamF32Options,
  type AdamF32Scalars,
  type AdagradF32Options,
  type RmspropF32Options,
  type SgdF32Options,
} from "./kernels/update-f32.js";
export { setDefaultWasmKernels } from "./kernels/wasm/matmul-kernel.js";
export type { WasmMemory } from "./kernels/wasm/loader.js";
export { isWasmSimdSupported } from "./kernels/wasm/loader.js";
export { runInStepRegion } from "./kernels/wasm/step-region.js";
export { usesRelaxedSimd } from "./kernels/wasm/loader.js";
export { segmentSum, segmentSumSquares } from "./kernels/segment.js";
