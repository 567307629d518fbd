import { isGradEnabled } from "../autograd/grad-mode.js";
import { type BackwardFn, Node } from "../autograd/node.js";
import { castInto } from "../kernels/elementwise.js";
import { type DType, type TypedArray, arrayFor, getDefaultDtype, promoteWithScalar } from "../tensor/dtype.js";
import { Tensor, isTensor } from "../tensor/tensor.js";

/** A tensor, or a plain number/boolean standing for a 0-d tensor (`x.mul(2)`). */
export type TensorLike = Tensor | number | boolean;

/**
 * Names of every differentiable op. The generic gradient test walks this list with sample inputs it
 * declares per op, so an op registered here without samples fails the suite.
 */
export const OPS = new Set<string>();

/** Registers an op by name and returns it unchanged: `export const mul = defineOp("mul", (a, b) => ...)`. */
export function defineOp<F extends (...args: never[]) => Tensor>(name: string, fn: F): F {
  OPS.add(name);
  return fn;
}

/**
 * Records `out` in the graph when grad mode is on and an input requires grad. `backward` gets the
 * output's gradient and which inputs need one in the running pass (requiring grad and on a path to
 * its targets), and returns one entry per input (null to skip).
 * `saved` tensors are checked against in-place changes before backward runs.
 */
export function record(
  out: Tensor,
  name: string,
  inputs: readonly Tensor[],
  backward: (g: Tensor, needs: readonly boolean[]) => (Tensor | null)[],
  saved: readonly Tensor[] = [],
): Tensor {
  if (!isGradEnabled()) return out;
  let any = false;
  for (const t of inputs) if (t.requiresGrad) any = true;
  if (!any) return out;
  const needs = inputs.map((t) => t.requiresGrad);
  const fn: BackwardFn = (g, wanted) =>
    backward(g, wanted === undefined ? needs : needs.map((n, i) => n && wanted[i]!));
  out._setGradFn(new Node(name, inputs, fn, saved));
  return out;
}

export function scalarTensor(value: number | boolean, dtype: DType): Tensor {
  const data = arrayFor(dtype, 1);
  data[0] = typeof value === "boolean" ? (value ? 1 : 0) : value;
  return new Tensor(data, []);
}

/** Converts the operands of a binary op to tensors; a plain number takes the other side's dtype rules. */
export function operands(a: TensorLike, b: TensorLike, op: string): [Tensor, Tensor] {
  const at = isTensor(a),
    bt = isTensor(b);
  if (at && bt) return [a, b];
  if (at) return [a, scalarTensor(b as number, promoteWithScalar(a.dtype, b as number))];
  if (bt) return [scalarTensor(a as number, promoteWithScalar(b.dtype, a as number)), b];
  if (typeof a !== "number" && typeof a !== "boolean")
    throw new Error(`${op}: expected a Tensor or a number, got ${typeof a}`);
  const dtype = Number.isInteger(a) && Number.isInteger(b) ? "int32" : getDefaultDtype();
  return [scalarTensor(a, dtype), scalarTensor(b as number, dtype)];
}

export function toTensor(x: TensorLike, op: string): Tensor {
  if (isTensor(x)) return x;
  if (typeof x !== "number" && typeof x !== "boolean")
    throw new Error(`${op}: expected a Tensor or a number, got ${typeof x}`);
  return scalarTensor(x, typeof x === "boolean" ? "bool" : Number.isInteger(x) ? "int32" : getDefaultDtype());
}

/** The data of `t` as `dtype`, copying only when the types differ. */
export function dataAs(t: Tensor, dtype: DType): TypedArray {
  if (t.dtype === dtype) return t.data;
  const out = arrayFor(dtype, t.numel);
  castInto(t.data, out);
  return out;
}

export function floatDtypeOf(t: Tensor): "float32" | "float64" {
  return t.dtype === "float64" ? "float64" : t.dtype === "float32" ? "float32" : getDefaultDtype();
}
