// GELU kernels, exact (x·Φ(x)) and with PyTorch's tanh approximation: forward, backward g·f'(x) and
// the backward's x-gradient gg·g·f''(x), all from the input x (formulas in assembly/gelu.ts). For
// float32 operands in this thread's WebAssembly memory the SIMD kernels run in place; otherwise the
// JavaScript twins below, the same operations in the same order, give the same bits (exact GELU's
// forward and backward in float32 arithmetic, the rest in float64 rounded once). float64 arrays use
// the float64 results unrounded, with core's erf (1e-15) for Φ, for gradient checks.

import type { FloatArray } from "../tensor/dtype.js";
import { expF32, expNeg, f32, sigmoidF64 } from "./activations.js";
import { wasmInPlace } from "./dispatch.js";
import { erf } from "./special.js";

const INV_SQRT_2PI = 0.3989422804014327;
const K0 = 0.7978845608028654; // √(2/π)
const K1 = 0.044715;

// Exact GELU's float32 forward and backward, operation for operation as geluF4 and geluGradF4 in
// assembly/gelu.ts (the formulas and their error bounds are described there): every step is one
// f32 add, sub, mul, div or floor, which Math.fround of the float64 result reproduces exactly.
const R = Math.fround;
const SQRT1_2_F = R(Math.SQRT1_2);
const INV_SQRT_2PI_F = R(INV_SQRT_2PI);
// Numerical Recipes' erfcc: erfc(a) = t·exp(-a² + P(t)), t = 1/(1 + a/2); highest power first
const ERFC_P = [
  0.17087277, -0.82215223, 1.48851587, -1.13520398, 0.27886807, -0.18628806, 0.09678418, 0.37409196, 1.00002368,
  -1.26551223,
].map(R);

// The rounding error of f32(-x²/2), by Dekker's split (negHalfSquareLo in assembly/gelu.ts).
function negHalfSquareLo(x: number, sq: number): number {
  const c = R(4097 * x);
  const xh = R(c - R(c - x));
  const xl = R(x - xh);
  const e = R(R(R(R(xh * xh) - sq) + R(2 * R(xh * xl))) + R(xl * xl));
  return R(-0.5 * e);
}

function normalCdfF32(x: number, q: number, qLo: number): number {
  const a = R(Math.abs(x) * SQRT1_2_F);
  const t = R(1 / R(1 + R(0.5 * a)));
  let p = ERFC_P[0]!;
  for (let i = 1; i < ERFC_P.length; i++) p = R(R(p * t) + ERFC_P[i]!);
  const hi = R(p + q);
  const bb = R(hi - p);
  const lo = R(R(R(p - R(hi - bb)) + R(q - bb)) + qLo);
  const half = R(0.5 * R(t * expF32(hi, lo)));
  return x < 0 ? half : R(1 - half);
}

/** Exact GELU of a float32 value as the SIMD kernel computes it (before the flush). */
export function geluF32(x: number): number {
  const sq = R(x * x);
  const q = R(-0.5 * sq);
  return R(x * normalCdfF32(x, q, negHalfSquareLo(x, sq)));
}

/** g·GELU'(x) for float32 values as the SIMD kernel computes it (before the flush). */
export function geluGradF32(g: number, x: number): number {
  const sq = R(x * x);
  const q = R(-0.5 * sq);
  const qLo = negHalfSquareLo(x, sq);
  const pdf = R(expF32(q, qLo) * INV_SQRT_2PI_F);
  return R(g * R(normalCdfF32(x, q, qLo) + R(x * pdf)));
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
// cdf and grad are unused for float32 (geluF32 and geluGradF32 serve the exact forward and backward)
const F32: Fns = { cdf: cdf64, pdf: normalPdf, grad: (x) => cdf64(x) + x * pdf64(x), sigmoid: sigmoidF64 };
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
  if (is32 && !isTanh) {
    for (let i = 0; i < x.length; i++) out[i] = f32(geluF32(x[i]!));
    return;
  }
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
  if (is32 && !isTanh) {
    for (let i = 0; i < g.length; i++) out[i] = f32(geluGradF32(g[i]!, x[i]!));
    return;
  }
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
