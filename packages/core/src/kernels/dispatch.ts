import type { DType, FloatArray } from "../tensor/dtype.js";
import { getKernelBackend } from "./backend.js";
import { currentWasmKernels } from "./wasm/matmul-kernel.js";
import type { WasmKernels } from "./wasm/wasm-kernels.js";

// Every kernel that has a WebAssembly and a JavaScript implementation (matmul.ts, fused.ts) picks
// one here, once per call, with plain branches: no closure and no array per call, so the choice
// costs nothing next to the loops. Both implementations give the same bits (matmul within float32
// rounding), so which one runs changes speed, not results.

/**
 * True when kernels over `dtype` run in WebAssembly: float32 under the 'wasm' backend. float64
 * always runs in JavaScript (gradcheck relies on it).
 * @example const kernel = wasmServes(dtype) ? wasmMatmulKernel(js) : js;
 */
export function wasmServes(dtype: DType): boolean {
  return dtype === "float32" && getKernelBackend() === "wasm";
}

/**
 * This thread's WebAssembly kernels when float32 runs there and every operand is a Float32Array lying
 * in their memory (inside the trainer's step region), so the SIMD kernel can work on them in place
 * by byte offset; null when the JavaScript twin must run. Fixed arity: no rest array per call.
 * @example const k = wasmInPlace(x, out); if (k !== null) k.exports.reluForward(x.byteOffset, out.byteOffset, n);
 */
export function wasmInPlace(a: FloatArray, b: FloatArray, c?: FloatArray): WasmKernels | null {
  if (!(a instanceof Float32Array) || !wasmServes("float32")) return null;
  const k = currentWasmKernels();
  if (k === undefined || !k.contains(a) || !(b instanceof Float32Array) || !k.contains(b)) return null;
  if (c !== undefined && !(c instanceof Float32Array && k.contains(c))) return null;
  return k;
}
