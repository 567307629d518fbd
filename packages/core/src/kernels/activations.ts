// tanh and sigmoid kernels: forward, backward (dy -> dx through the saved output y) and the
// backward's gradient with respect to y. For float32 operands in this thread's WebAssembly memory
// (inside the trainer's step region) the SIMD kernels of assembly/activations.ts run in place;
// otherwise the JavaScript twins below give the same bits: the same IEEE operations in the same
// order (a product of two float32 is exact in float64, and rounding a float64 sum, difference,
// product or quotient of float32 values to float32 equals the float32 operation). float64 arrays
// take plain formulas (Math.tanh, no flushing) for gradient checks.

import { FLT_MIN, type FloatArray } from "../tensor/dtype.js";
import { wasmInPlace, wasmServes } from "./dispatch.js";
import { currentWasmKernels } from "./wasm/matmul-kernel.js";
import type { WasmKernels } from "./wasm/wasm-kernels.js";

/** Below this many elements the copies through scratch cost more than the JavaScript twin. */
const STAGE_MIN = 2048;

/**
 * Runs a SIMD kernel on float32 operands that lie outside the wasm memory (tensors of the object
 * API on the JavaScript heap): each is copied into this thread's scratch, the kernel writes into
 * scratch and the result is copied to `out`. `call` gets the byte offsets of the inputs in order
 * and of the output. Returns false, doing nothing, when float32 does not run in wasm, an operand
 * is not a Float32Array, the arrays are small or the scratch is short (the caller runs the twin).
 */
function viaScratch(
  inputs: readonly FloatArray[],
  out: FloatArray,
  call: (k: WasmKernels, at: readonly number[], outAt: number) => void,
): boolean {
  const n = out.length;
  if (n < STAGE_MIN || !(out instanceof Float32Array) || !wasmServes("float32")) return false;
  const k = currentWasmKernels();
  if (k === undefined) return false;
  let bytes = 64 + (k.contains(out) ? 0 : n * 4 + 16);
  for (const a of inputs) {
    if (!(a instanceof Float32Array) || a.length !== n) return false;
    if (!k.contains(a)) bytes += n * 4 + 16;
  }
  if (bytes > k.scratchFree()) return false;
  const mark = k.scratchMark();
  try {
    const at = inputs.map((a) => {
      if (k.contains(a)) return a.byteOffset;
      const p = k.scratchAlloc(n * 4, 16);
      k.f32(p, n).set(a);
      return p;
    });
    const outAt = k.contains(out) ? out.byteOffset : k.scratchAlloc(n * 4, 16);
    call(k, at, outAt);
    if (!k.contains(out)) out.set(k.f32(outAt, n));
    return true;
  } finally {
    k.scratchReset(mark);
  }
}

// The same float64 constants as assembly/activations.ts (0.6931471805599453, 1.4426950408889634).
const LN2 = Math.LN2;
const INV_LN2 = Math.LOG2E;

// 2^k for integral k in [-1022, 1023] at POW2[k + 1022], built from the exponent bits as the SIMD
// kernel builds it.
const POW2 = (() => {
  const t = new Float64Array(2046);
  const bits = new BigInt64Array(t.buffer);
  for (let k = -1022; k <= 1023; k++) bits[k + 1022] = BigInt(k + 1023) << 52n;
  return t;
})();

// e^r - 1 for |r| <= ln2/2: Taylor series to r^11/11!, by Horner (as expm1Reduced in assembly).
export function expm1Reduced(r: number): number {
  let p = 1 / 39916800;
  p = p * r + 1 / 3628800;
  p = p * r + 1 / 362880;
  p = p * r + 1 / 40320;
  p = p * r + 1 / 5040;
  p = p * r + 1 / 720;
  p = p * r + 1 / 120;
  p = p * r + 1 / 24;
  p = p * r + 1 / 6;
  p = p * r + 0.5;
  p = p * r + 1;
  return p * r;
}

