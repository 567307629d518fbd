import { stridedCopyKernel } from "../kernels/elementwise.js";
import { type DType, type TypedArray, arrayFor } from "../tensor/dtype.js";
import { broadcastShapes, broadcastStrides, fmtShape, normDim, numelOf, shapeEq, stridesOf } from "../tensor/shape.js";
import { Tensor } from "../tensor/tensor.js";
import { dataAs, defineOp, record } from "./op.js";
import { sumTo } from "./reduce.js";

/** The data of `t` broadcast to `shape` (and converted to `dtype`), outside autograd. */
export function broadcastData(t: Tensor, shape: readonly number[], dtype: DType = t.dtype): TypedArray {
  const src = dataAs(t, dtype);
  if (shapeEq(t.shape, shape)) return src;
  broadcastShapes(t.shape, shape, "broadcastTo");
  const out = arrayFor(dtype, numelOf(shape), false);
  // One value (the gradient of a sum or a mean) is a fill, not a strided copy.
  if (src.length === 1) out.fill(src[0]!);
  else stridedCopyKernel(dtype)(src, 0, out, shape, broadcastStrides(t.shape, shape));
  return out;
}

export const broadcastTo = defineOp("broadcastTo", (x: Tensor, shape: readonly number[]): Tensor => {
  if (shapeEq(x.shape, shape)) return x;
  const target = broadcastShapes(x.shape, shape, "broadcastTo");
  if (!shapeEq(target, shape)) {
    throw new Error(`broadcastTo: the shape ${fmtShape(x.shape)} cannot be expanded to ${fmtShape(shape)}`);
  }
  return record(new Tensor(broadcastData(x, shape), shape), "broadcastTo", [x], (g) => [sumTo(g, x.shape)]);
});

/** As broadcastTo, but -1 keeps a dimension's size (PyTorch's `expand`). */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  const lead = shape.length - x.ndim;
  return broadcastTo(
    x,
    shape.map((d, i) => (d === -1 ? x.shape[i - lead]! : d)),
  );
}

function inferShape(numel: number, shape: readonly number[], op: string): number[] {
  const out = [...shape];
  const free = out.indexOf(-1);
  if (out.indexOf(-1, free + 1) !== -1 && free !== -1) throw new Error(`${op}: only one dimension can be inferred`);
  if (free !== -1) {
    const known = out.reduce((a, d, i) => (i === free ? a : a * d), 1);
    if (known === 0 || numel % known !== 0)
      throw new Error(`${op}: shape ${fmtShape(shape)} is invalid for input of size ${numel}`);
    out[free] = numel / known;
  }
  if (numelOf(out) !== numel) throw new Error(`${op}: shape ${fmtShape(shape)} is invalid for input of size ${numel}`);
  return out;
}

/** Same elements in a new shape; shares storage. One dimension may be -1. */
export const reshape = defineOp("reshape", (x: Tensor, shape: readonly number[]): Tensor => {
  const s = inferShape(x.numel, shape, "reshape");
  if (shapeEq(s, x.shape)) return x;
  return record(new Tensor(x.data, s, x._version), "reshape", [x], (g) => [reshape(g, x.shape)]);
});

export const view = (x: Tensor, shape: readonly number[]): Tensor => reshape(x, shape);

export const permute = defineOp("permute", (x: Tensor, dims: readonly number[]): Tensor => {
  if (dims.length !== x.ndim) throw new Error(`permute: number of dims don't match (${dims.length} vs ${x.ndim})`);
  const d = dims.map((v) => normDim(v, x.ndim, "permute"));
  if (new Set(d).size !== d.length) throw new Error(`permute: repeated dim in ${fmtShape(dims)}`);
  const st = stridesOf(x.shape);
  const shape = d.map((i) => x.shape[i]!);
  const out = arrayFor(x.dtype, x.numel, false);
  stridedCopyKernel(x.dtype)(
    x.data,
    0,
    out,
    shape,
    d.map((i) => st[i]!),
  );
  const inverse = new Array<number>(d.length);
  d.forEach((v, i) => {
    inverse[v] = i;
  });
  return record(new Tensor(out, shape), "permute", [x], (g) => [permute(g, inverse)]);
});

