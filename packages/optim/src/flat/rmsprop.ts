import type { FloatArray } from "../types.js";
import { FLT_MIN, needsFlush } from "./flush.js";

/** Scalars of one RMSprop update. */
export interface RmspropUpdateOptions {
  lr: number;
  alpha: number;
  eps: number;
  weightDecay: number;
  momentum: number;
  centered: boolean;
  maximize: boolean;
}

/**
 * RMSprop on `params[start, end)` in place. `gradAvg` is required when centered, `buf` when
 * momentum > 0 (otherwise pass null). Follows torch.optim.RMSprop:
 *   g = ±grad + wd·p;  sq = α·sq + (1-α)·g²
 *   avg = sqrt(sq - ga²) with ga = α·ga + (1-α)·g (centered), else sqrt(sq);  avg += eps
 *   buf = μ·buf + g/avg, p -= lr·buf (momentum) or p -= lr·g/avg
 * `step` is unused (RMSprop has no bias correction) but kept so every kernel has the same shape.
 *
 * @example
 * rmspropUpdate(p, g, sq, null, null, 0, p.length, 1, {
 *   lr: 1e-2, alpha: 0.99, eps: 1e-8, weightDecay: 0, momentum: 0, centered: false, maximize: false,
 * })
 */
export function rmspropUpdate(
  params: FloatArray,
  grads: FloatArray,
  squareAvg: FloatArray,
  gradAvg: FloatArray | null,
  buf: FloatArray | null,
  start: number,
  end: number,
  _step: number,
  opts: RmspropUpdateOptions,
): void {
  const { lr, alpha, eps, weightDecay, momentum, maximize } = opts;
  const centered = opts.centered && gradAvg !== null;
  const useBuf = momentum > 0 && buf !== null;
  const flushSq = needsFlush(squareAvg);
  const flushGa = gradAvg !== null && needsFlush(gradAvg),
    flushBuf = buf !== null && needsFlush(buf);
  // [start, end) lies inside every array: flatStep checks it, the optimizer classes pass full lengths.
  for (let i = start; i < end; i++) {
    let g = maximize ? -grads[i]! : grads[i]!;
    const p = params[i]!;
    if (weightDecay !== 0) g += weightDecay * p;
    let sq = alpha * squareAvg[i]! + (1 - alpha) * g * g;
    if (flushSq && sq < FLT_MIN) sq = 0;
    squareAvg[i] = sq;
    let avg: number;
    if (centered) {
      let ga = alpha * gradAvg[i]! + (1 - alpha) * g;
      if (flushGa && Math.abs(ga) < FLT_MIN) ga = 0;
      gradAvg[i] = ga;
      avg = Math.sqrt(sq - ga * ga) + eps;
    } else {
      avg = Math.sqrt(sq) + eps;
    }
    if (useBuf) {
      let b = momentum * buf[i]! + g / avg;
      if (flushBuf && Math.abs(b) < FLT_MIN) b = 0;
      buf[i] = b;
      params[i] = p - lr * b;
    } else {
      params[i] = p - lr * (g / avg);
    }
  }
}
