import { FLT_MIN } from "./lanes";

// f64 lane math shared by the activation kernels (activations.ts, gelu.ts): exp by range reduction,
// tanh, sigmoid, erfc, and f32 stores with sign-keeping flushes. Every helper is inlined; none is a
// module export (kernels.ts re-exports only the kernels). The JavaScript twins of these formulas
// are in src/kernels/activation-math.ts, operation for operation.

const LN2: f64 = 0.6931471805599453;
const INV_LN2: f64 = 1.4426950408889634;
const SIGN32: i32 = i32.MIN_VALUE;
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

// erf(a) for 0 <= a <= 2 as a·P(y), y = a²/2 - 1 in [-1, 1]: P of degree 16 (Chebyshev interpolant
// of erf(a)/a in a², turned into powers of y; coefficients in ERF_NEAR of src/kernels/gelu.ts), by
// Horner: 1 - erf(a) within 3e-13 relative, in 17 steps where the Maclaurin series needed 31.
@inline export function erfNear(a: v128): v128 {
  const y = f64x2.sub(f64x2.mul(f64x2.mul(a, a), f64x2.splat(0.5)), f64x2.splat(1));
  let p = f64x2.splat(7.44648787076585e-12);
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(-1.44638079291326e-10));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(1.17096021767793e-09));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(-8.616879654255172e-09));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(6.113795336659678e-08));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(-4.0450249016998896e-07));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(2.475849818495135e-06));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(-1.3946282484411654e-05));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(7.180098642667332e-05));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(-0.0003351435289183913));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(0.0014050914292435546));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(-0.005234875837329261));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(0.017128344571103196));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(-0.048662777449028305));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(0.11947913860988647));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(-0.26111186093124866));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(0.6749332360396548));
  return f64x2.mul(a, p);
}

// erf(a) for 0 <= a <= 1 (|x| <= √2, most of a layer's activations) as a·Q(y), y = 2a² - 1: Q of
// degree 10 (Chebyshev interpolant; ERF_SMALL in src/kernels/gelu.ts), within 1e-14 relative on
// erf and 1 - erf, in 11 Horner steps where erfNear takes 17.
@inline export function erfSmall(a: v128): v128 {
  const y = f64x2.sub(f64x2.mul(f64x2.mul(a, a), f64x2.splat(2)), f64x2.splat(1));
  let p = f64x2.splat(9.267253631151107e-12);
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(-2.045754676771594e-10));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(4.115616070166084e-09));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(-7.511463018250453e-08));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(1.223382871395895e-06));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(-1.7537169910403216e-05));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(0.000217517156005112));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(-0.0022854855610616384));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(0.019852496688986587));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(-0.14053608902272072));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(0.9654687386698669));
  return f64x2.mul(a, p);
}

// erfc(a) for a > 2 as e^(-a²)·G(y), y = 6t - 2 with t = 2/(2 + a) (a clamped at 10 in t, where
// erfc(a) < 3e-45 flushes in every use; 0 at a = ∞): G of degree 12 (Chebyshev interpolant of erfc(a)·e^(a²)
// in t; ERF_FAR in src/kernels/gelu.ts), within 3e-14 relative, one division where the
// continued fraction took 32.
@inline export function erfcFar(a: v128): v128 {
  const t = f64x2.div(f64x2.splat(2), f64x2.add(f64x2.splat(2), f64x2.min(a, f64x2.splat(10))));
  const y = f64x2.sub(f64x2.mul(t, f64x2.splat(6)), f64x2.splat(2));
  let p = f64x2.splat(4.738698322626078e-11);
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(7.893874442999049e-11));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(-1.8481813301995942e-09));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(-1.5535728259408188e-09));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(7.243119956590327e-08));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(8.869542569150957e-08));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(-3.369288682546212e-06));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(-1.3910160704769595e-05));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(0.00015853549811573834));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(0.002490646438175402));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(0.01861364006226464));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(0.09715051828508052));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(0.13699945762506113));
  const e = f64x2.mul(expNeg(f64x2.neg(f64x2.min(f64x2.mul(a, a), f64x2.splat(700)))), p);
  // The exponent's clamp leaves e^(-700)·G > 0 at a = ∞, where erfc is 0 (so that -∞·Φ(-∞) is NaN).
  return v128.andnot(e, f64x2.eq(a, f64x2.splat(Infinity)));
}

// Φ(x), the standard normal CDF: erfc(|x|/√2)/2 below 0, 1 - erfc(|x|/√2)/2 above.
@inline export function normalCdf(x: v128): v128 {
  const a = f64x2.mul(f64x2.abs(x), f64x2.splat(SQRT1_2));
  // Per lane: erfSmall up to a = 1, erfNear up to 2, erfcFar beyond; a pair computes only the pieces its lanes need.
  const small = f64x2.le(a, f64x2.splat(1));
  let erf: v128;
  if (i64x2.all_true(small)) erf = erfSmall(a);
  else {
    erf = erfNear(a);
    if (v128.any_true(small)) erf = v128.bitselect(erfSmall(a), erf, small);
  }
  let erfc = f64x2.sub(f64x2.splat(1), erf);
  const far = f64x2.gt(a, f64x2.splat(2));
  if (v128.any_true(far)) erfc = v128.bitselect(erfcFar(a), erfc, far);
  const half = f64x2.mul(erfc, f64x2.splat(0.5));
  return v128.bitselect(half, f64x2.sub(f64x2.splat(1), half), f64x2.lt(x, f64x2.splat(0)));
}

// φ(x) = e^(-x²/2)/√(2π), the exponent clamped at -700.
@inline export function normalPdf(x: v128): v128 {
  const t = f64x2.neg(f64x2.min(f64x2.mul(f64x2.mul(x, x), f64x2.splat(0.5)), f64x2.splat(700)));
  return f64x2.mul(expNeg(t), f64x2.splat(INV_SQRT_2PI));
}
