import { resultType } from "../tensor/dtype.js";
import type { Tensor } from "../tensor/tensor.js";
import { broadcastBinary } from "./elementwise.js";
import { type TensorLike, operands } from "./op.js";

// Comparisons give bool tensors and are not differentiable.
function compare(name: string, expr: string, a: TensorLike, b: TensorLike): Tensor {
  const [x, y] = operands(a, b, name);
  return broadcastBinary(name, `(${expr}) ? 1 : 0`, x, y, resultType(x, y), "bool");
}

export const eq = (a: TensorLike, b: TensorLike) => compare("eq", "x === y", a, b);
export const ne = (a: TensorLike, b: TensorLike) => compare("ne", "x !== y", a, b);
export const lt = (a: TensorLike, b: TensorLike) => compare("lt", "x < y", a, b);
export const le = (a: TensorLike, b: TensorLike) => compare("le", "x <= y", a, b);
export const gt = (a: TensorLike, b: TensorLike) => compare("gt", "x > y", a, b);
export const ge = (a: TensorLike, b: TensorLike) => compare("ge", "x >= y", a, b);

/** Logical and/or/not over bool (or nonzero) tensors. */
export const logicalAnd = (a: TensorLike, b: TensorLike) => compare("logicalAnd", "x !== 0 && y !== 0", a, b);
export const logicalOr = (a: TensorLike, b: TensorLike) => compare("logicalOr", "x !== 0 || y !== 0", a, b);