// f32 rounding with subnormals stored as a zero of the same sign.
export function f32(v: number): number {
  const r = Math.fround(v);
  return Math.abs(r) < FLT_MIN ? r * 0 : r;
}

const R = Math.fround;
const LOG2E_F = R(Math.LOG2E);
const EXP_C1 = R(0.693359375);
const EXP_C2 = R(2.1219444e-4);
// Cephes' expf polynomial, highest power first
const EXP_P = [1.98756915e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1].map(
  R,
);

/**
 * e^(hi + lo) in float32 arithmetic for hi <= 1, as expF32x4 in assembly/activation-math.ts computes
 * each lane (the same operations: the same bits); 0 where the result would be subnormal.
 */
export function expF32(hi: number, lo: number): number {
  const n = Math.floor(R(R(hi * LOG2E_F) + 0.5));
  let r = R(hi - R(n * EXP_C1));
  r = R(r + R(n * EXP_C2));
  r = R(r + lo);
  let p = EXP_P[0]!;
  for (let i = 1; i < EXP_P.length; i++) p = R(R(p * r) + EXP_P[i]!);
  p = R(R(p * R(r * r)) + r);
  p = R(p + 1);
  return n < -126 ? 0 : R(p * 2 ** n);
}

/** e^d for a float64 d <= 1, as expF32 of d split into float32 hi + lo (expOfF64 in the kernels). */
export function expF32Of64(d: number): number {
  const hi = R(d);
  return expF32(hi, R(d - hi));
}

/** e^t for -700 <= t <= 0, by range reduction (as expNeg in assembly/activation-math.ts). */
export function expNeg(t: number): number {
  const k = Math.floor(t * INV_LN2 + 0.5);
  return POW2[k + 1022]! * (expm1Reduced(t - k * LN2) + 1);
}

/** tanh(x) in float64 by range reduction, as the SIMD kernel computes it before rounding to f32. */
export function tanhF64(x: number): number {
  const a = Math.min(Math.abs(x), 10);
  const t = a + a;
  const k = Math.floor(t * INV_LN2 + 0.5);
  const s = POW2[k + 1022]!;
  const em1 = s * expm1Reduced(t - k * LN2) + (s - 1);
  const m = em1 / (em1 + 2);
  return x < 0 || Object.is(x, -0) ? -m : m;
}

/** sigmoid(x) in float64 by range reduction, as the SIMD kernel computes it before rounding to f32. */
export function sigmoidF64(x: number): number {
  const t = -Math.min(Math.abs(x), 120);
  const k = Math.floor(t * INV_LN2 + 0.5);
  const e = POW2[k + 1022]! * (expm1Reduced(t - k * LN2) + 1);
  const inv = 1 / (1 + e);
  return x < 0 ? e * inv : inv;
}

/** out = tanh(x); out may be x. */
export function tanhForward(x: FloatArray, out: FloatArray): void {
  const k = wasmInPlace(x, out);
  if (k !== null) k.exports.tanhForward(x.byteOffset, out.byteOffset, x.length);
  else if (viaScratch([x], out, (w, [a], o) => w.exports.tanhForward(a!, o, out.length))) return;
  else if (x instanceof Float32Array) for (let i = 0; i < x.length; i++) out[i] = f32(tanhF64(x[i]!));
  else for (let i = 0; i < x.length; i++) out[i] = Math.tanh(x[i]!);
}

/** out = sigmoid(x); out may be x. */
export function sigmoidForward(x: FloatArray, out: FloatArray): void {
  const k = wasmInPlace(x, out);
  if (k !== null) k.exports.sigmoidForward(x.byteOffset, out.byteOffset, x.length);
  else if (viaScratch([x], out, (w, [a], o) => w.exports.sigmoidForward(a!, o, out.length))) return;
  else if (x instanceof Float32Array) for (let i = 0; i < x.length; i++) out[i] = f32(sigmoidF64(x[i]!));
  else
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      out[i] = v >= 0 ? 1 / (1 + Math.exp(-v)) : Math.exp(v) / (1 + Math.exp(v));
    }
}

