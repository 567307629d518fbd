import type { DType, FloatArray } from "../tensor/dtype.js";
import { nativeBlas } from "./blas.js";
import { wasmServes } from "./dispatch.js";
import { wasmMatmulKernel } from "./wasm/matmul-kernel.js";

/**
 * `c = op(a) · op(b)` for row-major matrices, where op transposes when the flag is set:
 * op(a) is m×k, op(b) is k×n, c is m×n and is overwritten. Offsets let batched callers address
 * one matrix of a larger buffer without making views.
 */
export type MatmulKernel = (
  a: FloatArray,
  aOff: number,
  b: FloatArray,
  bOff: number,
  c: FloatArray,
  cOff: number,
  m: number,
  k: number,
  n: number,
  transA: boolean,
  transB: boolean,
) => void;

// The plain-JavaScript kernel: transposed operands are first packed into a row-major scratch copy
// (O(mk) work against O(mkn)), then one row-saxpy kernel runs that updates four rows of c per load
// of a b element, in column blocks of 256 so the four c row pieces stay in L1.
function matmulSource(): string {
  return `return function matmul(a, aOff, b, bOff, c, cOff, m, k, n, transA, transB) {
    if (transA) { a = transposeCopy(a, aOff, k, m, new a.constructor(m * k)); aOff = 0; }
    if (transB) { b = transposeCopy(b, bOff, n, k, new b.constructor(k * n)); bOff = 0; }
    const JB = 256;
    let i = 0;
    for (; i + 4 <= m; i += 4) {
      const c0 = cOff + i * n, c1 = c0 + n, c2 = c1 + n, c3 = c2 + n;
      const a0r = aOff + i * k, a1r = a0r + k, a2r = a1r + k, a3r = a2r + k;
      for (let j0 = 0; j0 < n; j0 += JB) {
        const j1 = Math.min(n, j0 + JB);
        for (let j = j0; j < j1; j++) { c[c0 + j] = 0; c[c1 + j] = 0; c[c2 + j] = 0; c[c3 + j] = 0; }
        for (let p = 0; p < k; p++) {
          const x0 = a[a0r + p], x1 = a[a1r + p], x2 = a[a2r + p], x3 = a[a3r + p];
          const br = bOff + p * n;
          for (let j = j0; j < j1; j++) {
            const y = b[br + j];
            c[c0 + j] += x0 * y; c[c1 + j] += x1 * y; c[c2 + j] += x2 * y; c[c3 + j] += x3 * y;
          }
        }
      }
    }
    for (; i < m; i++) {
      const cr = cOff + i * n, ar = aOff + i * k;
      for (let j = 0; j < n; j++) c[cr + j] = 0;
      for (let p = 0; p < k; p++) {
        const x = a[ar + p], br = bOff + p * n;
        for (let j = 0; j < n; j++) c[cr + j] += x * b[br + j];
      }
    }
  }`;
}

// Transposes the rows×cols matrix at src[off..] into dst (cols×rows).
function transposeCopy(src: FloatArray, off: number, rows: number, cols: number, dst: FloatArray): FloatArray {
  const B = 32;
  for (let r0 = 0; r0 < rows; r0 += B) {
    const r1 = Math.min(rows, r0 + B);
    for (let c0 = 0; c0 < cols; c0 += B) {
      const c1 = Math.min(cols, c0 + B);
      for (let r = r0; r < r1; r++) for (let q = c0; q < c1; q++) dst[q * rows + r] = src[off + r * cols + q]!;
    }
  }
  return dst;
}

const kernels = new Map<DType, MatmulKernel>();

/**
 * The matmul kernel for a dtype: float32 follows the kernel backend (backend.ts), and under 'wasm'
 * runs on the native BLAS where one serves this thread (blas.ts), else on the WebAssembly SIMD
 * kernel; float64 always runs in JavaScript (gradcheck relies on it).
 */
export function matmulKernel(dtype: DType): MatmulKernel {
  const js = jsMatmulKernel(dtype);
  if (!wasmServes(dtype)) return js;
  return nativeBlas() !== null ? blasMatmul : wasmMatmulKernel(js);
}

// The native BLAS behind MatmulKernel's signature: operands are used where they lie, in or out of
// WebAssembly memory, with no copies.
const blasMatmul: MatmulKernel = (a, aOff, b, bOff, c, cOff, m, k, n, transA, transB) => {
  const blas = nativeBlas();
  if (blas === null || !(a instanceof Float32Array && b instanceof Float32Array && c instanceof Float32Array)) {
    return jsMatmulKernel(dtypeOf(c))(a, aOff, b, bOff, c, cOff, m, k, n, transA, transB);
  }
  blas.sgemm(transA, transB, m, n, k, a, aOff, transA ? m : k, b, bOff, transB ? k : n, c, cOff, n);
};

const dtypeOf = (c: FloatArray): DType => (c instanceof Float32Array ? "float32" : "float64");

/** The plain-JavaScript kernel; one independently compiled copy per dtype keeps each monomorphic. */
export function jsMatmulKernel(dtype: DType): MatmulKernel {
  let k = kernels.get(dtype);
  if (k === undefined) {
    const t = new Function(`return ${transposeCopy.toString()}`)();
    k = new Function("transposeCopy", matmulSource())(t) as MatmulKernel;
    kernels.set(dtype, k);
  }
  return k;
}
