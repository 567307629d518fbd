import { fmtShape, normDim } from "../tensor/shape.js";
import type { Tensor } from "../tensor/tensor.js";
import { slice } from "./shape.js";

/**
 * Pieces of `x` along `dim`, as PyTorch's split: of `size` each (the last may be smaller), or of the
 * listed sizes, which must add up to the dim's size. Each piece is a differentiable slice (a copy).
 * ```ts
 * const [q, k, v] = split(qkv, 64, -1);
 * ```
 */
export function split(x: Tensor, sizeOrSections: number | readonly number[], dim = 0): Tensor[] {
  if (x.ndim === 0) throw new Error("split: expected a tensor with at least 1 dimension, got a 0-d tensor");
  const d = normDim(dim, x.ndim, "split");
  const n = x.shape[d]!;
  let sizes: number[];
  if (typeof sizeOrSections === "number") {
    const size = sizeOrSections;
    if (!Number.isInteger(size) || size < 0 || (size === 0 && n !== 0)) {
      throw new Error(`split: split size must be a positive integer, got ${size} for a dim of size ${n}`);
    }
    const count = Math.max(1, Math.ceil(n / Math.max(size, 1)));
    sizes = Array.from({ length: count }, (_, i) => Math.min(size, n - i * size));
  } else {
    sizes = [...sizeOrSections];
    const total = sizes.reduce((a, b) => a + b, 0);
    if (sizes.some((s) => !Number.isInteger(s) || s < 0) || total !== n) {
      throw new Error(
        `split: split sizes ${fmtShape(sizes)} must be non-negative integers adding up to the size of dim ${d} ` +
          `(${n}), they add up to ${total}`,
      );
    }
  }
  const out: Tensor[] = [];
  let start = 0;
  for (const size of sizes) {
    out.push(slice(x, d, start, start + size));
    start += size;
  }
  return out;
}

/**
 * `chunks` pieces of `x` along `dim` of ceil(size / chunks) elements each (the last may be
 * smaller, and fewer pieces come back when the size runs out), as PyTorch's chunk.
 * ```ts
 * const [q, k, v] = chunk(qkv, 3, -1);
 * ```
 */
export function chunk(x: Tensor, chunks: number, dim = 0): Tensor[] {
  if (!Number.isInteger(chunks) || chunks <= 0) {
    throw new Error(`chunk: number of chunks must be a positive integer, got ${chunks}`);
  }
  if (x.ndim === 0) throw new Error("chunk: expected a tensor with at least 1 dimension, got a 0-d tensor");
  const n = x.shape[normDim(dim, x.ndim, "chunk")]!;
  return split(x, Math.max(1, Math.ceil(n / chunks)), dim);
}