export function transpose(x: Tensor, dim0 = -2, dim1 = -1): Tensor {
  if (x.ndim < 2 && dim0 === -2 && dim1 === -1) return x;
  const a = normDim(dim0, x.ndim, "transpose"),
    b = normDim(dim1, x.ndim, "transpose");
  const dims = x.shape.map((_, i) => i);
  dims[a] = b;
  dims[b] = a;
  return permute(x, dims);
}

function sliceRange(size: number, start: number, end: number | undefined, step: number, op: string): [number, number] {
  if (!Number.isInteger(step) || step <= 0) throw new Error(`${op}: step must be a positive integer, got ${step}`);
  const clampIdx = (v: number) => Math.min(Math.max(v < 0 ? v + size : v, 0), size);
  const s = clampIdx(start),
    e = clampIdx(end ?? size);
  return [s, Math.max(0, Math.ceil((e - s) / step))];
}

/** Elements `start, start+step, ...` before `end` along `dim`, as Python's `x[start:end:step]`. */
export const slice = defineOp("slice", (x: Tensor, dim: number, start = 0, end?: number, step = 1): Tensor => {
  const d = normDim(dim, x.ndim, "slice");
  const [s, len] = sliceRange(x.shape[d]!, start, end, step, "slice");
  const shape = x.shape.map((v, i) => (i === d ? len : v));
  const st = stridesOf(x.shape);
  const out = arrayFor(x.dtype, numelOf(shape), false);
  stridedCopyKernel(x.dtype)(
    x.data,
    s * st[d]!,
    out,
    shape,
    st.map((v, i) => (i === d ? v * step : v)),
  );
  return record(new Tensor(out, shape), "slice", [x], (g) => [sliceBackward(g, x.shape, d, s, step)]);
});

/** Places `g` into zeros of `shape` at the positions a slice read: the adjoint of slice. */
export const sliceBackward = defineOp(
  "sliceBackward",
  (g: Tensor, shape: readonly number[], dim: number, start: number, step: number): Tensor => {
    const out = arrayFor(g.dtype, numelOf(shape));
    const len = g.shape[dim]!,
      size = shape[dim]!;
    let inner = 1;
    for (let k = dim + 1; k < shape.length; k++) inner *= shape[k]!;
    const outer = len * inner === 0 ? 0 : g.numel / (len * inner);
    // Runs of contiguous elements: all `len` slices at once for step 1, else one slice at a time.
    const run = step === 1 ? len * inner : inner,
      runs = step === 1 ? 1 : len;
    const src = g.data as ArrayLike<number> & { subarray(a: number, b: number): ArrayLike<number> };
    const dst = out as { set(a: ArrayLike<number>, at: number): void } & Record<number, number>;
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < runs; j++) {
        const from = o * len * inner + j * inner,
          to = (o * size + start + j * step) * inner;
        if (run >= 16) dst.set(src.subarray(from, from + run), to);
        else for (let e = 0; e < run; e++) dst[to + e] = src[from + e]!;
      }
    }
    return record(new Tensor(out, shape), "sliceBackward", [g], (gg) => [
      slice(gg, dim, start, start + (len - 1) * step + 1, step),
    ]);
  },
);

export const narrow = (x: Tensor, dim: number, start: number, length: number): Tensor => {
  const d = normDim(dim, x.ndim, "narrow");
  const size = x.shape[d]!;
  const s = start < 0 ? start + size : start;
  if (s < 0 || length < 0 || s + length > size) {
    throw new Error(`narrow: start (${start}) + length (${length}) exceeds dimension size (${size})`);
  }
  return slice(x, d, s, s + length, 1);
};

