// GELU kernels, exact (x·Φ(x)) and with PyTorch's tanh approximation: forward, backward g·f'(x) and
// the backward's x-gradient gg·g·f''(x), all from the input x (formulas in assembly/gelu.ts). For
// float32 operands in this thread's WebAssembly memory the SIMD kernels run in place; otherwise the
// JavaScript twins below, the same float64 operations in the same order, give the same bits.
// float64 arrays use the float64 results unrounded, with core's erf (1e-15) for Φ, for gradient checks.

import type { FloatArray } from "../tensor/dtype.js";
import { expNeg, f32, sigmoidF64 } from "./activations.js";
import { wasmInPlace } from "./dispatch.js";
import { erf } from "./special.js";

const INV_SQRT_2PI = 0.3989422804014327;
const K0 = 0.7978845608028654; // √(2/π)
const K1 = 0.044715;

// Coefficients of erfNear and erfcFar in assembly/activation-math.ts (the same literals), powers of
// y from y^0 up. ERF_NEAR: erf(a) = a·P(y), y = a²/2 - 1, for 0 <= a <= 2 (degree 16; 1 - erf(a)
// within 3e-13 relative). ERF_FAR: erfc(a) = e^(-a²)·G(y), y = 6t - 2, t = 2/(2 + a), for
// 2 < a <= 10 (degree 12; within 3e-14 relative). Both are Chebyshev interpolants (erf(a)/a in a²,
// erfc(a)·e^(a²) in t) rewritten in powers of y; gelu.test.ts checks Φ from them against core's erf
// and erfc's continued fraction.
const ERF_NEAR = [
  0.6749332360396548, -0.26111186093124866, 0.11947913860988647, -0.048662777449028305, 0.017128344571103196,
  -0.005234875837329261, 0.0014050914292435546, -0.0003351435289183913, 0.00007180098642667332,
  -0.000013946282484411654, 0.000002475849818495135, -4.0450249016998896e-7, 6.113795336659678e-8,
  -8.616879654255172e-9, 1.17096021767793e-9, -1.44638079291326e-10, 7.44648787076585e-12,
];
const ERF_FAR = [
  0.13699945762506113, 0.09715051828508052, 0.01861364006226464, 0.002490646438175402, 0.00015853549811573834,
  -0.000013910160704769595, -0.000003369288682546212, 8.869542569150957e-8, 7.243119956590327e-8,
  -1.5535728259408188e-9, -1.8481813301995942e-9, 7.893874442999049e-11, 4.738698322626078e-11,
];

function horner(c: readonly number[], y: number): number {
  let p = c[c.length - 1]!;
  for (let i = c.length - 2; i >= 0; i--) p = p * y + c[i]!;
  return p;
}

// ERF_SMALL: erf(a) = a·Q(y), y = 2a² - 1, for 0 <= a <= 1 (degree 10; within 1e-14 relative), as
// erfSmall in assembly/activation-math.ts.
const ERF_SMALL = [
  0.9654687386698669, -0.14053608902272072, 0.019852496688986587, -0.0022854855610616384, 0.000217517156005112,
  -1.7537169910403216e-5, 1.223382871395895e-6, -7.511463018250453e-8, 4.115616070166084e-9, -2.045754676771594e-10,
  9.267253631151107e-12,
];

function erfSmall(a: number): number {
  return a * horner(ERF_SMALL, a * a * 2 - 1);
}

function erfNear(a: number): number {
  return a * horner(ERF_NEAR, a * a * 0.5 - 1);
}

function erfcFar(a: number): number {
  if (a === Infinity) return 0;
  const t = 2 / (2 + Math.min(a, 10));
  return expNeg(-Math.min(a * a, 700)) * horner(ERF_FAR, t * 6 - 2);
}

/** Φ(x) as the SIMD kernels compute it (erfSmall up to |x|/√2 = 1, erfNear up to 2, erfcFar beyond). */
export function normalCdfF64(x: number): number {
  const a = Math.abs(x) * Math.SQRT1_2;
  const half = (a > 2 ? erfcFar(a) : 1 - (a <= 1 ? erfSmall(a) : erfNear(a))) * 0.5;
  return x < 0 ? half : 1 - half;
}

// R(y) of geluGradNear in assembly/gelu.ts (the same literals, powers of y = x²/4 - 1 from y^0 up):
// GELU's f'(x) = 1/2 + x·R for x² <= 8, within 4e-13 relative away from f'(x)'s zero at x ≈ -0.75.
const GELU_GRAD_NEAR = [
  0.29261590053909814, -0.2002989167827345, 0.15022418758707426, -0.08919284531392702, 0.042049761973687524,
  -0.016248399168528077, 0.005295971863069682, -0.0014896903017987961, 0.00036818526766912996, -8.110841368180743e-5,
  1.611089228514828e-5, -2.9132510590557104e-6, 4.833031503892471e-7, -7.392424805630071e-8, 1.0551133300396032e-8,
  -1.490207068854943e-9, 1.795115167624317e-10,
];

// R(y) of geluGradSmall in assembly/gelu.ts: f'(x) = 1/2 + x·R for x² <= 2, y = x² - 1 (degree 11).
const GELU_GRAD_SMALL = [
  0.583315470587686, -0.170672373034272, 0.037265258081029484, -0.005849097930085596, 0.0007070360230707479,
  -6.921353537900354e-5, 5.683632172848174e-6, -4.016356903724372e-7, 2.4897081729591264e-8, -1.3746466187569695e-9,
  6.87672141452822e-11, -2.9825031333530205e-12,
];

