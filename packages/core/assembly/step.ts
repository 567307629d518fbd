import { FLT_MIN_F64, flush64, load1, load2, store1, store2 } from "./lanes";

// ---------------------------------------------------------------------------------------------
// Adam and AdamW (torch.optim.Adam/AdamW, no amsgrad), on elements [start, end) of p, g, m, v, in
// f64 with the operations in the same order as packages/optim/src/flat/adam.ts, so that the bits
// match:
//   g' = ±g;  p' = decay·p (AdamW: decay = 1 - lr·wd, else 1);  g' += l2·p' (Adam's weight decay)
//   m = β1·m + (1-β1)·g';  v = β2·v + ((1-β2)·g')·g'   (m, v flushed before storing)
//   p = p' - (lr/bc1) · (m / (sqrt(v)·(1/sqrt(bc2)) + eps)),  bc1 = 1-β1^t, bc2 = 1-β2^t
// ---------------------------------------------------------------------------------------------

/**
 * One torch.optim.Adam/AdamW step (no amsgrad) on p[start, end) with state m, v; bc1 = 1 - beta1^step,
 * bc2 = 1 - beta2^step; l2: Adam's weight decay (0 for AdamW), decay: AdamW's factor 1 - lr·wd (1 for
 * Adam); maximize != 0 ascends.
 */
export function adamUpdate(
  p: usize, g: usize, m: usize, v: usize, start: i32, end: i32,
  lr: f64, beta1: f64, beta2: f64, eps: f64, bc1: f64, bc2: f64, l2: f64, decay: f64, maximize: i32,
): void {
  const stepSize = lr / bc1, invBc2Sqrt = 1 / Math.sqrt(bc2);
  let i = start;
  for (; i + 2 <= end; i += 2) {
    const off = <usize>i * 4;
    adamLanes(p + off, g + off, m + off, v + off, 2, beta1, beta2, eps, stepSize, invBc2Sqrt, l2, decay, maximize);
  }
  if (i < end) {
    const off = <usize>i * 4;
    adamLanes(p + off, g + off, m + off, v + off, 1, beta1, beta2, eps, stepSize, invBc2Sqrt, l2, decay, maximize);
  }
}

// Adam on `lanes` (1 or 2) consecutive elements as one f64x2.
@inline function adamLanes(
  pp: usize, gp: usize, mp: usize, vp: usize, lanes: i32,
  beta1: f64, beta2: f64, eps: f64, stepSize: f64, invBc2Sqrt: f64, l2: f64, decay: f64, maximize: i32,
): void {
  let p = lanes == 2 ? load2(pp) : load1(pp);
  let g = lanes == 2 ? load2(gp) : load1(gp);
  const m0 = lanes == 2 ? load2(mp) : load1(mp);
  const v0 = lanes == 2 ? load2(vp) : load1(vp);
  if (maximize != 0) g = f64x2.neg(g);
  if (decay != 1) p = f64x2.mul(p, f64x2.splat(decay));
  if (l2 != 0) g = f64x2.add(g, f64x2.mul(f64x2.splat(l2), p));
  let m = f64x2.add(f64x2.mul(f64x2.splat(beta1), m0), f64x2.mul(f64x2.splat(1 - beta1), g));
  let v = f64x2.add(f64x2.mul(f64x2.splat(beta2), v0), f64x2.mul(f64x2.mul(f64x2.splat(1 - beta2), g), g));
  m = flush64(m);
  v = v128.andnot(v, f64x2.lt(v, f64x2.splat(FLT_MIN_F64))); // v >= 0: the optimizer's `v < FLT_MIN`
  const denom = f64x2.add(f64x2.mul(f64x2.sqrt(v), f64x2.splat(invBc2Sqrt)), f64x2.splat(eps));
  const pNew = f64x2.sub(p, f64x2.mul(f64x2.splat(stepSize), f64x2.div(m, denom)));
  if (lanes == 2) {
    store2(mp, m); store2(vp, v); store2(pp, pNew);
  } else {
    store1(mp, m); store1(vp, v); store1(pp, pNew);
  }
}

// ---------------------------------------------------------------------------------------------
// SGD (torch.optim.SGD) on [start, end), in f64 in the order of packages/optim/src/flat/sgd.ts:
//   g' = ±g + wd·p;  b = g' on the first step, else μ·b + (1-dampening)·g'  (b flushed, stored)
//   g' = nesterov ? g' + μ·b : b  (the unrounded b);  p = p - lr·g'
// buf = 0: no momentum buffer (μ = 0).
// ---------------------------------------------------------------------------------------------

/**
 * One torch.optim.SGD step on p[start, end); buf is the momentum buffer's pointer, or 0 without
 * momentum; first != 0 on the first step (the buffer takes the gradient).
 */
