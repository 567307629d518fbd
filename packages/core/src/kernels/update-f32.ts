// Float32 optimizer updates (Adam/AdamW, SGD, RMSprop, Adagrad) on a range of flat float32 arrays:
// every operation is rounded to float32, as torch.optim computes a float32 parameter's update. Two
// implementations with the same bits: the f32x4 kernels of assembly/update-f32.ts, used when every
// array lies in the given WebAssembly memory, and the JavaScript twins below, which round with
// Math.fround after every operation in the kernels' order. That holds because a float32 +, -, ×, ÷
// or sqrt computed in float64 and rounded once to float32 equals the correctly rounded float32
// result (float64 has more than 2·24 + 2 bits), and because neither side fuses a multiply-add.
// Scalars are rounded to float32 once, here, and passed to both.
//
// @threadgrad/optim's flat updates compute in float64 (one rounding when storing); they stay the
// path for float64 parameters.

import { FLT_MIN } from "../tensor/dtype.js";
import type { WasmKernels } from "./wasm/wasm-kernels.js";

const f = Math.fround;

/** Options of one Adam/AdamW update, as @threadgrad/optim resolves them. */
export interface AdamF32Options {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  maximize: boolean;
  /** AdamW: p *= 1 - lr·wd before the moments, instead of adding wd·p to the gradient */
  decoupledWeightDecay: boolean;
}

/** The float32 scalars of one Adam step (from adamScalarsF32). */
export interface AdamF32Scalars {
  beta1: number;
  oneMinusBeta1: number;
  beta2: number;
  oneMinusBeta2: number;
  eps: number;
  /** lr / (1 - β1^t) */
  stepSize: number;
  /** 1 / sqrt(1 - β2^t) */
  invBc2Sqrt: number;
  /** Adam's weight decay (0 for AdamW) */
  l2: number;
  /** AdamW's factor 1 - lr·wd (1 for Adam) */
  decay: number;
  maximize: boolean;
}

/**
 * Adam's scalars at 1-based step t, computed in float64 and rounded to float32 once.
 * @example
 * const s = adamScalarsF32(1, {
 *   lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maximize: false, decoupledWeightDecay: false,
 * });
 */
export function adamScalarsF32(step: number, o: AdamF32Options): AdamF32Scalars {
  const decoupled = o.decoupledWeightDecay;
  return {
    beta1: f(o.beta1),
    oneMinusBeta1: f(1 - o.beta1),
    beta2: f(o.beta2),
    oneMinusBeta2: f(1 - o.beta2),
    eps: f(o.eps),
    stepSize: f(o.lr / (1 - o.beta1 ** step)),
    invBc2Sqrt: f(1 / Math.sqrt(1 - o.beta2 ** step)),
    l2: decoupled ? 0 : f(o.weightDecay),
    decay: decoupled ? f(1 - o.lr * o.weightDecay) : 1,
    maximize: o.maximize,
  };
}

/**
 * One float32 Adam/AdamW step on params[start, end) with state m, v (and vmax, amsgrad's running
 * maximum, or null), in place:
 *   g = ±g;  p = decay·p;  g += l2·p;  m = β1·m + (1-β1)·g;  v = β2·v + ((1-β2)·g)·g  (m, v flushed)
 *   vmax = max(vmax, v);  p -= stepSize · (m / (sqrt(v or vmax)·invBc2Sqrt + eps))
 * In WebAssembly when `kernels` is given and every array lies in its memory, else in JavaScript;
 * the bits are the same.
 * @example adamUpdateF32(kernels, p, g, m, v, null, start, end, adamScalarsF32(t, options))
 */
export function adamUpdateF32(
  kernels: WasmKernels | null,
  params: Float32Array,
  grads: Float32Array,
  m: Float32Array,
  v: Float32Array,
  vmax: Float32Array | null,
  start: number,
  end: number,
  s: AdamF32Scalars,
): void {
  checkRange("adamUpdateF32", start, end, [params, grads, m, v, vmax]);
  const k = inMemory(kernels, [params, grads, m, v, vmax]);
  // The kernel writes a block of steps to the thread's scratch, then the parameters in a pass of
  // their own; without room there the JavaScript loop runs (the same bits).
  const scratchBytes = k === null ? 0 : k.exports.adamScratchBytes();
  if (k !== null && k.scratchFree() >= scratchBytes + 64) {
    const mark = k.scratchMark();
    const scratch = k.scratchAlloc(scratchBytes);
    k.exports.adamUpdateF32(
      params.byteOffset,
      grads.byteOffset,
      m.byteOffset,
      v.byteOffset,
      vmax === null ? 0 : vmax.byteOffset,
      start,
      end,
      s.beta1,
      s.oneMinusBeta1,
      s.beta2,
      s.oneMinusBeta2,
      s.eps,
      s.stepSize,
      s.invBc2Sqrt,
      s.l2,
      s.decay,
      s.maximize ? 1 : 0,
      scratch,
    );
    k.scratchReset(mark);
    return;
  }
  const { beta1, oneMinusBeta1, beta2, oneMinusBeta2, eps, stepSize, invBc2Sqrt, l2, decay, maximize } = s;
  for (let i = start; i < end; i++) {
    let g = maximize ? -grads[i]! : grads[i]!;
    let p = params[i]!;
    if (decay !== 1) p = f(p * decay);
    if (l2 !== 0) g = f(g + f(l2 * p));
    let mi = f(f(beta1 * m[i]!) + f(oneMinusBeta1 * g));
    let vi = f(f(beta2 * v[i]!) + f(f(oneMinusBeta2 * g) * g));
    if (Math.abs(mi) < FLT_MIN) mi = 0;
    if (Math.abs(vi) < FLT_MIN) vi = 0;
    m[i] = mi;
    v[i] = vi;
    let second = vi;
    if (vmax !== null) {
      second = Math.max(vmax[i]!, vi); // both already flushed
      vmax[i] = second;
    }
    const denom = f(f(f(Math.sqrt(second)) * invBc2Sqrt) + eps);
    params[i] = f(p - f(stepSize * f(mi / denom)));
  }
}

