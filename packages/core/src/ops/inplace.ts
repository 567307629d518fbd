import { isGradEnabled } from "../autograd/grad-mode.js";
import { castInto } from "../kernels/elementwise.js";
import { broadcastShapes, fmtShape, shapeEq } from "../tensor/shape.js";
import type { Tensor } from "../tensor/tensor.js";
import { add, clamp, div, mul, sub } from "./elementwise.js";
import type { TensorLike } from "./op.js";
import { noGrad } from "../autograd/grad-mode.js";
import { broadcastData } from "./shape.js";

/**
 * In-place ops write into the tensor's storage and bump its version counter, so a tensor saved for
 * backward that is changed afterwards is caught. They are not recorded in the graph: on a tensor
 * that requires grad they are refused while grad mode is on (use them under `noGrad`, as optimizers do).
 */
function guard(t: Tensor, op: string): void {
  if (!isGradEnabled() || !t.requiresGrad) return;
  if (t.isLeaf) {
    throw new Error(
      `${op}: a leaf tensor that requires grad is being used in an in-place operation; ` +
        "wrap it in noGrad(() => ...) or use the out-of-place op",
    );
  }
  throw new Error(
    `${op}: in-place operations on a tensor that is part of the autograd graph are not supported; ` +
      "use the out-of-place op",
  );
}

function writeBack(t: Tensor, result: Tensor, op: string): Tensor {
  if (!shapeEq(result.shape, t.shape)) {
    throw new Error(
      `${op}: output with shape ${fmtShape(t.shape)} doesn't match the broadcast shape ${fmtShape(result.shape)}`,
    );
  }
  castInto(result.data, t.data);
  t._bumpVersion();
  return t;
}

function apply(t: Tensor, op: string, fn: () => Tensor): Tensor {
  guard(t, op);
  return writeBack(t, noGrad(fn), op);
}

export const add_ = (t: Tensor, o: TensorLike, alpha = 1) => apply(t, "add_", () => add(t, o, alpha));
export const sub_ = (t: Tensor, o: TensorLike, alpha = 1) => apply(t, "sub_", () => sub(t, o, alpha));
export const mul_ = (t: Tensor, o: TensorLike) => apply(t, "mul_", () => mul(t, o));
export const div_ = (t: Tensor, o: TensorLike) => apply(t, "div_", () => div(t, o));
export const clamp_ = (t: Tensor, min?: number | null, max?: number | null) =>
  apply(t, "clamp_", () => clamp(t, min, max));

export function fill_(t: Tensor, value: number): Tensor {
  guard(t, "fill_");
  t.data.fill(value);
  t._bumpVersion();
  return t;
}

export const zero_ = (t: Tensor): Tensor => fill_(t, 0);

/** Copies `src` (broadcast to this shape, converted to this dtype) into the tensor. */
export function copy_(t: Tensor, src: Tensor): Tensor {
  guard(t, "copy_");
  broadcastShapes(src.shape, t.shape, "copy_");
  castInto(broadcastData(src, t.shape), t.data);
  t._bumpVersion();
  return t;
}
