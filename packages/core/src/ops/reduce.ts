import { sumRowsInWasm } from "../kernels/fused.js";
import { reduceKernel } from "../kernels/reduce.js";
import { type DType, arrayFor, isFloat } from "../tensor/dtype.js";
import { broadcastStrides, fmtShape, normDims, numelOf, shapeEq } from "../tensor/shape.js";
import { Tensor } from "../tensor/tensor.js";
import { div, exp, mul, sub, to } from "./elementwise.js";
import { defineOp, floatDtypeOf, record } from "./op.js";
import { broadcastData, broadcastTo, reshape } from "./shape.js";

export type Dims = number | readonly number[] | undefined;

/** Output shapes of a reduction over `dims`: with kept size-1 dims, and as returned. */
export function reducedShapes(shape: readonly number[], dims: number[], keepdim: boolean): [number[], number[]] {
  const kept = shape.map((d, i) => (dims.includes(i) ? 1 : d));
  return [kept, keepdim ? kept : shape.filter((_, i) => !dims.includes(i))];
}

const LOWEST: Record<DType, number> = { float32: -Infinity, float64: -Infinity, int32: -2147483648, bool: 0 };
const HIGHEST: Record<DType, number> = { float32: Infinity, float64: Infinity, int32: 2147483647, bool: 1 };

/** Rows of x summed by the reduction to keptShape, when it keeps only trailing dims (else null). */
function leadingSplit(shape: readonly number[], keptShape: readonly number[]): [number, number] | null {
  let p = 0;
  while (p < shape.length && keptShape[p] === 1) p++;
  for (let i = p; i < shape.length; i++) if (keptShape[i] !== shape[i]) return null;
  const m = shape.slice(0, p).reduce((a, d) => a * d, 1);
  return [m, numelOf(shape) / Math.max(m, 1)];
}

// float32 sums accumulate in float64 and round once at the end, so long sums do not drift.
function rawReduce(op: "sum" | "max" | "min", x: Tensor, keptShape: number[]): Tensor {
  if (op === "sum" && x.dtype === "float32" && x.numel > 0) {
    // Over leading dims only (a bias gradient, a total): the SIMD kernel on wasm operands, same bits.
    const split = leadingSplit(x.shape, keptShape);
    if (split !== null) {
      const out = arrayFor("float32", numelOf(keptShape));
      if (sumRowsInWasm(x.data as Float32Array, out as Float32Array, split[0], split[1]))
        return new Tensor(out, keptShape);
    }
  }
  const accType: DType =
    op === "sum" && x.dtype === "float32" ? "float64" : op === "sum" && !isFloat(x.dtype) ? "int32" : x.dtype;
  const acc = arrayFor(accType, numelOf(keptShape));
  // Integer arrays cannot hold ±Infinity (they would store 0): start from the type's own extremes.
  if (op !== "sum") acc.fill(op === "max" ? LOWEST[accType] : HIGHEST[accType]);
  const src = accType === x.dtype ? x.data : op === "sum" && accType === "float64" ? x.data : Int32Array.from(x.data);
  reduceKernel(op, accType)(src, acc, x.shape, broadcastStrides(keptShape, x.shape));
  const outType: DType = op === "sum" && !isFloat(x.dtype) ? "int32" : x.dtype;
  const out = outType === accType ? acc : arrayFor(outType, acc.length);
  if (out !== acc) out.set(acc);
  return new Tensor(out, keptShape);
}

/** Sums `g` down to `shape`: the adjoint of broadcasting (`unbroadcast`). */
export const sumTo = defineOp("sumTo", (g: Tensor, shape: readonly number[]): Tensor => {
  if (shapeEq(g.shape, shape)) return g;
  const lead = g.ndim - shape.length;
  if (lead < 0 || shape.some((d, i) => d !== 1 && d !== g.shape[i + lead])) {
    throw new Error(`sumTo: cannot sum ${fmtShape(g.shape)} down to ${fmtShape(shape)}`);
  }
  const kept = g.shape.map((d, i) => (i < lead ? 1 : shape[i - lead] === 1 ? 1 : d));
  const out = new Tensor(rawReduce("sum", g, kept).data, shape);
  return record(out, "sumTo", [g], (gg) => [broadcastTo(gg, g.shape)]);
});

export const sum = defineOp("sum", (x: Tensor, dims?: Dims, keepdim = false): Tensor => {
  const d = normDims(dims, x.ndim, "sum");
  const [kept, shape] = reducedShapes(x.shape, d, keepdim);
  const out = rawReduce("sum", x, kept);
  const result = new Tensor(out.data, shape);
  return record(result, "sum", [x], (g) => [broadcastTo(reshape(g, kept), x.shape)]);
});