/** out = g·(1 - y²), tanh's gradient from its output y. */
export function tanhBackward(g: FloatArray, y: FloatArray, out: FloatArray): void {
  const k = wasmInPlace(g, y, out);
  if (k !== null) k.exports.tanhBackward(g.byteOffset, y.byteOffset, out.byteOffset, g.length);
  else if (viaScratch([g, y], out, (w, [a, b], o) => w.exports.tanhBackward(a!, b!, o, out.length))) return;
  else if (out instanceof Float32Array)
    for (let i = 0; i < g.length; i++) {
      const v = y[i]!;
      out[i] = f32(g[i]! * f32(1 - f32(v * v)));
    }
  else for (let i = 0; i < g.length; i++) out[i] = g[i]! * (1 - y[i]! * y[i]!);
}

/** out = -2·(gg·g)·y, the y-gradient of tanhBackward. */
export function tanhDoubleBackward(gg: FloatArray, g: FloatArray, y: FloatArray, out: FloatArray): void {
  const k = wasmInPlace(gg, g, y);
  if (k !== null && out instanceof Float32Array && k.contains(out)) {
    k.exports.tanhDoubleBackward(gg.byteOffset, g.byteOffset, y.byteOffset, out.byteOffset, g.length);
  } else if (
    viaScratch([gg, g, y], out, (w, [a, b, c], o) => w.exports.tanhDoubleBackward(a!, b!, c!, o, out.length))
  ) {
    return;
  } else if (out instanceof Float32Array) {
    for (let i = 0; i < g.length; i++) out[i] = f32(f32(f32(gg[i]! * g[i]!) * y[i]!) * -2);
  } else for (let i = 0; i < g.length; i++) out[i] = -2 * gg[i]! * g[i]! * y[i]!;
}

/** out = g·y·(1 - y), sigmoid's gradient from its output y. */
export function sigmoidBackward(g: FloatArray, y: FloatArray, out: FloatArray): void {
  const k = wasmInPlace(g, y, out);
  if (k !== null) k.exports.sigmoidBackward(g.byteOffset, y.byteOffset, out.byteOffset, g.length);
  else if (viaScratch([g, y], out, (w, [a, b], o) => w.exports.sigmoidBackward(a!, b!, o, out.length))) return;
  else if (out instanceof Float32Array)
    for (let i = 0; i < g.length; i++) {
      const v = y[i]!;
      out[i] = f32(g[i]! * f32(v * f32(1 - v)));
    }
  else for (let i = 0; i < g.length; i++) out[i] = g[i]! * y[i]! * (1 - y[i]!);
}

/** out = (gg·g)·(1 - y) - (gg·g)·y, the y-gradient of sigmoidBackward. */
export function sigmoidDoubleBackward(gg: FloatArray, g: FloatArray, y: FloatArray, out: FloatArray): void {
  const k = wasmInPlace(gg, g, y);
  if (k !== null && out instanceof Float32Array && k.contains(out)) {
    k.exports.sigmoidDoubleBackward(gg.byteOffset, g.byteOffset, y.byteOffset, out.byteOffset, g.length);
  } else if (
    viaScratch([gg, g, y], out, (w, [a, b, c], o) => w.exports.sigmoidDoubleBackward(a!, b!, c!, o, out.length))
  ) {
    return;
  } else if (out instanceof Float32Array) {
    for (let i = 0; i < g.length; i++) {
      const h = f32(gg[i]! * g[i]!),
        v = y[i]!;
      out[i] = f32(f32(h * f32(1 - v)) - f32(h * v));
    }
  } else for (let i = 0; i < g.length; i++) out[i] = gg[i]! * g[i]! * (1 - 2 * y[i]!);
}
