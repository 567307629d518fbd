import type { DType, TypedArray } from "../tensor/dtype.js";

/**
 * Reductions walk the input in row-major order and fold each element into the output element that
 * `outStrides` points at (stride 0 along every reduced dimension). One walker serves sum, max and
 * min over any set of dimensions, and `sumTo` (the adjoint of broadcasting).
 */
export type ReduceKernel = (
  a: TypedArray,
  out: TypedArray,
  inShape: readonly number[],
  outStrides: readonly number[],
) => void;

const cache = new Map<string, ReduceKernel>();

const FOLD = {
  sum: "out[io] += x;",
  max: "const c = out[io]; if (x > c || x !== x) out[io] = x;",
  min: "const c = out[io]; if (x < c || x !== x) out[io] = x;",
} as const;

export type ReduceOp = keyof typeof FOLD;

// A row folded into one output element. A sum keeps its running total in a local (same order,
// same bits as folding into out[io] element by element, without a store per element).
const ROW: Record<ReduceOp, string> = {
  sum: "let s = out[io0]; for (let j = 0; j < inner; j++) s += a[i0 + j]; out[io0] = s;",
  max: `for (let j = 0; j < inner; j++) { const x = a[i0 + j]; const io = io0; ${FOLD.max} }`,
  min: `for (let j = 0; j < inner; j++) { const x = a[i0 + j]; const io = io0; ${FOLD.min} }`,
};

export function reduceKernel(op: ReduceOp, dtype: DType): ReduceKernel {
  const key = `${dtype}:${op}`;
  let k = cache.get(key);
  if (k === undefined) {
    k = new Function(`return function reduce_${op}_${dtype}(a, out, inShape, outStrides) {
      const n = a.length, nd = inShape.length;
      if (n === 0) return;
      if (nd === 0) { const x = a[0]; const io = 0; ${FOLD[op]} return; }
      const inner = inShape[nd - 1], so = outStrides[nd - 1];
      const idx = new Int32Array(nd);
      let io0 = 0;
      for (let i0 = 0; i0 < n; i0 += inner) {
        if (so === 0) {
          ${ROW[op]}
        } else {
          for (let j = 0; j < inner; j++) { const x = a[i0 + j]; const io = io0 + j * so; ${FOLD[op]} }
        }
        for (let d = nd - 2; d >= 0; d--) {
          idx[d]++; io0 += outStrides[d];
          if (idx[d] < inShape[d]) break;
          io0 -= outStrides[d] * inShape[d]; idx[d] = 0;
        }
      }
    }`)() as ReduceKernel;
    cache.set(key, k);
  }
  return k;
}
