// Softmax over the last dimension and its backward. For float32 operands in this thread's
// WebAssembly memory (inside the trainer's step region) the SIMD kernels of assembly/softmax.ts
// run in place; other float32 operands take the JavaScript twins below, which give the same bits
// (the same float64 operations in the same order, the sum of exponentials in two lanes as the
// kernel adds them). float64 operands take the plain loops (Math.exp, sequential sums).

import type { FloatArray } from "../tensor/dtype.js";
import { expF32Of64, f32 } from "./activations.js";
import { wasmInPlace } from "./dispatch.js";

/**
 * In place over `s` ([rows, cols] blocks of `l` rows): s ← softmax(scale·s + bias) per row, with
 * column j > row i masked when `isCausal`. A row whose scores are all -inf gives 0; a NaN score gives
 * a NaN row. float32 results below FLT_MIN are stored as zero.
 */
export function softmaxRows(
  s: FloatArray,
  bias: FloatArray | null,
  rows: number,
  l: number,
  cols: number,
  scale: number,
  isCausal: boolean,
): void {
  if (!(s instanceof Float32Array)) {
    softmaxRows64(s, bias, rows, l, cols, scale, isCausal);
    return;
  }
  const k = wasmInPlace(s, bias ?? s);
  if (k !== null) {
    const mark = k.scratchMark();
    try {
      const scratch = k.scratchAlloc(Math.max(cols, 2) * 8, 16);
      const b = bias === null ? 0 : bias.byteOffset;
      k.exports.softmaxRows(s.byteOffset, b, s.byteOffset, scratch, rows, cols, l, scale, isCausal ? 1 : 0);
    } finally {
      k.scratchReset(mark);
    }
    return;
  }
  softmaxRows32(s, bias, rows, l, cols, scale, isCausal);
}

// The twin of the SIMD kernel, lane for lane.
function softmaxRows32(
  s: Float32Array,
  bias: FloatArray | null,
  rows: number,
  l: number,
  cols: number,
  scale: number,
  isCausal: boolean,
): void {
  const e = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    const limit = isCausal ? Math.min((r % l) + 1, cols) : cols;
    const v = (j: number) => (bias === null ? scale * s[base + j]! : scale * s[base + j]! + bias[base + j]!);
    let m0 = -Infinity,
      m1 = -Infinity,
      j = 0;
    for (; j + 2 <= limit; j += 2) {
      m0 = Math.max(m0, v(j)); // as f64x2.max: NaN wins, +0 above -0
      m1 = Math.max(m1, v(j + 1));
    }
    let m = m0;
    if (m1 > m || Number.isNaN(m1)) m = m1;
    if (j < limit) {
      const last = v(j);
      if (last > m || Number.isNaN(last)) m = last;
    }
    if (m === -Infinity) {
      s.fill(0, base, base + cols);
      continue;
    }
    let a0 = 0,
      a1 = 0;
    for (j = 0; j + 2 <= limit; j += 2) {
      e[j] = expF32Of64(Math.max(v(j) - m, -700));
      e[j + 1] = expF32Of64(Math.max(v(j + 1) - m, -700));
      a0 += e[j]!;
      a1 += e[j + 1]!;
    }
    let total = a0 + a1;
    if (j < limit) {
      e[j] = expF32Of64(Math.max(v(j) - m, -700));
      total += e[j]!;
    }
    const inv = 1 / total;
    for (j = 0; j < limit; j++) s[base + j] = f32(e[j]! * inv);
    s.fill(0, base + limit, base + cols);
  }
}

