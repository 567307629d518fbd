import { load1, load2 } from "./lanes";
import { expF32x4, flushSigned32, normalPdf, sigmoid2, store1Flushed, store2Flushed } from "./activation-math";

// ---------------------------------------------------------------------------------------------
// GELU kernels, exact (x·Φ(x)) and with PyTorch's tanh approximation
// (x/2·(1 + tanh(√(2/π)·(x + 0.044715·x³)))): forward, backward g·f'(x) and the backward's
// x-gradient gg·g·f''(x), all from the input x. Exact GELU's forward and backward run in f32 lanes
// (below); the others are computed in f64 (2 lanes) and rounded once to f32. Subnormals are flushed
// with their sign; the JavaScript twins in src/kernels/gelu.ts give the same bits.
//   exact: f' = Φ + x·φ,  f'' = φ·(2 - x²)
//   tanh:  with u = K0·(x + K1·x³), s = (1 + tanh(u))/2 = sigmoid(2u), t = 2s - 1, q = 1 - t² = 4s(1 - s),
//          u' = K0·(1 + 3·K1·x²), u'' = 6·K0·K1·x:  f = x·s,  f' = s + x·q·u'/2,
//          f'' = q·(u' - x·t·u'² + x·u''/2)
// ---------------------------------------------------------------------------------------------

const K0: f64 = 0.7978845608028654; // √(2/π)
const K1: f64 = 0.044715;

@inline function geluGradGrad2(gg: v128, g: v128, x: v128): v128 {
  const second = f64x2.mul(normalPdf(x), f64x2.sub(f64x2.splat(2), f64x2.mul(x, x)));
  return f64x2.mul(f64x2.mul(gg, g), second);
}

// ---------------------------------------------------------------------------------------------
// Exact GELU's forward and backward in f32 lanes (4 at a time): the two kernels a transformer's MLP
// runs every step. Φ(x) = erfc(-x/√2)/2 from erfc(a) = t·exp(P(t) - a²), t = 1/(1 + a/2), with the
// degree-9 P of Numerical Recipes' erfcc (fractional error below 1.2e-7 for every a >= 0), which
// keeps Φ's relative precision far into the negative tail. The exponent's -a² = -x²/2 is carried
// as an exact pair (Dekker's product, then TwoSum with P), so exp's argument loses nothing when it
// is large. Measured on every 2^-22 step of [-14, 14] (scripts/f32-math.mjs; gelu.test.ts checks a
// sample): the forward within 8.2·2^-24 relative of x·Φ(x) wherever |x·Φ(x)| >= 1e-36, the
// derivative within 4.1·2^-24 absolute of Φ + x·φ; PyTorch's own CPU kernel takes Φ from an erf with 1.5e-7 absolute error.
// Every operation is an f32 add, sub, mul, div or floor, so the JavaScript twins in
// src/kernels/gelu.ts give the same bits.
// ---------------------------------------------------------------------------------------------

const SQRT1_2_F: f32 = <f32>0.7071067811865476;
const INV_SQRT_2PI_F: f32 = <f32>0.3989422804014327;

// The rounding error of q = f32(-x²/2) (q + qLo = -x²/2 exactly): Dekker's split of x into 12-bit
// halves, whose products are exact in f32.
@inline function negHalfSquareLo(x: v128, sq: v128): v128 {
  const c = f32x4.mul(f32x4.splat(<f32>4097), x);
  const xh = f32x4.sub(c, f32x4.sub(c, x));
  const xl = f32x4.sub(x, xh);
  const e = f32x4.add(
    f32x4.add(f32x4.sub(f32x4.mul(xh, xh), sq), f32x4.mul(f32x4.splat(<f32>2), f32x4.mul(xh, xl))),
    f32x4.mul(xl, xl),
  );
  return f32x4.mul(f32x4.splat(<f32>-0.5), e);
}

