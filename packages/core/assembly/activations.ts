import { load1, load2 } from "./lanes";
import { flushSigned32, sigmoid2, store1Flushed, store2Flushed, tanh2 } from "./activation-math";

// ---------------------------------------------------------------------------------------------
// Activation kernels: tanh and sigmoid forward, backward (dy -> dx through the saved output y)
// and the backward's own gradient with respect to y. Their JavaScript twins are in
// src/kernels/activations.ts and give the same bits: both sides use only IEEE add, sub, mul, div
// (no fused multiply-add, even in the relaxed build) in the same order.
//
// Forward: computed in f64 (2 lanes) and rounded once to f32, from exp by range reduction
// (t = k·ln2 + r, |r| <= ln2/2, e^r - 1 by its Taylor series to r^11/11!, relative error under
// 1e-13), so a result is Math.tanh's correctly rounded f32 except in the rare case where that error
// lands on the other side of a rounding tie. Backward kernels compute in f32 (4 lanes), each product
// rounded and flushed where the elementwise ops they replace did (g·(1 - y·y) for tanh), so they
// give the bits of that chain of ops.
//
// Subnormal results become a zero of the same sign, as the JavaScript elementwise ops store them.
// ---------------------------------------------------------------------------------------------

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