function softmaxRows64(
  s: FloatArray,
  bias: FloatArray | null,
  rows: number,
  l: number,
  cols: number,
  scale: number,
  isCausal: boolean,
): void {
  const x = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    const i = r % l;
    let m = -Infinity;
    for (let j = 0; j < cols; j++) {
      const v = isCausal && j > i ? -Infinity : scale * s[base + j]! + (bias === null ? 0 : bias[base + j]!);
      x[j] = v;
      if (v > m || Number.isNaN(v)) m = v;
    }
    if (m === -Infinity) {
      s.fill(0, base, base + cols);
      continue;
    }
    let total = 0;
    for (let j = 0; j < cols; j++) {
      const e = Math.exp(x[j]! - m);
      x[j] = e;
      total += e;
    }
    for (let j = 0; j < cols; j++) s[base + j] = x[j]! / total;
  }
}

/** out = p·(g - Σ_row g·p) over rows × cols row-major g and p: softmax's backward from its output p. */
export function softmaxBackwardRows(g: FloatArray, p: FloatArray, out: FloatArray, rows: number, cols: number): void {
  const k = wasmInPlace(g, p, out);
  if (k !== null) {
    k.exports.softmaxBackward(g.byteOffset, p.byteOffset, out.byteOffset, rows, cols);
    return;
  }
  const is32 = out instanceof Float32Array;
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let s = 0;
    for (let j = 0; j < cols; j++) s += is32 ? f32(g[base + j]! * p[base + j]!) : g[base + j]! * p[base + j]!;
    if (is32) s = Math.fround(s);
    for (let j = 0; j < cols; j++) {
      const i = base + j;
      out[i] = is32 ? f32(p[i]! * f32(g[i]! - s)) : p[i]! * (g[i]! - s);
    }
  }
}

/**
 * Log-softmax over rows × cols row-major float32 x into out by the SIMD kernels when both lie in
 * this thread's wasm memory (false, doing nothing, otherwise); `finishRow(r)` computes each row
 * whose max is not finite (NaN and ±inf results) afterwards. Bits of the float32 path of the op.
 */
export function logSoftmaxInWasm(
  x: FloatArray,
  out: FloatArray,
  rows: number,
  cols: number,
  finishRow: (r: number) => void,
): boolean {
  const k = wasmInPlace(x, out);
  if (k === null || rows * 16 + 16 > k.scratchFree()) return false;
  const mark = k.scratchMark();
  const left: number[] = [];
  try {
    const at = k.scratchAlloc(rows * 16, 16);
    const stats = new Float64Array(k.buffer, at, rows * 2);
    k.exports.logSoftmaxStats(x.byteOffset, at, rows, cols);
    for (let r = 0; r < rows; r++) {
      const m = stats[2 * r]!;
      if (Number.isFinite(m)) stats[2 * r] = Math.log(stats[2 * r + 1]!) + m;
      else left.push(r);
    }
    k.exports.logSoftmaxApply(x.byteOffset, at, out.byteOffset, rows, cols);
  } finally {
    k.scratchReset(mark);
  }
  for (const r of left) finishRow(r);
  return true;
}

/**
 * out = g - exp(y)·Σ g over rows × cols row-major float32 by the SIMD kernel when all three lie in
 * wasm memory (false otherwise); `finishRow(r)` computes each row holding a y > 0 or NaN afterwards.
 */
export function logSoftmaxBackwardInWasm(
  g: FloatArray,
  y: FloatArray,
  out: FloatArray,
  rows: number,
  cols: number,
  finishRow: (r: number) => void,
): boolean {
  const k = wasmInPlace(g, y, out);
  if (k === null || rows * 4 + 16 > k.scratchFree()) return false;
  const mark = k.scratchMark();
  const left: number[] = [];
  try {
    const at = k.scratchAlloc(rows * 4, 16);
    k.exports.logSoftmaxBackward(g.byteOffset, y.byteOffset, out.byteOffset, at, rows, cols);
    const flags = new Int32Array(k.buffer, at, rows);
    for (let r = 0; r < rows; r++) if (flags[r] !== 0) left.push(r);
  } finally {
    k.scratchReset(mark);
  }
  for (const r of left) finishRow(r);
  return true;
}