/** GELU's f'(x) = Φ(x) + x·φ(x) as the SIMD kernel computes it (one polynomial for x² <= 2, one up to 8). */
export function geluGradF64(x: number): number {
  const s = x * x;
  if (s <= 2) return 0.5 + x * horner(GELU_GRAD_SMALL, s - 1);
  return s > 8 ? normalCdfF64(x) + x * normalPdf(x) : 0.5 + x * horner(GELU_GRAD_NEAR, s * 0.25 - 1);
}

function normalPdf(x: number): number {
  return expNeg(-Math.min(x * x * 0.5, 700)) * INV_SQRT_2PI;
}

// float64 operands: Φ from core's erf, φ from Math.exp.
const cdf64 = (x: number) => 0.5 * (1 + erf(x * Math.SQRT1_2));
const pdf64 = (x: number) => Math.exp(-0.5 * x * x) * INV_SQRT_2PI;

// (1 + tanh(u))/2 as sigmoid(2u), as sigOf in assembly/gelu.ts
function sigOf(x: number, sigmoid: (v: number) => number): number {
  const u = K0 * (x + K1 * (x * x * x));
  return sigmoid(u + u);
}
const du = (x: number) => K0 * (1 + 3 * K1 * (x * x));

// The six formulas, over (cdf, pdf, sigmoid) so the float32 and float64 paths share them.
type Fns = {
  cdf: (x: number) => number;
  pdf: (x: number) => number;
  /** Φ(x) + x·φ(x), exact GELU's derivative */
  grad: (x: number) => number;
  sigmoid: (v: number) => number;
};
const gelu = (f: Fns, x: number) => x * f.cdf(x);
const geluGrad = (f: Fns, g: number, x: number) => g * f.grad(x);
const geluGradGrad = (f: Fns, gg: number, g: number, x: number) => gg * g * (f.pdf(x) * (2 - x * x));
const geluTanh = (f: Fns, x: number) => x * sigOf(x, f.sigmoid);
function geluTanhGrad(f: Fns, g: number, x: number): number {
  const s = sigOf(x, f.sigmoid);
  return g * (s + (x + x) * (s * (1 - s)) * du(x));
}
function geluTanhGradGrad(f: Fns, gg: number, g: number, x: number): number {
  const s = sigOf(x, f.sigmoid);
  const q = s * (1 - s) * 4;
  const t = s + s - 1;
  const d1 = du(x);
  const inner = d1 - x * t * d1 * d1 + 0.5 * x * (6 * K0 * K1 * x);
  return gg * g * (q * inner);
}

const sigmoid64 = (v: number) => (v >= 0 ? 1 / (1 + Math.exp(-v)) : Math.exp(v) / (1 + Math.exp(v)));
const F32: Fns = { cdf: normalCdfF64, pdf: normalPdf, grad: geluGradF64, sigmoid: sigmoidF64 };
const F64: Fns = { cdf: cdf64, pdf: pdf64, grad: (x) => cdf64(x) + x * pdf64(x), sigmoid: sigmoid64 };

/** Which GELU: the exact one or PyTorch's tanh approximation. */
export type GeluApproximate = "none" | "tanh";

/** out = GELU(x); out may be x. */
export function geluForward(x: FloatArray, out: FloatArray, approximate: GeluApproximate): void {
  const k = wasmInPlace(x, out);
  const isTanh = approximate === "tanh";
  if (k !== null) {
    if (isTanh) k.exports.geluTanhForward(x.byteOffset, out.byteOffset, x.length);
    else k.exports.geluForward(x.byteOffset, out.byteOffset, x.length);
    return;
  }
  const is32 = out instanceof Float32Array;
  const f = is32 ? F32 : F64;
  for (let i = 0; i < x.length; i++) {
    const v = isTanh ? geluTanh(f, x[i]!) : gelu(f, x[i]!);
    out[i] = is32 ? f32(v) : v;
  }
}

/** out = g·GELU'(x). */
export function geluBackward(g: FloatArray, x: FloatArray, out: FloatArray, approximate: GeluApproximate): void {
  const k = wasmInPlace(g, x, out);
  const isTanh = approximate === "tanh";
  if (k !== null) {
    if (isTanh) k.exports.geluTanhBackward(g.byteOffset, x.byteOffset, out.byteOffset, g.length);
    else k.exports.geluBackward(g.byteOffset, x.byteOffset, out.byteOffset, g.length);
    return;
  }
  const is32 = out instanceof Float32Array;
  const f = is32 ? F32 : F64;
  for (let i = 0; i < g.length; i++) {
    const v = isTanh ? geluTanhGrad(f, g[i]!, x[i]!) : geluGrad(f, g[i]!, x[i]!);
    out[i] = is32 ? f32(v) : v;
  }
}

/** out = gg·g·GELU''(x), the x-gradient of geluBackward. */
export function geluDoubleBackward(
  gg: FloatArray,
  g: FloatArray,
  x: FloatArray,
  out: FloatArray,
  approximate: GeluApproximate,
): void {
  const k = wasmInPlace(gg, g, x);
  const isTanh = approximate === "tanh";
  if (k !== null && out instanceof Float32Array && k.contains(out)) {
    const [a, b, c, o] = [gg.byteOffset, g.byteOffset, x.byteOffset, out.byteOffset];
    if (isTanh) k.exports.geluTanhDoubleBackward(a, b, c, o, g.length);
    else k.exports.geluDoubleBackward(a, b, c, o, g.length);
    return;
  }
  const is32 = out instanceof Float32Array;
  const f = is32 ? F32 : F64;
  for (let i = 0; i < g.length; i++) {
    const v = isTanh ? geluTanhGradGrad(f, gg[i]!, g[i]!, x[i]!) : geluGradGrad(f, gg[i]!, g[i]!, x[i]!);
    out[i] = is32 ? f32(v) : v;
  }
}
