// threadgrad WebAssembly SIMD kernels (float32), compiled by scripts/build-wasm.mjs into
// dist/kernels.wasm. MIT licensed, like the rest of @threadgrad/core.
//
// Memory model. The module imports one SHARED memory (env.memory) and owns nothing in it: no data
// segments, no allocator, no global that points into memory. Every thread instantiates the module
// on the same memory, and instantiation would re-run data segments and heap set-up, overwriting what
// the other threads use. So every argument is a BYTE OFFSET chosen by the JavaScript side
// (src/kernels/wasm/wasm-kernels.ts), scratch included. Element counts and indices are in floats.
// Only `const` numbers live at the top level: the compiler inlines them (no globals are emitted).
//
// Elementwise and optimizer kernels flush subnormal results to 0 (lanes.ts), as the JavaScript
// elementwise ops do for float32; matmul does not (its operands come flushed).
//
// Files: matmul.ts (packed, tiled f32x4 matmul), elementwise.ts (bias, relu, column sums,
// add/sub/mul with row and scalar broadcasts),
// step.ts (all-reduce sum, squared norm), update-f32.ts (Adam/AdamW, SGD, RMSprop and Adagrad
// updates in f32, four lanes), conv.ts (convolution as per-sample im2col into scratch + the
// matmul's gemm, or direct kernels for small C_in·kh·kw), pool.ts (max pooling's window argmax, gather and scatter), activations.ts and
// gelu.ts (tanh, sigmoid and GELU forward, backward and double backward; their f64 math in
// activation-math.ts), softmax.ts (softmax over the last dim and its backward), layer-norm.ts
// (LayerNorm's normalization and its backward), index-add.ts (the embedding's gradient), lanes.ts
// (flushing and f32 <-> f64 lane helpers).

export { matmul, matmulPackBytes, matmulStrided } from "./matmul";
export { addBias, binaryF32, reluForward, reluBackward, sumRows } from "./elementwise";
export { sumSlices, sumSquares } from "./step";
export { adamScratchBytes, adamUpdateF32, adagradUpdateF32, rmspropUpdateF32, sgdUpdateF32 } from "./update-f32";
export { convDirect, convForward, convInputGrad, convWeightGrad, convScratchBytes } from "./conv";
export { maxPoolIndices, poolGather, poolScatter } from "./pool";
export {
  tanhForward,
  tanhBackward,
  tanhDoubleBackward,
  sigmoidForward,
  sigmoidBackward,
  sigmoidDoubleBackward,
} from "./activations";
export {
  geluForward,
  geluBackward,
  geluDoubleBackward,
  geluTanhForward,
  geluTanhBackward,
  geluTanhDoubleBackward,
} from "./gelu";
export { softmaxRows, softmaxBackward, logSoftmaxStats, logSoftmaxApply, logSoftmaxBackward } from "./softmax";
export { layerNormForward, layerNormBackward } from "./layer-norm";
export { indexAddRows } from "./index-add";
