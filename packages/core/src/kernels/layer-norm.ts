// LayerNorm's normalization over the last n values of each row, forward and backward (formulas in
// assembly/layer-norm.ts). For float32 operands in this thread's WebAssembly memory the SIMD kernels
// run in place; otherwise the loops below compute the same float64 operations in the same order
// (row sums in two lanes, even and odd columns), so float32 results have the same bits. float64
// results are stored unrounded.

import type { FloatArray } from "../tensor/dtype.js";
import { f32 } from "./activations.js";
import { wasmInPlace } from "./dispatch.js";

// Σ x[base..base+n) as the kernel adds it: even and odd columns apart, then an odd last column.
function rowSum(x: FloatArray, base: number, n: number): number {
  let a0 = 0,
    a1 = 0,
    j = 0;
  for (; j + 2 <= n; j += 2) {
    a0 += x[base + j]!;
    a1 += x[base + j + 1]!;
  }
  let s = a0 + a1;
  if (j < n) s += x[base + j]!;
  return s;
}

function rowRstd(x: FloatArray, base: number, n: number, mu: number, eps: number): number {
  let a0 = 0,
    a1 = 0,
    j = 0;
  for (; j + 2 <= n; j += 2) {
    const c0 = x[base + j]! - mu,
      c1 = x[base + j + 1]! - mu;
    a0 += c0 * c0;
    a1 += c1 * c1;
  }
  let s = a0 + a1;
  if (j < n) {
    const c = x[base + j]! - mu;
    s += c * c;
  }
  return 1 / Math.sqrt(s / n + eps);
}

/** out = (x - μ)/√(var + eps) per row of n values (biased variance); out may be x. */
export function layerNormForward(x: FloatArray, out: FloatArray, rows: number, n: number, eps: number): void {
  const k = wasmInPlace(x, out);
  if (k !== null) {
    k.exports.layerNormForward(x.byteOffset, out.byteOffset, rows, n, eps);
    return;
  }
  const is32 = out instanceof Float32Array;
  for (let r = 0; r < rows; r++) {
    const base = r * n;
    const mu = rowSum(x, base, n) / n;
    const rstd = rowRstd(x, base, n, mu, eps);
    for (let j = 0; j < n; j++) {
      const v = (x[base + j]! - mu) * rstd;
      out[base + j] = is32 ? f32(v) : v;
    }
  }
}

/** out = r·(g - mean(g) - x̂·mean(g·x̂)) per row of n values, from the normalization's input x. */
export function layerNormBackward(
  g: FloatArray,
  x: FloatArray,
  out: FloatArray,
  rows: number,
  n: number,
  eps: number,
): void {
  const k = wasmInPlace(g, x, out);
  if (k !== null) {
    k.exports.layerNormBackward(g.byteOffset, x.byteOffset, out.byteOffset, rows, n, eps);
    return;
  }
  const is32 = out instanceof Float32Array;
  for (let r = 0; r < rows; r++) {
    const base = r * n;
    const mu = rowSum(x, base, n) / n;
    const rstd = rowRstd(x, base, n, mu, eps);
    let a0 = 0,
      a1 = 0,
      j = 0;
    for (; j + 2 <= n; j += 2) {
      a0 += g[base + j]! * ((x[base + j]! - mu) * rstd);
      a1 += g[base + j + 1]! * ((x[base + j + 1]! - mu) * rstd);
    }
    let gx = a0 + a1;
    if (j < n) gx += g[base + j]! * ((x[base + j]! - mu) * rstd);
    const gMean = rowSum(g, base, n) / n,
      a = gx / n;
    for (j = 0; j < n; j++) {
      const xh = (x[base + j]! - mu) * rstd;
      const v = rstd * (g[base + j]! - gMean - xh * a);
      out[base + j] = is32 ? f32(v) : v;
    }
  }
}
