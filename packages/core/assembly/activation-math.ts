import { FLT_MIN } from "./lanes";

// f64 lane math shared by the activation kernels (activations.ts, gelu.ts): exp by range reduction,
// tanh, sigmoid, the normal density, and f32 stores with sign-keeping flushes. Every helper is inlined; none is a
// module export (kernels.ts re-exports only the kernels). The JavaScript twins of these formulas
// are in src/kernels/activation-math.ts, operation for operation.

const LN2: f64 = 0.6931471805599453;
const INV_LN2: f64 = 1.4426950408889634;
const SIGN32: i32 = i32.MIN_VALUE;
const INV_SQRT_2PI: f64 = 0.3989422804014327;

// Zero of the same sign in every lane whose |v| < FLT_MIN; NaN is kept.
@inline export function flushSigned32(v: v128): v128 {
  const tiny = f32x4.lt(f32x4.abs(v), f32x4.splat(FLT_MIN));
  return v128.andnot(v, v128.andnot(tiny, i32x4.splat(SIGN32)));
}

// e^r - 1 for |r| <= ln2/2: Taylor series to r^11/11!, by Horner.
@inline export function expm1Reduced(r: v128): v128 {
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
@inline export function pow2(k: v128): v128 {
  const ki = i64x2.extend_low_i32x4_s(i32x4.trunc_sat_f64x2_s_zero(k));
  return i64x2.shl(i64x2.add(ki, i64x2.splat(1023)), 52);
}

// k = floor(t/ln2 + 1/2), the multiple of ln2 nearest t (floor, not nearest-even: JS has no such round).
@inline export function reduceK(t: v128): v128 {
  return f64x2.floor(f64x2.add(f64x2.mul(t, f64x2.splat(INV_LN2)), f64x2.splat(0.5)));
}

// tanh(a) for 0 <= a <= 10 (or NaN): e^(2a) - 1 = 2^k·p + (2^k - 1) with p = e^r - 1, then
// tanh = em1 / (em1 + 2). No cancellation: em1 >= 0, and for k = 0 it is p itself.
@inline export function tanhAbs(a: v128): v128 {
  const t = f64x2.add(a, a);
  const k = reduceK(t);
  const s = pow2(k);
  const em1 = f64x2.add(f64x2.mul(s, expm1Reduced(f64x2.sub(t, f64x2.mul(k, f64x2.splat(LN2))))), f64x2.sub(s, f64x2.splat(1)));
  return f64x2.div(em1, f64x2.add(em1, f64x2.splat(2)));
}

// Beyond |x| = 10, tanh rounds to ±1 in f32 (1 - tanh(9.1) < 2^-25), so the argument is clamped.
@inline export function tanh2(x: v128): v128 {
  const m = tanhAbs(f64x2.min(f64x2.abs(x), f64x2.splat(10)));
  return v128.or(m, v128.and(x, i64x2.splat(i64.MIN_VALUE)));
}

// sigmoid(x) = 1/(1 + e) for x >= 0, e/(1 + e) for x < 0, with e = e^(-|x|) <= 1: nothing
// overflows. |x| is clamped to 120, where sigmoid(-120) ~ 8e-53 flushes to 0 in f32 anyway.
@inline export function sigmoid2(x: v128): v128 {
  const t = f64x2.neg(f64x2.min(f64x2.abs(x), f64x2.splat(120)));
  const k = reduceK(t);
  const p = expm1Reduced(f64x2.sub(t, f64x2.mul(k, f64x2.splat(LN2))));
  const e = f64x2.mul(pow2(k), f64x2.add(p, f64x2.splat(1)));
  const inv = f64x2.div(f64x2.splat(1), f64x2.add(f64x2.splat(1), e));
  return v128.bitselect(f64x2.mul(e, inv), inv, f64x2.lt(x, f64x2.splat(0)));
}

// Two (or one) f64 lanes rounded to f32, flushed with sign, stored.
@inline export function store2Flushed(ptr: usize, v: v128): void {
  v128.store64_lane(ptr, flushSigned32(f32x4.demote_f64x2_zero(v)), 0);
}

@inline export function store1Flushed(ptr: usize, v: v128): void {
  v128.store32_lane(ptr, flushSigned32(f32x4.demote_f64x2_zero(v)), 0);
}


// e^t for -700 <= t <= 0 (callers clamp): 2^k·(1 + (e^r - 1)).
@inline export function expNeg(t: v128): v128 {
  const k = reduceK(t);
  return f64x2.mul(pow2(k), f64x2.add(expm1Reduced(f64x2.sub(t, f64x2.mul(k, f64x2.splat(LN2)))), f64x2.splat(1)));
}

const LOG2E_F: f32 = <f32>1.4426950408889634;
const EXP_C1: f32 = <f32>0.693359375; // ln 2 = EXP_C1 - EXP_C2, EXP_C1 exact in 9 bits (Cody–Waite)
const EXP_C2: f32 = <f32>2.12194440e-4;

// e^(hi + lo) in f32 lanes for hi <= 1 (lo a small correction carrying what hi could not hold):
// hi = n·ln2 + r (Cody–Waite), e^r by Cephes' expf polynomial, times 2^n from the exponent bits;
// 0 when n < -126 (the result would be subnormal, and is flushed anyway), and for hi = -inf.
// n = floor(hi/ln2 + 1/2). Within 2 ulp of e^(hi + lo); every step an f32 add, sub, mul or floor,
// so expF32 in src/kernels/activations.ts gives the same bits.
@inline export function expF32x4(hi: v128, lo: v128): v128 {
  const n = f32x4.floor(f32x4.add(f32x4.mul(hi, f32x4.splat(LOG2E_F)), f32x4.splat(<f32>0.5)));
  let r = f32x4.sub(hi, f32x4.mul(n, f32x4.splat(EXP_C1)));
  r = f32x4.add(r, f32x4.mul(n, f32x4.splat(EXP_C2)));
  r = f32x4.add(r, lo);
  let p = f32x4.splat(<f32>1.9875691500e-4);
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(<f32>1.3981999507e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(<f32>8.3334519073e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(<f32>4.1665795894e-2));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(<f32>1.6666665459e-1));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(<f32>5.0000001201e-1));
  p = f32x4.add(f32x4.mul(p, f32x4.mul(r, r)), r);
  p = f32x4.add(p, f32x4.splat(<f32>1));
  const ni = i32x4.trunc_sat_f32x4_s(n);
  const scaled = f32x4.mul(p, i32x4.shl(i32x4.add(ni, i32x4.splat(127)), 23));
  return v128.andnot(scaled, i32x4.lt_s(ni, i32x4.splat(-126)));
}