// Φ(x) given q + qLo = -x²/2.
@inline function normalCdfF4(x: v128, q: v128, qLo: v128): v128 {
  const a = f32x4.mul(f32x4.abs(x), f32x4.splat(SQRT1_2_F));
  const t = f32x4.div(f32x4.splat(<f32>1), f32x4.add(f32x4.splat(<f32>1), f32x4.mul(f32x4.splat(<f32>0.5), a)));
  let p = f32x4.splat(<f32>0.17087277);
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(<f32>-0.82215223));
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(<f32>1.48851587));
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(<f32>-1.13520398));
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(<f32>0.27886807));
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(<f32>-0.18628806));
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(<f32>0.09678418));
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(<f32>0.37409196));
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(<f32>1.00002368));
  p = f32x4.add(f32x4.mul(p, t), f32x4.splat(<f32>-1.26551223));
  // p + q as hi + lo (TwoSum), plus q's own rounding error
  const hi = f32x4.add(p, q);
  const bb = f32x4.sub(hi, p);
  const lo = f32x4.add(f32x4.add(f32x4.sub(p, f32x4.sub(hi, bb)), f32x4.sub(q, bb)), qLo);
  const half = f32x4.mul(f32x4.splat(<f32>0.5), f32x4.mul(t, expF32x4(hi, lo)));
  return v128.bitselect(half, f32x4.sub(f32x4.splat(<f32>1), half), f32x4.lt(x, f32x4.splat(<f32>0)));
}

@inline function geluF4(x: v128): v128 {
  const sq = f32x4.mul(x, x);
  const q = f32x4.mul(f32x4.splat(<f32>-0.5), sq);
  return flushSigned32(f32x4.mul(x, normalCdfF4(x, q, negHalfSquareLo(x, sq))));
}

@inline function geluGradF4(g: v128, x: v128): v128 {
  const sq = f32x4.mul(x, x);
  const q = f32x4.mul(f32x4.splat(<f32>-0.5), sq);
  const qLo = negHalfSquareLo(x, sq);
  const pdf = f32x4.mul(expF32x4(q, qLo), f32x4.splat(INV_SQRT_2PI_F));
  return flushSigned32(f32x4.mul(g, f32x4.add(normalCdfF4(x, q, qLo), f32x4.mul(x, pdf))));
}

// (1 + tanh(u))/2 = sigmoid(2u): that form keeps its relative precision where tanh(u) is near -1.
@inline function sigOf(x: v128): v128 {
  const x3 = f64x2.mul(f64x2.mul(x, x), x);
  const u = f64x2.mul(f64x2.splat(K0), f64x2.add(x, f64x2.mul(f64x2.splat(K1), x3)));
  return sigmoid2(f64x2.add(u, u));
}

@inline function du(x: v128): v128 {
  return f64x2.mul(f64x2.splat(K0), f64x2.add(f64x2.splat(1), f64x2.mul(f64x2.splat(3 * K1), f64x2.mul(x, x))));
}

@inline function geluTanh2(x: v128): v128 {
  return f64x2.mul(x, sigOf(x));
}

// f' = s + 2x·s(1 - s)·u'  (q/2 = 2·s(1 - s))
@inline function geluTanhGrad2(g: v128, x: v128): v128 {
  const s = sigOf(x);
  const p = f64x2.mul(s, f64x2.sub(f64x2.splat(1), s));
  return f64x2.mul(g, f64x2.add(s, f64x2.mul(f64x2.mul(f64x2.add(x, x), p), du(x))));
}

// f'' = q·(u' - x·t·u'² + x·u''/2) with q = 4·s(1 - s), t = 2s - 1
@inline function geluTanhGradGrad2(gg: v128, g: v128, x: v128): v128 {
  const s = sigOf(x);
  const q = f64x2.mul(f64x2.mul(s, f64x2.sub(f64x2.splat(1), s)), f64x2.splat(4));
  const t = f64x2.sub(f64x2.add(s, s), f64x2.splat(1));
  const d1 = du(x);
  const d2 = f64x2.mul(f64x2.splat(6 * K0 * K1), x);
  const inner = f64x2.add(
    f64x2.sub(d1, f64x2.mul(f64x2.mul(f64x2.mul(x, t), d1), d1)),
    f64x2.mul(f64x2.mul(f64x2.splat(0.5), x), d2),
  );
  return f64x2.mul(f64x2.mul(gg, g), f64x2.mul(q, inner));
}

