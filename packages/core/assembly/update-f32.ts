import { flush32 } from "./lanes";

// ---------------------------------------------------------------------------------------------
// Float32 optimizer updates (Adam/AdamW, SGD, RMSprop, Adagrad): four parameters per f32x4, every
// operation rounded to f32, as torch.optim computes a float32 parameter's update. The JavaScript twin
// (src/kernels/update-f32.ts) does the same operations in the same order with Math.fround after
// each one, so both give the same bits: no fused multiply-add here (not even in the relaxed-SIMD
// build), and sqrt and division are correctly rounded in both. A tail of 1-3 elements runs the
// same vector code on a partly filled vector (loadLanes/storeLanes below), so the edge lanes see
// the very operations the others do. Scalars arrive already rounded to f32 by the caller.
// State (m, v, the momentum buffer) is f32 and flushed to 0 below FLT_MIN (lanes.ts).
// ---------------------------------------------------------------------------------------------

// Elements per block of adamUpdateF32; its scratch holds one block of f32 steps.
const ADAM_BLOCK: i32 = 1024;

// m, v (and vmax) updated for [start, end) and the step stepSize·m/denom stored at d + 4·i.
@inline function adamSteps(
  p: usize, g: usize, m: usize, v: usize, vmax: usize, start: i32, end: i32,
  beta1: f32, oneMinusBeta1: f32, beta2: f32, oneMinusBeta2: f32, eps: f32,
  stepSize: f32, invBc2Sqrt: f32, l2: f32, decay: f32, maximize: i32, d: usize,
): void {
  const b1 = f32x4.splat(beta1), c1 = f32x4.splat(oneMinusBeta1);
  const b2 = f32x4.splat(beta2), c2 = f32x4.splat(oneMinusBeta2);
  const e = f32x4.splat(eps), step = f32x4.splat(stepSize), ib = f32x4.splat(invBc2Sqrt);
  const l2v = f32x4.splat(l2), dv = f32x4.splat(decay);
  const hasL2 = l2 != 0, hasDecay = decay != 1;
  for (let i = start; i < end; i += 4) {
    const n = min(end - i, 4);
    const off = <usize>i * 4;
    let gv = loadLanes(g + off, n);
    if (maximize != 0) gv = f32x4.neg(gv);
    if (hasL2) {
      let pv = loadLanes(p + off, n);
      if (hasDecay) pv = f32x4.mul(pv, dv);
      gv = f32x4.add(gv, f32x4.mul(l2v, pv));
    }
    const mv = flush32(f32x4.add(f32x4.mul(b1, loadLanes(m + off, n)), f32x4.mul(c1, gv)));
    const vv = flush32(f32x4.add(f32x4.mul(b2, loadLanes(v + off, n)), f32x4.mul(f32x4.mul(c2, gv), gv)));
    storeLanes(m + off, mv, n);
    storeLanes(v + off, vv, n);
    let second = vv;
    if (vmax != 0) {
      second = f32x4.max(loadLanes(vmax + off, n), vv);
      storeLanes(vmax + off, second, n);
    }
    const denom = f32x4.add(f32x4.mul(f32x4.sqrt(second), ib), e);
    storeLanes(d + off, f32x4.mul(step, f32x4.div(mv, denom)), n);
  }
}

// p = (p·decay) − step for [start, end), the steps at d + 4·i.
@inline function applySteps(p: usize, start: i32, end: i32, decay: f32, d: usize): void {
  const dv = f32x4.splat(decay);
  const hasDecay = decay != 1;
  for (let i = start; i < end; i += 4) {
    const n = min(end - i, 4);
    const off = <usize>i * 4;
    let pv = loadLanes(p + off, n);
    if (hasDecay) pv = f32x4.mul(pv, dv);
    storeLanes(p + off, f32x4.sub(pv, loadLanes(d + off, n)), n);
  }
}

