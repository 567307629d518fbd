import type { FloatArray } from "../types.js";
import { FLT_MIN, needsFlush } from "./flush.js";

/** Scalars of one SGD update. */
export interface SgdUpdateOptions {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  maximize: boolean;
}

/**
 * SGD on `params[start, end)` in place; `buf` is the momentum buffer (null when momentum is 0).
 * Follows torch.optim.SGD:
 *   g = ±grad + wd·p;  buf = g on step 1, else μ·buf + (1-dampening)·g
 *   g = g + μ·buf (nesterov) or buf;  p -= lr·g
 * The buffer is "empty" exactly when `step === 1`, which is how the sharded path, holding only
 * zero-filled shared memory, reproduces PyTorch's clone-on-first-use.
 *
 * @example
 * sgdUpdate(p, g, buf, 0, p.length, 1, {
 *   lr: 0.1, momentum: 0.9, dampening: 0, weightDecay: 0, nesterov: false, maximize: false,
 * })
 */
export function sgdUpdate(
  params: FloatArray,
  grads: FloatArray,
  buf: FloatArray | null,
  start: number,
  end: number,
  step: number,
  opts: SgdUpdateOptions,
): void {
  const { lr, momentum, dampening, weightDecay, nesterov, maximize } = opts;
  const first = step === 1;
  const flush = buf !== null && needsFlush(buf);
  // [start, end) lies inside every array: flatStep checks it, the optimizer classes pass full lengths.
  for (let i = start; i < end; i++) {
    let g = maximize ? -grads[i]! : grads[i]!;
    const p = params[i]!;
    if (weightDecay !== 0) g += weightDecay * p;
    if (buf !== null) {
      let b = first ? g : momentum * buf[i]! + (1 - dampening) * g;
      if (flush && Math.abs(b) < FLT_MIN) b = 0;
      buf[i] = b;
      g = nesterov ? g + momentum * b : b;
    }
    params[i] = p - lr * g;
  }
}