export const cat = defineOp("cat", (tensors: readonly Tensor[], dim = 0): Tensor => {
  if (tensors.length === 0) throw new Error("cat: expected a non-empty list of tensors");
  const first = tensors[0]!;
  const d = normDim(dim, first.ndim, "cat");
  for (const [i, t] of tensors.entries()) {
    if (t.ndim !== first.ndim || t.shape.some((v, k) => k !== d && v !== first.shape[k])) {
      throw new Error(
        `cat: sizes of tensors must match except in dimension ${d}: ` +
          `tensor 0 has shape ${fmtShape(first.shape)}, tensor ${i} has shape ${fmtShape(t.shape)}`,
      );
    }
    if (t.dtype !== first.dtype)
      throw new Error(`cat: expected all tensors to have dtype ${first.dtype}, tensor ${i} has ${t.dtype}`);
  }
  const shape = first.shape.map((v, k) => (k === d ? tensors.reduce((a, t) => a + t.shape[d]!, 0) : v));
  const outer = first.shape.slice(0, d).reduce((a, b) => a * b, 1);
  const inner = first.shape.slice(d + 1).reduce((a, b) => a * b, 1);
  const out = arrayFor(first.dtype, numelOf(shape), false);
  const rowOut = shape[d]! * inner;
  let offset = 0;
  for (const t of tensors) {
    const rowIn = t.shape[d]! * inner;
    for (let o = 0; o < outer; o++) out.set(t.data.subarray(o * rowIn, (o + 1) * rowIn), o * rowOut + offset);
    offset += rowIn;
  }
  const starts: number[] = [];
  let acc = 0;
  for (const t of tensors) {
    starts.push(acc);
    acc += t.shape[d]!;
  }
  return record(new Tensor(out, shape), "cat", tensors, (g, needs) =>
    tensors.map((t, i) => (needs[i] ? slice(g, d, starts[i]!, starts[i]! + t.shape[d]!) : null)),
  );
});

export const unsqueeze = (x: Tensor, dim: number): Tensor => {
  const d = normDim(dim, x.ndim + 1, "unsqueeze");
  const shape = [...x.shape];
  shape.splice(d, 0, 1);
  return reshape(x, shape);
};

export const stack = (tensors: readonly Tensor[], dim = 0): Tensor => {
  if (tensors.length === 0) throw new Error("stack: expected a non-empty list of tensors");
  for (const [i, t] of tensors.entries()) {
    if (!shapeEq(t.shape, tensors[0]!.shape)) {
      throw new Error(
        `stack: expects each tensor to be equal size, but got ${fmtShape(tensors[0]!.shape)} at entry 0 ` +
          `and ${fmtShape(t.shape)} at entry ${i}`,
      );
    }
  }
  const d = normDim(dim, tensors[0]!.ndim + 1, "stack");
  return cat(
    tensors.map((t) => unsqueeze(t, d)),
    d,
  );
};

export const squeeze = (x: Tensor, dim?: number | readonly number[]): Tensor => {
  const dims =
    dim === undefined
      ? x.shape.map((_, i) => i)
      : (typeof dim === "number" ? [dim] : dim).map((v) => normDim(v, x.ndim, "squeeze"));
  return reshape(
    x,
    x.shape.filter((v, i) => !(v === 1 && dims.includes(i))),
  );
};

export const flatten = (x: Tensor, startDim = 0, endDim = -1): Tensor => {
  if (x.ndim === 0) return reshape(x, [1]);
  const s = normDim(startDim, x.ndim, "flatten"),
    e = normDim(endDim, x.ndim, "flatten");
  if (s > e) throw new Error(`flatten: startDim (${startDim}) cannot come after endDim (${endDim})`);
  const mid = x.shape.slice(s, e + 1).reduce((a, b) => a * b, 1);
  return reshape(x, [...x.shape.slice(0, s), mid, ...x.shape.slice(e + 1)]);
};