/**
 * Float32 torch.optim.Adam/AdamW step on p[start, end) with state m, v (vmax: amsgrad's running
 * maximum, 0 without amsgrad); f32 scalars from adamScalarsF32 (src/kernels/update-f32.ts):
 * stepSize = lr/(1-β1^t), invBc2Sqrt = 1/sqrt(1-β2^t), l2 (Adam) or decay = 1-lr·wd (AdamW);
 * scratch: adamScratchBytes() bytes of this thread's scratch.
 */
export function adamUpdateF32(
  p: usize, g: usize, m: usize, v: usize, vmax: usize, start: i32, end: i32,
  beta1: f32, oneMinusBeta1: f32, beta2: f32, oneMinusBeta2: f32, eps: f32,
  stepSize: f32, invBc2Sqrt: f32, l2: f32, decay: f32, maximize: i32, scratch: usize,
): void {
  // Blocks of ADAM_BLOCK: the steps into scratch, then a pass that only rewrites p. When another
  // thread has read these parameters (every rank reads them all), each first write of a line waits
  // for the other core's copy to be invalidated; a pass of nothing but those writes keeps many in
  // flight at once (W1 on 2 workers: 0.31-0.34 ms per rank instead of one loop's 0.52-0.58).
  for (let b = start; b < end; b += ADAM_BLOCK) {
    const e = min(end, b + ADAM_BLOCK);
    const d = scratch - <usize>b * 4; // step i at d + 4·i
    adamSteps(p, g, m, v, vmax, b, e, beta1, oneMinusBeta1, beta2, oneMinusBeta2, eps, stepSize, invBc2Sqrt, l2, decay,
      maximize, d);
    applySteps(p, b, e, decay, d);
  }
}

/** Bytes of scratch adamUpdateF32 needs: one block of f32 steps. */
export function adamScratchBytes(): i32 {
  return ADAM_BLOCK * 4;
}

/**
 * Float32 torch.optim.SGD step on p[start, end); buf is the momentum buffer's pointer, or 0
 * without momentum; first != 0 on the first step (the buffer takes the gradient);
 * oneMinusDampening = f32(1 - dampening).
 */
export function sgdUpdateF32(
  p: usize, g: usize, buf: usize, start: i32, end: i32,
  lr: f32, momentum: f32, oneMinusDampening: f32, weightDecay: f32, nesterov: i32, maximize: i32, first: i32,
): void {
  const lrv = f32x4.splat(lr), mu = f32x4.splat(momentum), c = f32x4.splat(oneMinusDampening);
  const wd = f32x4.splat(weightDecay);
  const hasWd = weightDecay != 0;
  for (let i = start; i < end; i += 4) {
    const n = min(end - i, 4);
    const off = <usize>i * 4;
    const pv = loadLanes(p + off, n);
    let gv = loadLanes(g + off, n);
    if (maximize != 0) gv = f32x4.neg(gv);
    if (hasWd) gv = f32x4.add(gv, f32x4.mul(wd, pv));
    if (buf != 0) {
      let b = gv;
      if (first == 0) b = f32x4.add(f32x4.mul(mu, loadLanes(buf + off, n)), f32x4.mul(c, gv));
      b = flush32(b);
      storeLanes(buf + off, b, n);
      gv = nesterov != 0 ? f32x4.add(gv, f32x4.mul(mu, b)) : b;
    }
    storeLanes(p + off, f32x4.sub(pv, f32x4.mul(lrv, gv)), n);
  }
}

/**
 * Float32 torch.optim.RMSprop step on p[start, end) with state sq (square average), ga (gradient
 * average, 0 unless centered) and buf (momentum buffer, 0 without momentum);
 * oneMinusAlpha = f32(1 - alpha).
 */