/** out[i] = x[i]·Φ(x[i]) (exact GELU) in f32 lanes (within 8.2·2^-24 relative), subnormals flushed; out may be x. */
export function geluForward(x: usize, out: usize, n: i32): void {
  let i = 0;
  // Two vectors per iteration: their latency-bound polynomial chains overlap.
  for (; i + 8 <= n; i += 8) {
    const o = <usize>i * 4;
    const a = geluF4(v128.load(x + o)),
      b = geluF4(v128.load(x + o + 16));
    v128.store(out + o, a);
    v128.store(out + o + 16, b);
  }
  for (; i + 4 <= n; i += 4) v128.store(out + <usize>i * 4, geluF4(v128.load(x + <usize>i * 4)));
  for (; i < n; i++) {
    const o = <usize>i * 4;
    store<f32>(out + o, f32x4.extract_lane(geluF4(f32x4.splat(load<f32>(x + o))), 0));
  }
}

/** out[i] = g[i]·(Φ(x[i]) + x[i]·φ(x[i])): exact GELU's backward from its input x, in f32 lanes; out may alias g or x. */
export function geluBackward(g: usize, x: usize, out: usize, n: i32): void {
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const o = <usize>i * 4;
    const a = geluGradF4(v128.load(g + o), v128.load(x + o)),
      b = geluGradF4(v128.load(g + o + 16), v128.load(x + o + 16));
    v128.store(out + o, a);
    v128.store(out + o + 16, b);
  }
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i * 4;
    v128.store(out + o, geluGradF4(v128.load(g + o), v128.load(x + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i * 4;
    const d = geluGradF4(f32x4.splat(load<f32>(g + o)), f32x4.splat(load<f32>(x + o)));
    store<f32>(out + o, f32x4.extract_lane(d, 0));
  }
}

/** out[i] = gg[i]·g[i]·φ(x[i])·(2 - x[i]²): the x-gradient of geluBackward; out may alias an input. */
export function geluDoubleBackward(gg: usize, g: usize, x: usize, out: usize, n: i32): void {
  let i = 0;
  for (; i <= n - 1; i += 2) {
    const o = <usize>i * 4;
    if (i + 2 <= n) store2Flushed(out + o, geluGradGrad2(load2(gg + o), load2(g + o), load2(x + o)));
    else store1Flushed(out + o, geluGradGrad2(load1(gg + o), load1(g + o), load1(x + o)));
  }
}

/** out[i] = GELU(x[i]) with the tanh approximation, in f32, computed in f64, flushed; out may be x. */
export function geluTanhForward(x: usize, out: usize, n: i32): void {
  let i = 0;
  for (; i + 2 <= n; i += 2) store2Flushed(out + <usize>i * 4, geluTanh2(load2(x + <usize>i * 4)));
  if (i < n) store1Flushed(out + <usize>i * 4, geluTanh2(load1(x + <usize>i * 4)));
}

/** out[i] = g[i]·f'(x[i]) for the tanh-approximated GELU f; out may alias g or x. */
export function geluTanhBackward(g: usize, x: usize, out: usize, n: i32): void {
  let i = 0;
  for (; i + 2 <= n; i += 2) {
    const o = <usize>i * 4;
    store2Flushed(out + o, geluTanhGrad2(load2(g + o), load2(x + o)));
  }
  if (i < n) store1Flushed(out + <usize>i * 4, geluTanhGrad2(load1(g + <usize>i * 4), load1(x + <usize>i * 4)));
}

/** out[i] = gg[i]·g[i]·f''(x[i]) for the tanh-approximated GELU f: the x-gradient of geluTanhBackward. */
export function geluTanhDoubleBackward(gg: usize, g: usize, x: usize, out: usize, n: i32): void {
  let i = 0;
  for (; i <= n - 1; i += 2) {
    const o = <usize>i * 4;
    if (i + 2 <= n) store2Flushed(out + o, geluTanhGradGrad2(load2(gg + o), load2(g + o), load2(x + o)));
    else store1Flushed(out + o, geluTanhGradGrad2(load1(gg + o), load1(g + o), load1(x + o)));
  }
}
