import { broadcastShapes, fmtShape, shapeEq } from "../tensor/shape.js";
import { Tensor, isTensor } from "../tensor/tensor.js";
import { to, where } from "./elementwise.js";
import type { TensorLike } from "./op.js";

// Masking helpers built on `where`, so their gradients (of any order) come for free: the gradient
// passes where the input is kept and is zero where a value was written.

/**
 * `x` with `value` written where the boolean `mask` (broadcastable to x's shape) is true, as
 * PyTorch's masked_fill. The result keeps x's shape and dtype.
 * ```ts
 * const future = triu(ones([4, 4], { dtype: "bool" }), 1); // true above the diagonal
 * scores.maskedFill(future, -Infinity)
 * ```
 */
export function maskedFill(x: Tensor, mask: Tensor, value: TensorLike): Tensor {
  if (mask.dtype !== "bool") throw new Error(`maskedFill: mask must be a bool tensor, got ${mask.dtype}`);
  if (!shapeEq(broadcastShapes(x.shape, mask.shape, "maskedFill"), x.shape)) {
    throw new Error(
      `maskedFill: mask of shape ${fmtShape(mask.shape)} does not broadcast to the input's ${fmtShape(x.shape)}`,
    );
  }
  if (isTensor(value) && value.ndim !== 0) {
    throw new Error(`maskedFill: value must be a number or a 0-d tensor, got shape ${fmtShape(value.shape)}`);
  }
  const out = where(mask, value, x);
  return out.dtype === x.dtype ? out : to(out, x.dtype);
}

/** Keeps elements with col - row >= diagonal (upper) or <= diagonal (lower) of the last two dims. */
function triangle(x: Tensor, diagonal: number, upper: boolean, op: string): Tensor {
  if (x.ndim < 2)
    throw new Error(`${op}: input tensor must have at least 2 dimensions, got shape ${fmtShape(x.shape)}`);
  if (!Number.isInteger(diagonal)) throw new Error(`${op}: diagonal must be an integer, got ${diagonal}`);
  const rows = x.shape[x.ndim - 2]!,
    cols = x.shape[x.ndim - 1]!;
  const keep = new Uint8Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) keep[i * cols + j] = (upper ? j - i >= diagonal : j - i <= diagonal) ? 1 : 0;
  }
  const out = where(new Tensor(keep, [rows, cols]), x, 0);
  return out.dtype === x.dtype ? out : to(out, x.dtype);
}

/** The lower triangle of the last two dims (elements with col - row <= diagonal), the rest zero. */
export const tril = (x: Tensor, diagonal = 0): Tensor => triangle(x, diagonal, false, "tril");

/** The upper triangle of the last two dims (elements with col - row >= diagonal), the rest zero. */
export const triu = (x: Tensor, diagonal = 0): Tensor => triangle(x, diagonal, true, "triu");