export function rmspropUpdateF32(
  p: usize, g: usize, sq: usize, ga: usize, buf: usize, start: i32, end: i32,
  lr: f32, alpha: f32, oneMinusAlpha: f32, eps: f32, weightDecay: f32, momentum: f32, maximize: i32,
): void {
  const lrv = f32x4.splat(lr), a = f32x4.splat(alpha), c = f32x4.splat(oneMinusAlpha);
  const e = f32x4.splat(eps), wd = f32x4.splat(weightDecay), mu = f32x4.splat(momentum);
  const hasWd = weightDecay != 0;
  for (let i = start; i < end; i += 4) {
    const n = min(end - i, 4);
    const off = <usize>i * 4;
    const pv = loadLanes(p + off, n);
    let gv = loadLanes(g + off, n);
    if (maximize != 0) gv = f32x4.neg(gv);
    if (hasWd) gv = f32x4.add(gv, f32x4.mul(wd, pv));
    const sv = flush32(f32x4.add(f32x4.mul(a, loadLanes(sq + off, n)), f32x4.mul(f32x4.mul(c, gv), gv)));
    storeLanes(sq + off, sv, n);
    let avg: v128;
    if (ga != 0) {
      const gav = flush32(f32x4.add(f32x4.mul(a, loadLanes(ga + off, n)), f32x4.mul(c, gv)));
      storeLanes(ga + off, gav, n);
      avg = f32x4.add(f32x4.sqrt(f32x4.sub(sv, f32x4.mul(gav, gav))), e);
    } else {
      avg = f32x4.add(f32x4.sqrt(sv), e);
    }
    if (buf != 0) {
      const b = flush32(f32x4.add(f32x4.mul(mu, loadLanes(buf + off, n)), f32x4.div(gv, avg)));
      storeLanes(buf + off, b, n);
      storeLanes(p + off, f32x4.sub(pv, f32x4.mul(lrv, b)), n);
    } else {
      storeLanes(p + off, f32x4.sub(pv, f32x4.mul(lrv, f32x4.div(gv, avg))), n);
    }
  }
}

/**
 * Float32 torch.optim.Adagrad step on p[start, end) with state sum; clr = f32(lr / (1 + (t-1)·lrDecay)).
 */
export function adagradUpdateF32(
  p: usize, g: usize, sum: usize, start: i32, end: i32, clr: f32, weightDecay: f32, eps: f32, maximize: i32,
): void {
  const lrv = f32x4.splat(clr), e = f32x4.splat(eps), wd = f32x4.splat(weightDecay);
  const hasWd = weightDecay != 0;
  for (let i = start; i < end; i += 4) {
    const n = min(end - i, 4);
    const off = <usize>i * 4;
    const pv = loadLanes(p + off, n);
    let gv = loadLanes(g + off, n);
    if (maximize != 0) gv = f32x4.neg(gv);
    if (hasWd) gv = f32x4.add(gv, f32x4.mul(wd, pv));
    const sv = flush32(f32x4.add(loadLanes(sum + off, n), f32x4.mul(gv, gv)));
    storeLanes(sum + off, sv, n);
    storeLanes(p + off, f32x4.sub(pv, f32x4.mul(lrv, f32x4.div(gv, f32x4.add(f32x4.sqrt(sv), e)))), n);
  }
}

// The first n (1-4) floats at ptr as an f32x4; lanes past n are 0 and never stored.
@inline function loadLanes(ptr: usize, n: i32): v128 {
  if (n == 4) return v128.load(ptr);
  let x = f32x4.splat(0);
  x = v128.load32_lane(ptr, x, 0);
  if (n > 1) x = v128.load32_lane(ptr + 4, x, 1);
  if (n > 2) x = v128.load32_lane(ptr + 8, x, 2);
  return x;
}

@inline function storeLanes(ptr: usize, x: v128, n: i32): void {
  if (n == 4) {
    v128.store(ptr, x);
    return;
  }
  v128.store32_lane(ptr, x, 0);
  if (n > 1) v128.store32_lane(ptr + 4, x, 1);
  if (n > 2) v128.store32_lane(ptr + 8, x, 2);
}

