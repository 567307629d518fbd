import { FLT_MIN, load1, load2 } from "./lanes";

// ---------------------------------------------------------------------------------------------
// Activation kernels: tanh and sigmoid forward, backward (dy -> dx through the saved output y)
// and the backward's own gradient with respect to y. Their JavaScript twins are in
// src/kernels/activations.ts and give the same bits: both sides use only IEEE add, sub, mul, div
// (no fused multiply-add, even in the relaxed build) in the same order.
//
// Forward: computed in f64 (2 lanes) and rounded once to f32, from exp by range reduction
// (t = k·ln2 + r, |r| <= ln2/2, e^r - 1 by its Taylor series to r^11/11!, relative error ~1e-14),
// so a result is Math.tanh's correctly rounded f32 except in the rare case where f64's 1e-14 lands
// on the other side of a rounding tie. Backward kernels compute in f32 (4 lanes), each product
// rounded and flushed where the elementwise ops they replace did (g·(1 - y·y) for tanh), so they
// give the bits of that chain of ops.
//
// Subnormal results become a zero of the same sign, as the JavaScript elementwise ops store them.
// ---------------------------------------------------------------------------------------------

const LN2: f64 = 0.6931471805599453;
const INV_LN2: f64 = 1.4426950408889634;
const SIGN32: i32 = i32.MIN_VALUE;

// Zero of the same sign in every lane whose |v| < FLT_MIN; NaN is kept.
@inline function flushSigned32(v: v128): v128 {
  const tiny = f32x4.lt(f32x4.abs(v), f32x4.splat(FLT_MIN));
  return v128.andnot(v, v128.andnot(tiny, i32x4.splat(SIGN32)));
}

// e^r - 1 for |r| <= ln2/2: Taylor series to r^11/11!, by Horner.
@inline function expm1Reduced(r: v128): v128 {
  let p = f64x2.splat(1.0 / 39916800.0);
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 3628800.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 362880.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 40320.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 5040.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 720.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 120.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 24.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0 / 6.0));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(0.5));
  p = f64x2.add(f64x2.mul(p, r), f64x2.splat(1.0));
  return f64x2.mul(p, r);
}

// 2^k for integral k in [-1022, 1023] (k given as f64 lanes), built from the exponent bits.
@inline function pow2(k: v128): v128 {
  const ki = i64x2.extend_low_i32x4_s(i32x4.trunc_sat_f64x2_s_zero(k));
  return i64x2.shl(i64x2.add(ki, i64x2.splat(1023)), 52);
}

// k = floor(t/ln2 + 1/2), the multiple of ln2 nearest t (floor, not nearest-even: JS has no such round).
@inline function reduceK(t: v128): v128 {
  return f64x2.floor(f64x2.add(f64x2.mul(t, f64x2.splat(INV_LN2)), f64x2.splat(0.5)));
}

// tanh(a) for 0 <= a <= 10 (or NaN): e^(2a) - 1 = 2^k·p + (2^k - 1) with p = e^r - 1, then
// tanh = em1 / (em1 + 2). No cancellation: em1 >= 0, and for k = 0 it is p itself.
@inline function tanhAbs(a: v128): v128 {
  const t = f64x2.add(a, a);
  const k = reduceK(t);
  const s = pow2(k);
  const em1 = f64x2.add(f64x2.mul(s, expm1Reduced(f64x2.sub(t, f64x2.mul(k, f64x2.splat(LN2))))), f64x2.sub(s, f64x2.splat(1)));
  return f64x2.div(em1, f64x2.add(em1, f64x2.splat(2)));
}

// Beyond |x| = 10, tanh rounds to ±1 in f32 (1 - tanh(9.1) < 2^-25), so the argument is clamped.
@inline function tanh2(x: v128): v128 {
  const m = tanhAbs(f64x2.min(f64x2.abs(x), f64x2.splat(10)));
  return v128.or(m, v128.and(x, i64x2.splat(i64.MIN_VALUE)));
}

// sigmoid(x) = 1/(1 + e) for x >= 0, e/(1 + e) for x < 0, with e = e^(-|x|) <= 1: nothing
// overflows. |x| is clamped to 120, where sigmoid(-120) ~ 8e-53 flushes to 0 in f32 anyway.
@inline function sigmoid2(x: v128): v128 {
  const t = f64x2.neg(f64x2.min(f64x2.abs(x), f64x2.splat(120)));
  const k = reduceK(t);
  const p = expm1Reduced(f64x2.sub(t, f64x2.mul(k, f64x2.splat(LN2))));
  const e = f64x2.mul(pow2(k), f64x2.add(p, f64x2.splat(1)));
  const inv = f64x2.div(f64x2.splat(1), f64x2.add(f64x2.splat(1), e));
  return v128.bitselect(f64x2.mul(e, inv), inv, f64x2.lt(x, f64x2.splat(0)));
}

