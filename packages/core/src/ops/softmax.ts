import { FLT_MIN, type FloatArray, arrayFor, isFloat } from "../tensor/dtype.js";
import { fmtShape, normDims } from "../tensor/shape.js";
import { Tensor } from "../tensor/tensor.js";
import { exp, mul, neg, sub } from "./elementwise.js";
import { noGrad } from "../autograd/grad-mode.js";
import { expF32 } from "../kernels/activations.js";
import { logSoftmaxBackwardInWasm, logSoftmaxInWasm, softmaxBackwardRows, softmaxRows } from "../kernels/softmax.js";
import { defineOp, record } from "./op.js";
import { sum } from "./reduce.js";

// log-softmax as one op with fused kernels: forward is one pass per row (max, sum of exponentials,
// subtract), backward one op g - exp(y)·Σg, itself differentiable (its backward is written with
// ops), so gradients of every order still work. Rows run along `dim` of a contiguous tensor viewed
// as [outer, classes, inner]. Float math in float64; float32 gradients are flushed like every
// float32 elementwise result (|v| < FLT_MIN stored as a zero of the same sign).

function rowsOf(shape: readonly number[], d: number): [number, number, number] {
  if (shape.length === 0) return [1, 1, 1]; // a 0-d tensor is one row of one class, as in PyTorch
  const outer = shape.slice(0, d).reduce((a, s) => a * s, 1);
  const inner = shape.slice(d + 1).reduce((a, s) => a * s, 1);
  return [outer, shape[d]!, inner];
}

function oneDim(x: Tensor, dim: number, op: string): number {
  if (!isFloat(x.dtype)) throw new Error(`${op}: expected a floating point tensor, got ${x.dtype}`);
  if (typeof dim !== "number")
    throw new Error(`${op}: dim must be one dimension (a number), got ${JSON.stringify(dim)}`);
  if (x.ndim === 0) {
    if (dim !== 0 && dim !== -1)
      throw new Error(`${op}: dim ${dim} is out of range for a 0-d tensor (expected 0 or -1)`);
    return 0;
  }
  return normDims(dim, x.ndim, op)[0]!;
}

/**
 * out = x - log Σ exp(x) along the rows. A row that is all -inf, or holds NaN, gives NaN; in a row
 * holding +inf that entry gives NaN and the finite ones -inf (as in PyTorch). float32 rows over the
 * last dim in wasm memory run on the SIMD kernels (kernels/softmax.ts), whose bits the float32 path
 * here gives: e^(x - max) by expF32 of the float32 difference where the max is finite.
 */
function logSoftmaxKernel(x: FloatArray, out: FloatArray, outer: number, c: number, inner: number): void {
  const is32 = out instanceof Float32Array;
  const row = (o: number, i: number) => logSoftmaxRow(x, out, o * c * inner + i, c, inner, is32);
  if (is32 && inner === 1 && logSoftmaxInWasm(x, out, outer, c, (o) => row(o, 0))) return;
  for (let o = 0; o < outer; o++) for (let i = 0; i < inner; i++) row(o, i);
}

function logSoftmaxRow(x: FloatArray, out: FloatArray, base: number, c: number, inner: number, is32: boolean): void {
  let m = -Infinity;
  for (let j = 0; j < c; j++) {
    const v = x[base + j * inner]!;
    if (v > m || Number.isNaN(v)) m = v;
  }
  const shift = Number.isFinite(m) ? m : 0;
  let s = 0;
  if (is32 && Number.isFinite(m)) for (let j = 0; j < c; j++) s += expF32(Math.fround(x[base + j * inner]! - m), 0);
  else for (let j = 0; j < c; j++) s += Math.exp(x[base + j * inner]! - shift);
  const lse = Math.log(s) + shift;
  for (let j = 0; j < c; j++) {
    const r = x[base + j * inner]! - lse;
    out[base + j * inner] = is32 && Math.abs(r) < FLT_MIN ? r * 0 : r;
  }
}

/**
 * out = g - exp(y)·Σ g along the rows (the gradient of log-softmax with output y). float32 rows
 * whose y are all <= 0 take exp(y) from expF32, as the SIMD kernel (which serves rows over the last
 * dim in wasm memory) does; other rows Math.exp.
 */
function logSoftmaxBackwardKernel(
  g: FloatArray,
  y: FloatArray,
  out: FloatArray,
  outer: number,
  c: number,
  inner: number,
): void {
  const is32 = out instanceof Float32Array;
  const row = (o: number, i: number) => logSoftmaxBackwardRow(g, y, out, o * c * inner + i, c, inner, is32);
  if (is32 && inner === 1 && logSoftmaxBackwardInWasm(g, y, out, outer, c, (o) => row(o, 0))) return;
  for (let o = 0; o < outer; o++) for (let i = 0; i < inner; i++) row(o, i);
}

