import { FLT_MIN } from "./lanes";

// f64 lane math shared by the activation kernels (activations.ts, gelu.ts): exp by range reduction,
// tanh, sigmoid, erfc, and f32 stores with sign-keeping flushes. Every helper is inlined; none is a
// module export (kernels.ts re-exports only the kernels). The JavaScript twins of these formulas
// are in src/kernels/activation-math.ts, operation for operation.

const LN2: f64 = 0.6931471805599453;
const INV_LN2: f64 = 1.4426950408889634;
const SIGN32: i32 = i32.MIN_VALUE;
const TWO_OVER_SQRT_PI: f64 = 1.1283791670955126;
const SQRT_PI: f64 = 1.7724538509055159;
const SQRT1_2: f64 = 0.7071067811865476;
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

// erf(a) for 0 <= a <= 2: its Maclaurin series Σ (-1)^n a^(2n+1) / (n!(2n+1)) to n = 30, by Horner
// in a² (coefficients rounded from the exact fractions); 1 - erf(a) within 3e-13 relative.
@inline export function erfSeries(a: v128): v128 {
  const s = f64x2.mul(a, a);
  let p = f64x2.splat(6.180307588222797e-35);
  p = f64x2.add(f64x2.mul(p, s), f64x2.splat(-1.9169428621097826e-33));
  p = f64x2.add(f64x2.mul(p, s), f64x2.splat(5.754191643982172e-32));
  p = f64x2.add(f64x2.mul(p, s), f64x2.splat(-1.669761793417372e-30));
  p = f64x2.add(f64x2.mul(p, s), f64x2.splat(4.678483515518485e-29));
  p = f64x2.add(f64x2.mul(p, s), f64x2.splat(-1.2641078988989164e-27));
  p = f64x2.add(f64x2.mul(p, s), f64x2.splat(3.289260349175752e-26));
  p = f64x2.add(f64x2.mul(p, s), f64x2.splat(-8.230149299214221e-25));
  p = f64x2.add(f64x2.mul(p, s), f64x2.splat(1.977064753877905e-23));
  p = f64x2.add(f64x2.mul(p, s), f64x2.splat(-4.5518467589282e-22));
  p = f64x2.add(f64x2.mul(p, s), f64x2.splat(1.0025164934907719e-20));
  p = f64x2.add(f64x2.mul(p, s), f64x2.splat(-2.107855191442136e-19));
  p = f64x2.add(f64x2.mul(p, s), f64x2.splat(4.221407288807088e-18));
  p = f64x2.add(f64x2.mul(p, s), f64x2.splat(-8.032735012415773e-17));
  p = f64x2.add(f64x2.mul(p, s), f64x2.splat(1.4483264643598138e-15));
  p = f64x2.add(f64x2.mul(p, s), f64x2.splat(-2.466827010264457e-14));
  p = f64x2.add(f64x2.mul(p, s), f64x2.splat(3.9554295164585257e-13));
  p = f64x2.add(f64x2.mul(p, s), f64x2.splat(-5.9477940136376354e-12));
  p = f64x2.add(f64x2.mul(p, s), f64x2.splat(8.35070279514724e-11));
  p = f64x2.add(f64x2.mul(p, s), f64x2.splat(-1.0892221037148573e-9));
  p = f64x2.add(f64x2.mul(p, s), f64x2.splat(1.3122532963802806e-8));
  p = f64x2.add(f64x2.mul(p, s), f64x2.splat(-1.4503852223150468e-7));
  p = f64x2.add(f64x2.mul(p, s), f64x2.splat(0.0000014589169000933706));
  p = f64x2.add(f64x2.mul(p, s), f64x2.splat(-0.000013227513227513228));
  p = f64x2.add(f64x2.mul(p, s), f64x2.splat(0.00010683760683760684));
  p = f64x2.add(f64x2.mul(p, s), f64x2.splat(-0.0007575757575757576));
  p = f64x2.add(f64x2.mul(p, s), f64x2.splat(0.004629629629629629));
  p = f64x2.add(f64x2.mul(p, s), f64x2.splat(-0.023809523809523808));
  p = f64x2.add(f64x2.mul(p, s), f64x2.splat(0.1));
  p = f64x2.add(f64x2.mul(p, s), f64x2.splat(-0.3333333333333333));
  p = f64x2.add(f64x2.mul(p, s), f64x2.splat(1));
  return f64x2.mul(f64x2.mul(a, p), f64x2.splat(TWO_OVER_SQRT_PI));
}

// erfc(a) for a > 2 by its continued fraction a + (1/2)/(a + 1/(a + (3/2)/(a + ...))), 32 levels
// evaluated from the innermost (within 1e-12 relative at a = 2, better beyond).
@inline export function erfcFraction(a: v128): v128 {
  let t = a;
  for (let i = 32; i >= 1; i--) t = f64x2.add(a, f64x2.div(f64x2.splat(<f64>i * 0.5), t));
  const e = expNeg(f64x2.neg(f64x2.min(f64x2.mul(a, a), f64x2.splat(700))));
  return f64x2.div(e, f64x2.mul(t, f64x2.splat(SQRT_PI)));
}

// Φ(x), the standard normal CDF: erfc(|x|/√2)/2 below 0, 1 - erfc(|x|/√2)/2 above. The continued
// fraction runs only for a pair of lanes where one has |x|/√2 > 2.
@inline export function normalCdf(x: v128): v128 {
  const a = f64x2.mul(f64x2.abs(x), f64x2.splat(SQRT1_2));
  let erfc = f64x2.sub(f64x2.splat(1), erfSeries(a));
  const far = f64x2.gt(a, f64x2.splat(2));
  if (v128.any_true(far)) erfc = v128.bitselect(erfcFraction(a), erfc, far);
  const half = f64x2.mul(erfc, f64x2.splat(0.5));
  return v128.bitselect(half, f64x2.sub(f64x2.splat(1), half), f64x2.lt(x, f64x2.splat(0)));
}

// φ(x) = e^(-x²/2)/√(2π), the exponent clamped at -700.
@inline export function normalPdf(x: v128): v128 {
  const t = f64x2.neg(f64x2.min(f64x2.mul(f64x2.mul(x, x), f64x2.splat(0.5)), f64x2.splat(700)));
  return f64x2.mul(expNeg(t), f64x2.splat(INV_SQRT_2PI));
}