// e^d for 4 f64 exponents d <= 1 (dA's two lanes, then dB's), each split into f32 hi + lo so the
// f32 exp loses nothing to the argument's rounding: f32 lanes, within 2 ulp of e^d.
@inline export function expF32OfF64(dA: v128, dB: v128): v128 {
  const hA = f32x4.demote_f64x2_zero(dA),
    hB = f32x4.demote_f64x2_zero(dB);
  const lA = f32x4.demote_f64x2_zero(f64x2.sub(dA, f64x2.promote_low_f32x4(hA)));
  const lB = f32x4.demote_f64x2_zero(f64x2.sub(dB, f64x2.promote_low_f32x4(hB)));
  return expF32x4(i32x4.shuffle(hA, hB, 0, 1, 4, 5), i32x4.shuffle(lA, lB, 0, 1, 4, 5));
}

// Lanes 2 and 3 of f32 lanes, as f64x2.
@inline export function promoteHigh(v: v128): v128 {
  return f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 2, 3));
}

// φ(x) = e^(-x²/2)/√(2π), the exponent clamped at -700.
@inline export function normalPdf(x: v128): v128 {
  const t = f64x2.neg(f64x2.min(f64x2.mul(f64x2.mul(x, x), f64x2.splat(0.5)), f64x2.splat(700)));
  return f64x2.mul(expNeg(t), f64x2.splat(INV_SQRT_2PI));
}
