import type { FloatArray } from "../types.js";
import { FLT_MIN, needsFlush } from "./flush.js";

/** Scalars of one Adam/AdamW update; `decoupledWeightDecay` selects AdamW. */
export interface AdamUpdateOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  amsgrad: boolean;
  maximize: boolean;
  decoupledWeightDecay: boolean;
}

/**
 * Adam (or AdamW) on `params[start, end)` in place, with `m`, `v` (and `vmax` when amsgrad) as state.
 * `step` is 1-based and already counts this update. Follows torch.optim.Adam/AdamW:
 *   g = ±grad (+ wd·p for Adam);  p *= 1 - lr·wd for AdamW (before the moments)
 *   m = β1·m + (1-β1)·g;  v = β2·v + (1-β2)·g²;  vmax = max(vmax, v) (amsgrad, on the raw v)
 *   p -= lr/(1-β1^t) · m / (sqrt(v or vmax)·(1/sqrt(1-β2^t)) + eps)
 *
 * One function serves both dtypes; a process normally trains in one dtype, so each call site stays
 * monomorphic in practice.
 *
 * @example
 * adamUpdate(p, g, m, v, null, 0, p.length, 1, {
 *   lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8,
 *   weightDecay: 0, amsgrad: false, maximize: false, decoupledWeightDecay: false,
 * })
 */
export function adamUpdate(
  params: FloatArray,
  grads: FloatArray,
  m: FloatArray,
  v: FloatArray,
  vmax: FloatArray | null,
  start: number,
  end: number,
  step: number,
  opts: AdamUpdateOptions,
): void {
  const { lr, beta1, beta2, eps, weightDecay, maximize } = opts;
  const stepSize = lr / (1 - beta1 ** step);
  // sqrt(v)/sqrt(1-β2^t) as a product with the reciprocal: one division per element instead of two
  // (the WebAssembly kernel does the same, for the same bits).
  const invBc2Sqrt = 1 / Math.sqrt(1 - beta2 ** step);
  const l2 = opts.decoupledWeightDecay ? 0 : weightDecay;
  const decay = opts.decoupledWeightDecay ? 1 - lr * weightDecay : 1;
  const useMax = opts.amsgrad && vmax !== null;
  const flushM = needsFlush(m),
    flushV = needsFlush(v),
    flushVmax = vmax !== null && needsFlush(vmax);
  // [start, end) lies inside every array: flatStep checks it, the optimizer classes pass full lengths.
  for (let i = start; i < end; i++) {
    let g = maximize ? -grads[i]! : grads[i]!;
    let p = params[i]!;
    if (decay !== 1) p *= decay;
    if (l2 !== 0) g += l2 * p;
    let mi = beta1 * m[i]! + (1 - beta1) * g;
    let vi = beta2 * v[i]! + (1 - beta2) * g * g;
    if (flushM && Math.abs(mi) < FLT_MIN) mi = 0;
    if (flushV && vi < FLT_MIN) vi = 0;
    m[i] = mi;
    v[i] = vi;
    let second = vi;
    if (useMax) {
      second = Math.max(vmax[i]!, vi);
      if (flushVmax && second < FLT_MIN) second = 0;
      vmax[i] = second;
    }
    const denom = Math.sqrt(second) * invBc2Sqrt + eps;
    params[i] = p - stepSize * (mi / denom);
  }
}
