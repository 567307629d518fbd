import { load1, load2 } from "./lanes";
import { normalCdf, normalPdf, sigmoid2, store1Flushed, store2Flushed } from "./activation-math";

// ---------------------------------------------------------------------------------------------
// GELU kernels, exact (x·Φ(x)) and with PyTorch's tanh approximation
// (x/2·(1 + tanh(√(2/π)·(x + 0.044715·x³)))): forward, backward g·f'(x) and the backward's
// x-gradient gg·g·f''(x), all from the input x. Computed in f64 (2 lanes) and rounded once to f32,
// subnormals flushed with their sign; the JavaScript twins in src/kernels/gelu.ts give the same bits.
//   exact: f' = Φ + x·φ,  f'' = φ·(2 - x²)
//   tanh:  with u = K0·(x + K1·x³), s = (1 + tanh(u))/2 = sigmoid(2u), t = 2s - 1, q = 1 - t² = 4s(1 - s),
//          u' = K0·(1 + 3·K1·x²), u'' = 6·K0·K1·x:  f = x·s,  f' = s + x·q·u'/2,
//          f'' = q·(u' - x·t·u'² + x·u''/2)
// ---------------------------------------------------------------------------------------------

const K0: f64 = 0.7978845608028654; // √(2/π)
const K1: f64 = 0.044715;

@inline function gelu2(x: v128): v128 {
  return f64x2.mul(x, normalCdf(x));
}

// f'(x) = Φ(x) + x·φ(x) = 1/2 + x·R(x²) with R(s) = erf(x/√2)/(2x) + φ(x) entire in s. For x² <= 8
// (where Φ takes its erfNear) R is one polynomial of degree 16 in y = x²/4 - 1 (Chebyshev
// interpolant; GELU_GRAD_NEAR in src/kernels/gelu.ts), within 4e-13 relative of f' away from its
// zero at x ≈ -0.75 (5e-16 absolute there): one Horner pass where Φ and φ took two and an exp.
@inline function geluGradNear(x: v128): v128 {
  const y = f64x2.sub(f64x2.mul(f64x2.mul(x, x), f64x2.splat(0.25)), f64x2.splat(1));
  let p = f64x2.splat(1.795115167624317e-10);
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(-1.490207068854943e-09));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(1.0551133300396032e-08));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(-7.392424805630071e-08));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(4.833031503892471e-07));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(-2.9132510590557104e-06));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(1.611089228514828e-05));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(-8.110841368180743e-05));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(0.00036818526766912996));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(-0.0014896903017987961));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(0.005295971863069682));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(-0.016248399168528077));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(0.042049761973687524));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(-0.08919284531392702));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(0.15022418758707426));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(-0.2002989167827345));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(0.29261590053909814));
  return f64x2.add(f64x2.splat(0.5), f64x2.mul(x, p));
}

// The same for x² <= 2 (|x| <= √2): degree 11 in y = x² - 1 (GELU_GRAD_SMALL in src/kernels/gelu.ts).
@inline function geluGradSmall(x: v128): v128 {
  const y = f64x2.sub(f64x2.mul(x, x), f64x2.splat(1));
  let p = f64x2.splat(-2.9825031333530205e-12);
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(6.87672141452822e-11));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(-1.3746466187569695e-09));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(2.4897081729591264e-08));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(-4.016356903724372e-07));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(5.683632172848174e-06));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(-6.921353537900354e-05));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(0.0007070360230707479));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(-0.005849097930085596));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(0.037265258081029484));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(-0.170672373034272));
  p = f64x2.add(f64x2.mul(p, y), f64x2.splat(0.583315470587686));
  return f64x2.add(f64x2.splat(0.5), f64x2.mul(x, p));
}

// Per lane: geluGradSmall for x² <= 2, geluGradNear up to 8, Φ + x·φ beyond.
@inline function geluGrad2(g: v128, x: v128): v128 {
  const small = f64x2.le(f64x2.mul(x, x), f64x2.splat(2));
  if (i64x2.all_true(small)) return f64x2.mul(g, geluGradSmall(x));
  let d = geluGradNear(x);
  if (v128.any_true(small)) d = v128.bitselect(geluGradSmall(x), d, small);
  const far = f64x2.gt(f64x2.mul(x, x), f64x2.splat(8));
  if (v128.any_true(far)) d = v128.bitselect(f64x2.add(normalCdf(x), f64x2.mul(x, normalPdf(x))), d, far);
  return f64x2.mul(g, d);
}

@inline function geluGradGrad2(gg: v128, g: v128, x: v128): v128 {
  const second = f64x2.mul(normalPdf(x), f64x2.sub(f64x2.splat(2), f64x2.mul(x, x)));
  return f64x2.mul(f64x2.mul(gg, g), second);
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

/** out[i] = x[i]·Φ(x[i]) (exact GELU) in f32, computed in f64, subnormals flushed; out may be x. */
export function geluForward(x: usize, out: usize, n: i32): void {
  let i = 0;
  // Two pairs per iteration: their polynomial chains (latency-bound) overlap.
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i * 4;
    const ga = gelu2(load2(x + o)),
      gb = gelu2(load2(x + o + 8));
    store2Flushed(out + o, ga);
    store2Flushed(out + o + 8, gb);
  }
  for (; i + 2 <= n; i += 2) store2Flushed(out + <usize>i * 4, gelu2(load2(x + <usize>i * 4)));
  if (i < n) store1Flushed(out + <usize>i * 4, gelu2(load1(x + <usize>i * 4)));
}

/** out[i] = g[i]·(Φ(x[i]) + x[i]·φ(x[i])): exact GELU's backward from its input x; out may alias g or x. */
export function geluBackward(g: usize, x: usize, out: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i * 4;
    const da = geluGrad2(load2(g + o), load2(x + o)),
      db = geluGrad2(load2(g + o + 8), load2(x + o + 8));
    store2Flushed(out + o, da);
    store2Flushed(out + o + 8, db);
  }
  for (; i + 2 <= n; i += 2) {
    const o = <usize>i * 4;
    store2Flushed(out + o, geluGrad2(load2(g + o), load2(x + o)));
  }
  if (i < n) store1Flushed(out + <usize>i * 4, geluGrad2(load1(g + <usize>i * 4), load1(x + <usize>i * 4)));
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