/** Options of one SGD update, as @threadgrad/optim resolves them. */
export interface SgdF32Options {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  maximize: boolean;
}

/**
 * One float32 SGD step on params[start, end); `buf` is the momentum buffer (null without momentum),
 * `isFirst` true on the first step (the buffer takes the gradient), in place:
 *   g = ±g + wd·p;  b = g (first) or μ·b + (1-dampening)·g, flushed;  g = g + μ·b (nesterov) or b
 *   p -= lr·g
 * In WebAssembly when `kernels` is given and every array lies in its memory, else in JavaScript;
 * the bits are the same.
 * @example
 * sgdUpdateF32(kernels, p, g, buf, start, end, t === 1, {
 *   lr: 0.1, momentum: 0.9, dampening: 0, weightDecay: 0, nesterov: false, maximize: false,
 * });
 */
export function sgdUpdateF32(
  kernels: WasmKernels | null,
  params: Float32Array,
  grads: Float32Array,
  buf: Float32Array | null,
  start: number,
  end: number,
  isFirst: boolean,
  o: SgdF32Options,
): void {
  checkRange("sgdUpdateF32", start, end, [params, grads, buf]);
  const lr = f(o.lr),
    momentum = f(o.momentum),
    oneMinusDampening = f(1 - o.dampening),
    weightDecay = f(o.weightDecay);
  const { nesterov, maximize } = o;
  const k = inMemory(kernels, [params, grads, buf]);
  if (k !== null) {
    k.exports.sgdUpdateF32(
      params.byteOffset,
      grads.byteOffset,
      buf === null ? 0 : buf.byteOffset,
      start,
      end,
      lr,
      momentum,
      oneMinusDampening,
      weightDecay,
      nesterov ? 1 : 0,
      maximize ? 1 : 0,
      isFirst ? 1 : 0,
    );
    return;
  }
  for (let i = start; i < end; i++) {
    let g = maximize ? -grads[i]! : grads[i]!;
    const p = params[i]!;
    if (weightDecay !== 0) g = f(g + f(weightDecay * p));
    if (buf !== null) {
      let b = isFirst ? g : f(f(momentum * buf[i]!) + f(oneMinusDampening * g));
      if (Math.abs(b) < FLT_MIN) b = 0;
      buf[i] = b;
      g = nesterov ? f(g + f(momentum * b)) : b;
    }
    params[i] = f(p - f(lr * g));
  }
}

/** Options of one RMSprop update, as @threadgrad/optim resolves them. */
export interface RmspropF32Options {
  lr: number;
  alpha: number;
  eps: number;
  weightDecay: number;
  momentum: number;
  maximize: boolean;
}

/**
 * One float32 RMSprop step on params[start, end) with state squareAvg, gradAvg (centered, else
 * null) and buf (momentum > 0, else null), in place:
 *   g = ±g + wd·p;  sq = α·sq + ((1-α)·g)·g;  ga = α·ga + (1-α)·g  (stored state flushed)
 *   avg = sqrt(sq - ga·ga) (centered) or sqrt(sq), + eps
 *   b = μ·b + g/avg, p -= lr·b (momentum) or p -= lr·(g/avg)
 * In WebAssembly when `kernels` is given and every array lies in its memory, else in JavaScript;
 * the bits are the same (NaN aside: its sign is not fixed in WebAssembly).
 * @example
 * rmspropUpdateF32(null, p, g, sq, null, null, 0, p.length, {
 *   lr: 1e-2, alpha: 0.99, eps: 1e-8, weightDecay: 0, momentum: 0, maximize: false,
 * });
 */