// Two (or one) f64 lanes rounded to f32, flushed with sign, stored.
@inline function store2Flushed(ptr: usize, v: v128): void {
  v128.store64_lane(ptr, flushSigned32(f32x4.demote_f64x2_zero(v)), 0);
}

@inline function store1Flushed(ptr: usize, v: v128): void {
  v128.store32_lane(ptr, flushSigned32(f32x4.demote_f64x2_zero(v)), 0);
}

/** out[i] = tanh(x[i]) in f32 (computed in f64, rounded once, subnormals flushed); out may be x. */
export function tanhForward(x: usize, out: usize, n: i32): void {
  let i = 0;
  for (; i + 2 <= n; i += 2) store2Flushed(out + <usize>i * 4, tanh2(load2(x + <usize>i * 4)));
  if (i < n) store1Flushed(out + <usize>i * 4, tanh2(load1(x + <usize>i * 4)));
}

/** out[i] = sigmoid(x[i]) in f32 (computed in f64, rounded once, subnormals flushed); out may be x. */
export function sigmoidForward(x: usize, out: usize, n: i32): void {
  let i = 0;
  for (; i + 2 <= n; i += 2) store2Flushed(out + <usize>i * 4, sigmoid2(load2(x + <usize>i * 4)));
  if (i < n) store1Flushed(out + <usize>i * 4, sigmoid2(load1(x + <usize>i * 4)));
}

// f32 product, flushed: one `mul` op of the JavaScript side.
@inline function fmul(a: v128, b: v128): v128 {
  return flushSigned32(f32x4.mul(a, b));
}

@inline function fsub(a: v128, b: v128): v128 {
  return flushSigned32(f32x4.sub(a, b));
}

// g·(1 - y·y)
@inline function tanhGrad4(g: v128, y: v128): v128 {
  return fmul(g, fsub(f32x4.splat(1), fmul(y, y)));
}

// -2·((g·gg)·y): the gradient of g·(1 - y·y) with respect to y.
@inline function tanhGradGrad4(gg: v128, g: v128, y: v128): v128 {
  return flushSigned32(f32x4.mul(fmul(fmul(gg, g), y), f32x4.splat(-2)));
}

// g·(y·(1 - y))
@inline function sigmoidGrad4(g: v128, y: v128): v128 {
  return fmul(g, fmul(y, fsub(f32x4.splat(1), y)));
}

// h·(1 - y) - h·y with h = gg·g: the gradient of g·(y·(1 - y)) with respect to y.
@inline function sigmoidGradGrad4(gg: v128, g: v128, y: v128): v128 {
  const h = fmul(gg, g);
  return fsub(fmul(h, fsub(f32x4.splat(1), y)), fmul(h, y));
}

/** out[i] = g[i]·(1 - y[i]²): tanh's backward from its output y, in f32, flushed; out may alias g or y. */
export function tanhBackward(g: usize, y: usize, out: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i * 4;
    v128.store(out + o, tanhGrad4(v128.load(g + o), v128.load(y + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i * 4;
    v128.store32_lane(out + o, tanhGrad4(v128.load32_zero(g + o), v128.load32_zero(y + o)), 0);
  }
}

/** out[i] = -2·gg[i]·g[i]·y[i]: the y-gradient of tanhBackward, in f32, flushed; out may alias an input. */
export function tanhDoubleBackward(gg: usize, g: usize, y: usize, out: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i * 4;
    v128.store(out + o, tanhGradGrad4(v128.load(gg + o), v128.load(g + o), v128.load(y + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i * 4;
    const r = tanhGradGrad4(v128.load32_zero(gg + o), v128.load32_zero(g + o), v128.load32_zero(y + o));
    v128.store32_lane(out + o, r, 0);
  }
}

/** out[i] = g[i]·y[i]·(1 - y[i]): sigmoid's backward from its output y, in f32, flushed; out may alias g or y. */
export function sigmoidBackward(g: usize, y: usize, out: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i * 4;
    v128.store(out + o, sigmoidGrad4(v128.load(g + o), v128.load(y + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i * 4;
    v128.store32_lane(out + o, sigmoidGrad4(v128.load32_zero(g + o), v128.load32_zero(y + o)), 0);
  }
}

/** out[i] = gg[i]·g[i]·(1 - 2·y[i]): the y-gradient of sigmoidBackward, in f32, flushed; out may alias an input. */
export function sigmoidDoubleBackward(gg: usize, g: usize, y: usize, out: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i * 4;
    v128.store(out + o, sigmoidGradGrad4(v128.load(gg + o), v128.load(g + o), v128.load(y + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i * 4;
    const r = sigmoidGradGrad4(v128.load32_zero(gg + o), v128.load32_zero(g + o), v128.load32_zero(y + o));
    v128.store32_lane(out + o, r, 0);
  }
}
