import { indexAddRowsInWasm } from "../kernels/index-add.js";
import { type FloatArray, arrayFor } from "../tensor/dtype.js";
import { fmtShape, normDim, stridesOf } from "../tensor/shape.js";
import { Tensor } from "../tensor/tensor.js";
import { defineOp, record } from "./op.js";
import { slice } from "./shape.js";

function checkIndex(index: Tensor, op: string): void {
  if (index.dtype !== "int32") throw new Error(`${op}: index must be an int32 tensor, got ${index.dtype}`);
}

/**
 * Walks every position of `index` (shape `idxShape`), yielding the flat offset into a tensor of
 * `shape` where the coordinate along `dim` is replaced by the index value.
 */
function forEachScatter(
  shape: readonly number[],
  index: Tensor,
  dim: number,
  op: string,
  fn: (target: number, i: number) => void,
): void {
  const st = stridesOf(shape);
  const ist = stridesOf(index.shape);
  const size = shape[dim]!;
  for (let i = 0; i < index.numel; i++) {
    let r = i,
      off = 0;
    for (let k = 0; k < index.ndim; k++) {
      const c = Math.floor(r / ist[k]!);
      r -= c * ist[k]!;
      if (k === dim) {
        let v = index.data[i]!;
        if (v < -size || v >= size)
          throw new Error(`${op}: index ${v} is out of bounds for dimension ${dim} with size ${size}`);
        if (v < 0) v += size;
        off += v * st[k]!;
      } else {
        if (c >= shape[k]!)
          throw new Error(
            `${op}: index ${fmtShape(index.shape)} is larger than the tensor ${fmtShape(shape)} at dim ${k}`,
          );
        off += c * st[k]!;
      }
    }
    fn(off, i);
  }
}

/** out[i][j] = x[i][index[i][j]] for dim 1 (and likewise for any dim); shape of `index`. */
export const gather = defineOp("gather", (x: Tensor, dim: number, index: Tensor): Tensor => {
  checkIndex(index, "gather");
  const d = normDim(dim, x.ndim, "gather");
  if (index.ndim !== x.ndim)
    throw new Error(
      `gather: index ${fmtShape(index.shape)} and input ${fmtShape(x.shape)} must have the same number of dimensions`,
    );
  const out = arrayFor(x.dtype, index.numel);
  forEachScatter(x.shape, index, d, "gather", (t, i) => (out[i] = x.data[t]!));
  return record(
    new Tensor(out, index.shape),
    "gather",
    [x],
    (g) => [scatterAdd(new Tensor(arrayFor(g.dtype, x.numel), x.shape), d, index, g)],
    [index],
  );
});

/** A copy of `self` with `src` added at the positions `index` names along `dim`. */
export const scatterAdd = defineOp("scatterAdd", (self: Tensor, dim: number, index: Tensor, src0: Tensor): Tensor => {
  checkIndex(index, "scatterAdd");
  const d = normDim(dim, self.ndim, "scatterAdd");
  if (index.ndim !== self.ndim || src0.ndim !== index.ndim || index.shape.some((v, k) => v > src0.shape[k]!)) {
    throw new Error(
      `scatterAdd: index ${fmtShape(index.shape)} must have the same number of dimensions ` +
        `as self ${fmtShape(self.shape)} and be no larger than src ${fmtShape(src0.shape)}`,
    );
  }
  // Only the leading index-shaped block of src is read (as in PyTorch); slicing it keeps flat
  // positions of index and src aligned, and slice's backward pads the gradient back with zeros.
  const src = index.shape.reduce((t, v, k) => (t.shape[k] === v ? t : slice(t, k, 0, v)), src0);
  // In a step region the copy lands in its scratch (slice() would allocate on the heap each step).
  const out = arrayFor(self.dtype, self.numel, false);
  out.set(self.data);
  forEachScatter(self.shape, index, d, "scatterAdd", (t, i) => (out[t]! += src.data[i]!));
  return record(
    new Tensor(out, self.shape),
    "scatterAdd",
    [self, src],
    (g, needs) => [needs[0] ? g : null, needs[1] ? gather(g, d, index) : null],
    [index],
  );
});

function blocks(shape: readonly number[], dim: number): [number, number, number] {
  const outer = shape.slice(0, dim).reduce((a, b) => a * b, 1);
  const inner = shape.slice(dim + 1).reduce((a, b) => a * b, 1);
  return [outer, shape[dim]!, inner];
}

/** Selects entries `index` (1-D) along `dim`. */
export const indexSelect = defineOp("indexSelect", (x: Tensor, dim: number, index: Tensor): Tensor => {
  checkIndex(index, "indexSelect");
  if (index.ndim > 1)
    throw new Error(`indexSelect: index should have at most 1 dimension, got ${fmtShape(index.shape)}`);
  const d = normDim(dim, x.ndim, "indexSelect");
  const [outer, size, inner] = blocks(x.shape, d);
  const n = index.numel;
  const out = arrayFor(x.dtype, outer * n * inner);
  for (let j = 0; j < n; j++) {
    const v = index.data[j]!;
    if (v < 0 || v >= size)
      throw new Error(`indexSelect: index ${v} is out of range for dimension ${d} with size ${size}`);
  }
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < n; j++) {
      const src = (o * size + index.data[j]!) * inner;
      out.set(x.data.subarray(src, src + inner), (o * n + j) * inner);
    }
  }
  const shape = x.shape.map((v, i) => (i === d ? n : v));
  return record(
    new Tensor(out, shape),
    "indexSelect",
    [x],
    (g) => [indexAdd(new Tensor(arrayFor(g.dtype, x.numel), x.shape), d, index, g)],
    [index],
  );
});

/** A copy of `self` with slice j of `source` added to slice index[j] along `dim`. */
export const indexAdd = defineOp("indexAdd", (self: Tensor, dim: number, index: Tensor, source: Tensor): Tensor => {
  checkIndex(index, "indexAdd");
  const d = normDim(dim, self.ndim, "indexAdd");
  const [outer, size, inner] = blocks(self.shape, d);
  const n = index.numel;
  if (source.ndim !== self.ndim || source.shape.some((v, k) => (k === d ? v !== n : v !== self.shape[k]))) {
    throw new Error(
      `indexAdd: source ${fmtShape(source.shape)} must match self ${fmtShape(self.shape)} ` +
        `with ${n} entries along dim ${d}`,
    );
  }
  for (let j = 0; j < n; j++) {
    const v = index.data[j]!;
    if (v < 0 || v >= size)
      throw new Error(`indexAdd: index ${v} is out of range for dimension ${d} with size ${size}`);
  }
  const out = arrayFor(self.dtype, self.numel, false);
  out.set(self.data);
  // Along dim 0 (the embedding's gradient) the SIMD kernel takes operands in wasm memory.
  const isRows = outer === 1 && index.data instanceof Int32Array;
  if (!(isRows && indexAddRowsInWasm(out as FloatArray, source.data as FloatArray, index.data, n, inner))) {
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < n; j++) {
        const dst = (o * size + index.data[j]!) * inner,
          src = (o * n + j) * inner;
        for (let i = 0; i < inner; i++) out[dst + i]! += source.data[src + i]!;
      }
    }
  }
  return record(
    new Tensor(out, self.shape),
    "indexAdd",
    [self, source],
    (g, needs) => [needs[0] ? g : null, needs[1] ? indexSelect(g, d, index) : null],
    [index],
  );
});