function logSoftmaxBackwardRow(
  g: FloatArray,
  y: FloatArray,
  out: FloatArray,
  base: number,
  c: number,
  inner: number,
  is32: boolean,
): void {
  let s = 0;
  for (let j = 0; j < c; j++) s += g[base + j * inner]!;
  let logProbs = is32;
  for (let j = 0; logProbs && j < c; j++) {
    const v = y[base + j * inner]!;
    if (v > 0 || Number.isNaN(v)) logProbs = false;
  }
  for (let j = 0; j < c; j++) {
    const k = base + j * inner;
    const e = logProbs ? expF32(y[k]!, 0) : Math.exp(y[k]!);
    const r = g[k]! - e * s;
    out[k] = is32 && Math.abs(r) < FLT_MIN ? r * 0 : r;
  }
}

/** log(softmax(x)) along `dim` (default the last), computed stably in one pass per row. */
export const logSoftmax = defineOp("logSoftmax", (x: Tensor, dim = -1): Tensor => {
  const d = oneDim(x, dim, "logSoftmax");
  const [outer, c, inner] = rowsOf(x.shape, d);
  const out = arrayFor(x.dtype, x.numel) as FloatArray;
  logSoftmaxKernel(x.data as FloatArray, out, outer, c, inner);
  const y = new Tensor(out, x.shape);
  return record(y, "logSoftmax", [x], (g) => [logSoftmaxBackward(g, y, d)], [y]);
});

/** The gradient of logSoftmax: g - exp(y)·Σ_dim g, for its output y; differentiable in g and y. */
export const logSoftmaxBackward = defineOp("logSoftmaxBackward", (g: Tensor, y: Tensor, dim: number): Tensor => {
  const d = oneDim(y, dim, "logSoftmaxBackward");
  if (g.shape.join() !== y.shape.join() || g.dtype !== y.dtype) {
    throw new Error(
      `logSoftmaxBackward: g ${fmtShape(g.shape)} ${g.dtype} must match y ${fmtShape(y.shape)} ${y.dtype}`,
    );
  }
  const [outer, c, inner] = rowsOf(y.shape, d);
  const out = arrayFor(y.dtype, y.numel) as FloatArray;
  logSoftmaxBackwardKernel(g.data as FloatArray, y.data as FloatArray, out, outer, c, inner);
  return record(
    new Tensor(out, y.shape),
    "logSoftmaxBackward",
    [g, y],
    (h, needs) => {
      // out_j = g_j - e_j·Σ_k g_k with e = exp(y):  ∂/∂g = h - Σ_j h_j e_j,  ∂/∂y = -h·e·Σ_k g_k
      const he = mul(h, exp(y));
      return [needs[0] ? sub(h, sum(he, d, true)) : null, needs[1] ? neg(mul(he, sum(g, d, true))) : null];
    },
    [g, y],
  );
});

/** softmax along `dim` (default the last): one fused pass per row over the last dim, else exp(logSoftmax). */
export const softmax = defineOp("softmax", (x: Tensor, dim = -1): Tensor => {
  const d = oneDim(x, dim, "softmax");
  const [outer, c, inner] = rowsOf(x.shape, d);
  if (inner !== 1) return exp(logSoftmax(x, d));
  const out = arrayFor(x.dtype, x.numel, false) as FloatArray;
  out.set(x.data as FloatArray);
  softmaxRows(out, null, outer, 1, c, 1, false);
  const p = new Tensor(out, x.shape);
  return record(p, "softmax", [x], (g) => [softmaxBackward(g, p, d)], [p]);
});

/** The gradient of softmax: p·(g - Σ_dim g·p), for its output p; differentiable in g and p. */
export const softmaxBackward = defineOp("softmaxBackward", (g: Tensor, p: Tensor, dim = -1): Tensor => {
  const d = oneDim(p, dim, "softmaxBackward");
  if (g.shape.join() !== p.shape.join() || g.dtype !== p.dtype) {
    throw new Error(`softmaxBackward: g ${fmtShape(g.shape)} ${g.dtype} must match p ${fmtShape(p.shape)} ${p.dtype}`);
  }
  const [outer, c, inner] = rowsOf(p.shape, d);
  let out: Tensor;
  if (inner === 1) {
    const data = arrayFor(p.dtype, p.numel, false) as FloatArray;
    softmaxBackwardRows(g.data as FloatArray, p.data as FloatArray, data, outer, c);
    out = new Tensor(data, p.shape);
  } else {
    out = noGrad(() => mul(p, sub(g, sum(mul(g, p), d, true))));
  }
  return record(
    out,
    "softmaxBackward",
    [g, p],
    (h, needs) => [
      // symmetric in g and h: ∂/∂g = p·(h - Σ h·p);  ∂/∂p = h·(g - Σ g·p) - g·Σ h·p
      needs[0] ? softmaxBackward(h, p, d) : null,
      needs[1] ? sub(mul(h, sub(g, sum(mul(g, p), d, true))), mul(g, sum(mul(h, p), d, true))) : null,
    ],
    [g, p],
  );
});
