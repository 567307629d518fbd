import type { MatmulKernel } from "../matmul.js";
import { createWasmKernels, type WasmKernels } from "./wasm-kernels.js";

let kernels: WasmKernels | undefined;

/**
 * This thread's own kernels instance behind the backend switch: a private memory whose 64 MiB of
 * scratch holds copies of operands that live outside it (today's tensors).
 * @example defaultWasmKernels().matmulF32(a, b, c, m, k, n)
 */
export function defaultWasmKernels(): WasmKernels {
  kernels ??= createWasmKernels();
  return kernels;
}

/** This thread's kernels instance if one exists already (never creates one). */
export function currentWasmKernels(): WasmKernels | undefined {
  return kernels;
}

/**
 * Makes `k` this thread's kernels instance, e.g. one on a trainer's shared memory, so that operands
 * already in that memory (parameters, gradients) are used in place instead of copied.
 */
export function setDefaultWasmKernels(k: WasmKernels): void {
  kernels = k;
}

let adapter: MatmulKernel | undefined;

/**
 * The WebAssembly matmul behind MatmulKernel's signature (element offsets). Calls it cannot serve
 * go to `fallback`: float64 arrays, or operands too large for the scratch.
 */
export function wasmMatmulKernel(fallback: MatmulKernel): MatmulKernel {
  adapter ??= (a, aOff, b, bOff, c, cOff, m, k, n, transA, transB) => {
    if (!(a instanceof Float32Array && b instanceof Float32Array && c instanceof Float32Array)) {
      return fallback(a, aOff, b, bOff, c, cOff, m, k, n, transA, transB);
    }
    const wk = defaultWasmKernels();
    const av = a.subarray(aOff, aOff + m * k),
      bv = b.subarray(bOff, bOff + k * n),
      cv = c.subarray(cOff, cOff + m * n);
    if (wk.matmulScratchBytes(av, bv, cv, m, k, n) > wk.scratchFree()) {
      return fallback(a, aOff, b, bOff, c, cOff, m, k, n, transA, transB);
    }
    wk.matmulF32(av, bv, cv, m, k, n, transA, transB);
  };
  return adapter;
}