export const mean = defineOp("mean", (x: Tensor, dims?: Dims, keepdim = false): Tensor => {
  if (!isFloat(x.dtype)) throw new Error(`mean: input dtype should be floating point, got ${x.dtype}`);
  const d = normDims(dims, x.ndim, "mean");
  const count = d.reduce((n, i) => n * x.shape[i]!, 1);
  return div(sum(x, d, keepdim), count);
});

// The gradient is shared evenly among tied maxima, as PyTorch's amax does.
function extremum(op: "max" | "min", x: Tensor, dims: Dims, keepdim: boolean): Tensor {
  const d = normDims(dims, x.ndim, op);
  if (x.numel === 0) throw new Error(`${op}: cannot reduce an empty tensor of shape ${fmtShape(x.shape)}`);
  const [kept, shape] = reducedShapes(x.shape, d, keepdim);
  const out = rawReduce(op, x, kept);
  const result = new Tensor(out.data, shape);
  return record(
    result,
    op,
    [x],
    (g) => {
      // In x's float dtype: a bool mask divided by the count would give 1/3 rounded to float32.
      const mask = to(x.eq(new Tensor(broadcastData(reshape(result, kept), x.shape), x.shape)), floatDtypeOf(x));
      const count = sum(mask, d, true);
      return [mul(broadcastTo(reshape(g, kept), x.shape), div(mask, count))];
    },
    [x, result],
  );
}

export const max = defineOp("max", (x: Tensor, dims?: Dims, keepdim = false) => extremum("max", x, dims, keepdim));
export const min = defineOp("min", (x: Tensor, dims?: Dims, keepdim = false) => extremum("min", x, dims, keepdim));

/** log(sum(exp(x))) computed around the maximum; its gradient is softmax(x). */
export const logsumexp = defineOp("logsumexp", (x: Tensor, dims?: Dims, keepdim = false): Tensor => {
  const d = normDims(dims, x.ndim, "logsumexp");
  const [kept, shape] = reducedShapes(x.shape, d, keepdim);
  const m = rawReduce("max", x, kept);
  const md = m.data;
  for (let i = 0; i < md.length; i++) if (!Number.isFinite(md[i]!)) md[i] = 0;
  const shifted = new Float64Array(x.numel);
  const mb = broadcastData(m, x.shape);
  for (let i = 0; i < shifted.length; i++) shifted[i] = Math.exp(x.data[i]! - mb[i]!);
  const s = rawReduce("sum", new Tensor(shifted, x.shape), kept).data;
  const out = arrayFor(x.dtype, s.length);
  for (let i = 0; i < out.length; i++) out[i] = Math.log(s[i]!) + md[i]!;
  const result = new Tensor(out, shape);
  return record(
    result,
    "logsumexp",
    [x],
    (g) => {
      const lse = reshape(result, kept);
      return [mul(broadcastTo(reshape(g, kept), x.shape), exp(sub(x, lse)))];
    },
    [x, result],
  );
});

function argExtremum(op: "argmax" | "argmin", x: Tensor, dim?: number, keepdim = false): Tensor {
  if (x.numel === 0) throw new Error(`${op}: cannot reduce an empty tensor`);
  if (dim === undefined) {
    const flat = new Tensor(x.data, [x.numel]);
    return argExtremum(op, flat, 0, false);
  }
  const [d] = normDims(dim, x.ndim, op) as [number];
  const outer = x.shape.slice(0, d).reduce((a, b) => a * b, 1);
  const n = x.shape[d]!;
  const inner = x.shape.slice(d + 1).reduce((a, b) => a * b, 1);
  const out = new Int32Array(outer * inner);
  const src = x.data;
  const better =
    op === "argmax"
      ? (a: number, b: number) => a > b || (Number.isNaN(a) && !Number.isNaN(b))
      : (a: number, b: number) => a < b || (Number.isNaN(a) && !Number.isNaN(b));
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let best = 0;
      let bv = src[o * n * inner + i]!;
      for (let j = 1; j < n; j++) {
        const v = src[(o * n + j) * inner + i]!;
        if (better(v, bv)) {
          best = j;
          bv = v;
        }
      }
      out[o * inner + i] = best;
    }
  }
  const [, shape] = reducedShapes(x.shape, [d], keepdim);
  return new Tensor(out, shape);
}

/** Index of the largest value (first on ties), over all elements or along `dim`; int32. */
export const argmax = (x: Tensor, dim?: number, keepdim = false) => argExtremum("argmax", x, dim, keepdim);
export const argmin = (x: Tensor, dim?: number, keepdim = false) => argExtremum("argmin", x, dim, keepdim);