export function sgdUpdate(
  p: usize, g: usize, buf: usize, start: i32, end: i32,
  lr: f64, momentum: f64, dampening: f64, weightDecay: f64, nesterov: i32, maximize: i32, first: i32,
): void {
  let i = start;
  for (; i + 2 <= end; i += 2) {
    const off = <usize>i * 4;
    sgdLanes(p + off, g + off, buf, off, 2, lr, momentum, dampening, weightDecay, nesterov, maximize, first);
  }
  if (i < end) {
    const off = <usize>i * 4;
    sgdLanes(p + off, g + off, buf, off, 1, lr, momentum, dampening, weightDecay, nesterov, maximize, first);
  }
}

@inline function sgdLanes(
  pp: usize, gp: usize, buf: usize, off: usize, lanes: i32,
  lr: f64, momentum: f64, dampening: f64, weightDecay: f64, nesterov: i32, maximize: i32, first: i32,
): void {
  const p = lanes == 2 ? load2(pp) : load1(pp);
  let g = lanes == 2 ? load2(gp) : load1(gp);
  if (maximize != 0) g = f64x2.neg(g);
  if (weightDecay != 0) g = f64x2.add(g, f64x2.mul(f64x2.splat(weightDecay), p));
  if (buf != 0) {
    const bp = buf + off;
    let b = g;
    if (first == 0) {
      const b0 = lanes == 2 ? load2(bp) : load1(bp);
      b = f64x2.add(f64x2.mul(f64x2.splat(momentum), b0), f64x2.mul(f64x2.splat(1 - dampening), g));
    }
    b = flush64(b);
    if (lanes == 2) store2(bp, b); else store1(bp, b);
    g = nesterov != 0 ? f64x2.add(g, f64x2.mul(f64x2.splat(momentum), b)) : b;
  }
  const pNew = f64x2.sub(p, f64x2.mul(f64x2.splat(lr), g));
  if (lanes == 2) store2(pp, pNew); else store1(pp, pNew);
}

// ---------------------------------------------------------------------------------------------
// All-reduce sum: out[i] = ((s0[i] + s1[i]) + s2[i]) + ... in rank order, slice r at
// basePtr + r·strideBytes, elements [start, end). Adding f32 in f32 gives the same bits as the
// JavaScript reference (an f64 sum of two f32 rounded to f32 is the correctly rounded f32 sum). One
// pass reads every slice once. out may be slice 0. No flushing: the sums feed the optimizer (which
// flushes its state), not a matmul, and the bits stay equal to workers' reduceSlices.
// ---------------------------------------------------------------------------------------------

/**
 * out[i] = sum over r < ranks, in rank order, of slice r at basePtr + r·strideBytes, i in [start, end);
 * outPtr may be slice 0.
 */
export function sumSlices(basePtr: usize, strideBytes: usize, ranks: i32, outPtr: usize, start: i32, end: i32): void {
  let i = start;
  for (; i + 4 <= end; i += 4) {
    const off = <usize>i * 4;
    let acc = f32x4.splat(0);
    if (ranks > 0) acc = v128.load(basePtr + off);
    for (let r = 1; r < ranks; r++) acc = f32x4.add(acc, v128.load(basePtr + <usize>r * strideBytes + off));
    v128.store(outPtr + off, acc);
  }
  for (; i < end; i++) {
    const off = <usize>i * 4;
    let acc: f32 = 0;
    if (ranks > 0) acc = load<f32>(basePtr + off);
    for (let r = 1; r < ranks; r++) acc += load<f32>(basePtr + <usize>r * strideBytes + off);
    store<f32>(outPtr + off, acc);
  }
}

/**
 * Σ g[i]² over [start, end) in f64 (two f64x2 accumulators over widened pairs): the partial squared
 * norm each rank contributes to the global gradient norm. Sums in another order than a sequential
 * JavaScript loop, so the last bits may differ from it.
 */
export function sumSquares(ptr: usize, start: i32, end: i32): f64 {
  let a0 = f64x2.splat(0), a1 = f64x2.splat(0);
  let i = start;
  for (; i + 4 <= end; i += 4) {
    const off = ptr + <usize>i * 4;
    const lo = load2(off), hi = load2(off + 8);
    a0 = f64x2.add(a0, f64x2.mul(lo, lo));
    a1 = f64x2.add(a1, f64x2.mul(hi, hi));
  }
  const s = f64x2.add(a0, a1);
  let total = f64x2.extract_lane(s, 0) + f64x2.extract_lane(s, 1);
  for (; i < end; i++) {
    const v = <f64>load<f32>(ptr + <usize>i * 4);
    total += v * v;
  }
  return total;
}