export function rmspropUpdateF32(
  kernels: WasmKernels | null,
  params: Float32Array,
  grads: Float32Array,
  squareAvg: Float32Array,
  gradAvg: Float32Array | null,
  buf: Float32Array | null,
  start: number,
  end: number,
  o: RmspropF32Options,
): void {
  checkRange("rmspropUpdateF32", start, end, [params, grads, squareAvg, gradAvg, buf]);
  const lr = f(o.lr),
    alpha = f(o.alpha),
    oneMinusAlpha = f(1 - o.alpha),
    eps = f(o.eps),
    weightDecay = f(o.weightDecay),
    momentum = f(o.momentum);
  const maximize = o.maximize;
  const k = inMemory(kernels, [params, grads, squareAvg, gradAvg, buf]);
  if (k !== null) {
    const [pp, gp, sp] = [params.byteOffset, grads.byteOffset, squareAvg.byteOffset];
    const [ga, bp] = [gradAvg?.byteOffset ?? 0, buf?.byteOffset ?? 0];
    k.exports.rmspropUpdateF32(
      pp,
      gp,
      sp,
      ga,
      bp,
      start,
      end,
      lr,
      alpha,
      oneMinusAlpha,
      eps,
      weightDecay,
      momentum,
      +maximize,
    );
    return;
  }
  for (let i = start; i < end; i++) {
    let g = maximize ? -grads[i]! : grads[i]!;
    const p = params[i]!;
    if (weightDecay !== 0) g = f(g + f(weightDecay * p));
    let sq = f(f(alpha * squareAvg[i]!) + f(f(oneMinusAlpha * g) * g));
    if (Math.abs(sq) < FLT_MIN) sq = 0;
    squareAvg[i] = sq;
    let avg: number;
    if (gradAvg !== null) {
      let ga = f(f(alpha * gradAvg[i]!) + f(oneMinusAlpha * g));
      if (Math.abs(ga) < FLT_MIN) ga = 0;
      gradAvg[i] = ga;
      avg = f(f(Math.sqrt(f(sq - f(ga * ga)))) + eps);
    } else {
      avg = f(f(Math.sqrt(sq)) + eps);
    }
    if (buf !== null) {
      let b = f(f(momentum * buf[i]!) + f(g / avg));
      if (Math.abs(b) < FLT_MIN) b = 0;
      buf[i] = b;
      params[i] = f(p - f(lr * b));
    } else {
      params[i] = f(p - f(lr * f(g / avg)));
    }
  }
}

/** Options of one Adagrad update, as @threadgrad/optim resolves them. */
export interface AdagradF32Options {
  lr: number;
  lrDecay: number;
  weightDecay: number;
  eps: number;
  maximize: boolean;
}

/**
 * One float32 Adagrad step at 1-based `step` on params[start, end) with state sum, in place:
 *   g = ±g + wd·p;  clr = lr / (1 + (t-1)·lrDecay);  sum += g·g (flushed);  p -= clr·(g / (sqrt(sum) + eps))
 * In WebAssembly when `kernels` is given and every array lies in its memory, else in JavaScript;
 * the bits are the same.
 * @example
 * adagradUpdateF32(null, p, g, sum, 0, p.length, 1, { lr: 1e-2, lrDecay: 0, weightDecay: 0, eps: 1e-10, maximize: false });
 */
export function adagradUpdateF32(
  kernels: WasmKernels | null,
  params: Float32Array,
  grads: Float32Array,
  sum: Float32Array,
  start: number,
  end: number,
  step: number,
  o: AdagradF32Options,
): void {
  checkRange("adagradUpdateF32", start, end, [params, grads, sum]);
  const clr = f(o.lr / (1 + (step - 1) * o.lrDecay)),
    weightDecay = f(o.weightDecay),
    eps = f(o.eps);
  const maximize = o.maximize;
  const k = inMemory(kernels, [params, grads, sum]);
  if (k !== null) {
    k.exports.adagradUpdateF32(
      params.byteOffset,
      grads.byteOffset,
      sum.byteOffset,
      start,
      end,
      clr,
      weightDecay,
      eps,
      +maximize,
    );
    return;
  }
  for (let i = start; i < end; i++) {
    let g = maximize ? -grads[i]! : grads[i]!;
    const p = params[i]!;
    if (weightDecay !== 0) g = f(g + f(weightDecay * p));
    let s = f(sum[i]! + f(g * g));
    if (Math.abs(s) < FLT_MIN) s = 0;
    sum[i] = s;
    params[i] = f(p - f(clr * f(g / f(f(Math.sqrt(s)) + eps))));
  }
}

// The kernels when every array given (null: none) lies in their memory, else null.
function inMemory(k: WasmKernels | null, arrays: (Float32Array | null)[]): WasmKernels | null {
  return k !== null && arrays.every((a) => a === null || k.contains(a)) ? k : null;
}

// The kernels read and write [start, end) of every array without bounds checks: check it here.
function checkRange(where: string, start: number, end: number, arrays: (Float32Array | null)[]): void {
  if (!(Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start <= end)) {
    throw new RangeError(`${where}: range [${start}, ${end}) is not a range of indices`);
  }
  for (const a of arrays) {
    if (a !== null && a.length < end) {
      throw new RangeError(`${where}: range [${start}, ${end}) does not fit an array of length ${a.length}`);
    }
  }
}
