// GELU kernels, exact (x·Φ(x)) and with PyTorch's tanh approximation: forward, backward g·f'(x) and
// the backward's x-gradient gg·g·f''(x), all from the input x (formulas in assembly/gelu.ts). For
// float32 operands in this thread's WebAssembly memory the SIMD kernels run in place; otherwise the
// JavaScript twins below, the same float64 operations in the same order, give the same bits.
// float64 arrays use the float64 results unrounded, with core's erf (1e-15) for Φ, for gradient checks.

import type { FloatArray } from "../tensor/dtype.js";
import { expNeg, f32, sigmoidF64 } from "./activations.js";
import { wasmInPlace } from "./dispatch.js";
import { erf } from "./special.js";

const TWO_OVER_SQRT_PI = 1.1283791670955126;
const SQRT_PI = 1.7724538509055159;
const INV_SQRT_2PI = 0.3989422804014327;
const K0 = 0.7978845608028654; // √(2/π)
const K1 = 0.044715;

// (-1)^n / (n!(2n+1)) for n = 0..30, the literals of erfSeries in assembly/activation-math.ts.
export const ERF_SERIES = [
  1, -0.3333333333333333, 0.1, -0.023809523809523808, 0.004629629629629629, -0.0007575757575757576,
  0.00010683760683760684, -0.000013227513227513228, 0.0000014589169000933706, -1.4503852223150468e-7,
  1.3122532963802806e-8, -1.0892221037148573e-9, 8.35070279514724e-11, -5.9477940136376354e-12, 3.9554295164585257e-13,
  -2.466827010264457e-14, 1.4483264643598138e-15, -8.032735012415773e-17, 4.221407288807088e-18, -2.107855191442136e-19,
  1.0025164934907719e-20, -4.5518467589282e-22, 1.977064753877905e-23, -8.230149299214221e-25, 3.289260349175752e-26,
  -1.2641078988989164e-27, 4.678483515518485e-29, -1.669761793417372e-30, 5.754191643982172e-32,
  -1.9169428621097826e-33, 6.180307588222797e-35,
];

function erfSeries(a: number): number {
  const s = a * a;
  let p = ERF_SERIES[30]!;
  for (let n = 29; n >= 0; n--) p = p * s + ERF_SERIES[n]!;
  return a * p * TWO_OVER_SQRT_PI;
}

function erfcFraction(a: number): number {
  let t = a;
  for (let i = 32; i >= 1; i--) t = a + (i * 0.5) / t;
  return expNeg(-Math.min(a * a, 700)) / (t * SQRT_PI);
}

/** Φ(x) as the SIMD kernels compute it (series up to |x|/√2 = 2, continued fraction beyond). */
export function normalCdfF64(x: number): number {
  const a = Math.abs(x) * Math.SQRT1_2;
  const half = (a > 2 ? erfcFraction(a) : 1 - erfSeries(a)) * 0.5;
  return x < 0 ? half : 1 - half;
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
type Fns = { cdf: (x: number) => number; pdf: (x: number) => number; sigmoid: (v: number) => number };
const gelu = (f: Fns, x: number) => x * f.cdf(x);
const geluGrad = (f: Fns, g: number, x: number) => g * (f.cdf(x) + x * f.pdf(x));
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
const F32: Fns = { cdf: normalCdfF64, pdf: normalPdf, sigmoid: sigmoidF64 };
const F64: Fns = { cdf: cdf64, pdf: pdf64, sigmoid: sigmoid64 };

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
