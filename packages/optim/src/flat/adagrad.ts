import type { FloatArray } from "../types.js";
import { FLT_MIN, needsFlush } from "./flush.js";

/** Scalars of one Adagrad update. */
export interface AdagradUpdateOptions {
  lr: number;
  lrDecay: number;
  weightDecay: number;
  eps: number;
  maximize: boolean;
}

/**
 * Adagrad on `params[start, end)` in place with `sum` as state (start it filled with
 * initialAccumulatorValue). Follows torch.optim.Adagrad:
 *   g = ±grad + wd·p;  clr = lr / (1 + (t-1)·lrDecay);  sum += g²;  p -= clr · g / (sqrt(sum) + eps)
 *
 * @example
 * adagradUpdate(p, g, sum, 0, p.length, 1, { lr: 1e-2, lrDecay: 0, weightDecay: 0, eps: 1e-10, maximize: false })
 */
export function adagradUpdate(
  params: FloatArray,
  grads: FloatArray,
  sum: FloatArray,
  start: number,
  end: number,
  step: number,
  opts: AdagradUpdateOptions,
): void {
  const { lr, lrDecay, weightDecay, eps, maximize } = opts;
  const clr = lr / (1 + (step - 1) * lrDecay);
  const flush = needsFlush(sum);
  // [start, end) lies inside every array: flatStep checks it, the optimizer classes pass full lengths.
  for (let i = start; i < end; i++) {
    let g = maximize ? -grads[i]! : grads[i]!;
    const p = params[i]!;
    if (weightDecay !== 0) g += weightDecay * p;
    // Only a tiny gradient on a zero accumulator can land here; flushed like all float32 state.
    let s = sum[i]! + g * g;
    if (flush && s < FLT_MIN) s = 0;
    sum[i] = s;
    params[i] = p - clr * (g / (Math.sqrt(s) + eps));
  }
}
