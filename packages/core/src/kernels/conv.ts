// Convolution kernels (2-D, NCHW, weight [C_out, C_in/groups, kh, kw]): forward, input gradient and
// weight gradient, with one contract in both backends. Each works one sample and one group at a
// time: that sample's im2col matrix cols [K = C_in/groups·kh·kw, P = oh·ow] goes into reusable
// scratch (never a fresh array per call), and one matmul per (sample, group) does the rest:
//   forward      y[b, g]  = W_g · cols               (written in NCHW directly, no permute)
//   input grad   dx[b, g] = col2im(W_gᵀ · g[b, g])   (a transposed convolution)
//   weight grad  dW_g    += g[b, g] · colsᵀ
// Float32 outputs are flushed (|v| < FLT_MIN stored as 0), float64 ones never (gradcheck).
// Float32 runs the SIMD kernels of assembly/conv.ts under the 'wasm' backend: in place when every
// operand lies in this thread's wasm memory (the trainer's step region), else copied through its
// scratch; the JavaScript loops below serve float64, the 'js' backend, and calls too large for the
// scratch. The two round the matmul differently (see matmul.ts), and for small C_in·kh·kw at
// stride 1 the SIMD side runs direct kernels that sum in another order (convUsesDirectKernels says
// when), so float32 results agree within float32 rounding, not bit for bit.

import { FLT_MIN, type FloatArray, type TypedArray } from "../tensor/dtype.js";
import { wasmServes } from "./dispatch.js";
import { jsMatmulKernel } from "./matmul.js";
import { currentWasmKernels, defaultWasmKernels } from "./wasm/matmul-kernel.js";
import type { WasmKernels } from "./wasm/wasm-kernels.js";

/** Sizes of one 2-D convolution: input [n, c, h, w], weight [cout, c/groups, kh, kw], output [n, cout, oh, ow]. */
export interface ConvDims {
  n: number;
  c: number;
  h: number;
  w: number;
  cout: number;
  kh: number;
  kw: number;
  /** stride, padding before (after follows from oh/ow), dilation, per [height, width] */
  sh: number;
  sw: number;
  ph: number;
  pw: number;
  dh: number;
  dw: number;
  oh: number;
  ow: number;
  groups: number;
}

// The 16-i32 geometry block the WebAssembly kernels read, in this order (assembly/conv.ts).
const CONV_GEOMETRY = [
  "n",
  "c",
  "h",
  "w",
  "cout",
  "kh",
  "kw",
  "sh",
  "sw",
  "ph",
  "pw",
  "dh",
  "dw",
  "oh",
  "ow",
  "groups",
] as const satisfies readonly (keyof ConvDims)[];

const geometryOf = (d: ConvDims): number[] => CONV_GEOMETRY.map((key) => d[key]);
const convScratch = (k: WasmKernels, geoPtr: number): number => k.exports.convScratchBytes(geoPtr);

/**
 * Which float32 WebAssembly kernels run d by their direct small-K kernels rather than im2col +
 * matmul (the rules in assembly/conv.ts; results agree within float32 rounding either way).
 */
export function convUsesDirectKernels(d: ConvDims): { forward: boolean; inputGrad: boolean; weightGrad: boolean } {
  const k = currentWasmKernels() ?? defaultWasmKernels();
  const mark = k.scratchMark();
  try {
    const geoPtr = k.scratchAlloc(4 * CONV_GEOMETRY.length);
    new Int32Array(k.buffer, geoPtr, CONV_GEOMETRY.length).set(geometryOf(d));
    const bits = k.exports.convDirect(geoPtr);
    return { forward: (bits & 1) !== 0, inputGrad: (bits & 2) !== 0, weightGrad: (bits & 1) !== 0 };
  } finally {
    k.scratchReset(mark);
  }
}

/** y = conv2d(x, w) + bias (null: none); y is overwritten. */
export function convForward(x: FloatArray, w: FloatArray, bias: FloatArray | null, y: FloatArray, d: ConvDims): void {
  const run: WasmCall = (k, p, geo, scratch) => k.exports.convForward(p[0]!, p[1]!, p[2]!, p[3]!, geo, scratch);
  if (y instanceof Float32Array && runWasm(geometryOf(d), [x, w, bias], y, convScratch, run)) return;
  jsForward(x, w, bias, y, d);
}

/** dx = the gradient of convForward's input for the output gradient g; dx is overwritten. */
export function convInputGrad(g: FloatArray, w: FloatArray, dx: FloatArray, d: ConvDims): void {
  const run: WasmCall = (k, p, geo, scratch) => k.exports.convInputGrad(p[0]!, p[1]!, p[2]!, geo, scratch);
  if (dx instanceof Float32Array && runWasm(geometryOf(d), [g, w], dx, convScratch, run)) return;
  jsInputGrad(g, w, dx, d);
}

/** dw = the gradient of convForward's weight for the output gradient g; dw is overwritten. */
export function convWeightGrad(g: FloatArray, x: FloatArray, dw: FloatArray, d: ConvDims): void {
  const run: WasmCall = (k, p, geo, scratch) => k.exports.convWeightGrad(p[0]!, p[1]!, p[2]!, geo, scratch);
  if (dw instanceof Float32Array && runWasm(geometryOf(d), [g, x], dw, convScratch, run)) return;
  jsWeightGrad(g, x, dw, d);
}

/** A WebAssembly call on byte offsets: inputs (null: 0), then the output; a geometry block; scratch. */
export type WasmCall = (k: WasmKernels, ptrs: number[], geoPtr: number, scratchPtr: number) => void;

/**
 * Runs `call` when float32 kernels run in WebAssembly (the caller checked that the arrays are
 * float32 or int32): `geometry` written as i32s into scratch, operands outside the memory copied
 * into scratch (and the output copied back), `scratchBytes(k, geoPtr)` bytes of kernel scratch.
 * Returns false, doing nothing, when the JavaScript twin must run ('js' backend, too little scratch).
 */
export function runWasm(
  geometry: readonly number[],
  inputs: readonly (TypedArray | null)[],
  out: TypedArray,
  scratchBytes: (k: WasmKernels, geoPtr: number) => number,
  call: WasmCall,
): boolean {
  if (!wasmServes("float32")) return false;
  const k = currentWasmKernels() ?? defaultWasmKernels();
  const copyBytes = (a: TypedArray | null): number => (a === null || k.contains(a) ? 0 : a.byteLength + 64);
  let need = 128 + 4 * geometry.length + copyBytes(out);
  for (const a of inputs) need += copyBytes(a);
  if (k.scratchFree() < need) return false;
  const mark = k.scratchMark(); // everything allocated from here on is released below
  try {
    const geoPtr = k.scratchAlloc(4 * geometry.length);
    new Int32Array(k.buffer, geoPtr, geometry.length).set(geometry);
    const kernelBytes = scratchBytes(k, geoPtr);
    if (need + kernelBytes > k.scratchFree()) return false;
    const ptrs = inputs.map((a) => (a === null ? 0 : place(k, a, true)));
    const outPtr = place(k, out, false);
    call(k, [...ptrs, outPtr], geoPtr, kernelBytes > 0 ? k.scratchAlloc(kernelBytes) : 0);
    if (!k.contains(out))
      new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(new Uint8Array(k.buffer, outPtr, out.byteLength));
    return true;
  } finally {
    k.scratchReset(mark);
  }
}

// Byte offset of `a` in the memory: itself when inside, else a scratch copy (filled when `copy`).
function place(k: WasmKernels, a: TypedArray, copy: boolean): number {
  if (k.contains(a)) return a.byteOffset;
  const ptr = k.scratchAlloc(a.byteLength);
  if (copy) new Uint8Array(k.buffer, ptr, a.byteLength).set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  return ptr;
}

// ---------------------------------------------------------------------------------------------
// JavaScript twins. Scratch arrays per dtype and slot, grown when a call needs more, reused after.
// ---------------------------------------------------------------------------------------------

const pools = { float32: [] as Float32Array[], float64: [] as Float64Array[] };

function scratchLike(like: FloatArray, slot: number, length: number): FloatArray {
  const pool: FloatArray[] = like instanceof Float32Array ? pools.float32 : pools.float64;
  const have = pool[slot];
  if (have !== undefined && have.length >= length) return have;
  const grown = like instanceof Float32Array ? new Float32Array(length) : new Float64Array(length);
  pool[slot] = grown;
  return grown;
}

const dtypeOfArray = (a: FloatArray) => (a instanceof Float32Array ? "float32" : "float64");

// Stores 0 for |v| < FLT_MIN in float32 arrays (float64 ones are left alone).
function flushRange(a: FloatArray, start: number, end: number): void {
  if (!(a instanceof Float32Array)) return;
  for (let i = start; i < end; i++) if (Math.abs(a[i]!) < FLT_MIN) a[i] = 0;
}

/**
 * cols [cg·kh·kw, oh·ow] (or, with `transposed`, [oh·ow, cg·kh·kw]) of the cg channels of x starting
 * at element `base`; zeros where a window lies over padding.
 */
function im2col(x: FloatArray, base: number, cols: FloatArray, d: ConvDims, cg: number, transposed: boolean): void {
  const { h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow } = d;
  const p = oh * ow,
    kk = cg * kh * kw;
  let r = 0;
  for (let ci = 0; ci < cg; ci++) {
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++, r++) {
        for (let oy = 0; oy < oh; oy++) {
          const iy = oy * sh - ph + i * dh;
          const inside = iy >= 0 && iy < h;
          const rowBase = base + (ci * h + iy) * w;
          for (let ox = 0; ox < ow; ox++) {
            const ix = ox * sw - pw + j * dw;
            const v = inside && ix >= 0 && ix < w ? x[rowBase + ix]! : 0;
            const q = oy * ow + ox;
            cols[transposed ? q * kk + r : r * p + q] = v;
          }
        }
      }
    }
  }
}

// The adjoint of im2col (non-transposed layout): adds cols back onto x from element `base`.
function col2im(cols: FloatArray, x: FloatArray, base: number, d: ConvDims, cg: number): void {
  const { h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow } = d;
  let q = 0;
  for (let ci = 0; ci < cg; ci++) {
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        for (let oy = 0; oy < oh; oy++) {
          const iy = oy * sh - ph + i * dh;
          if (iy < 0 || iy >= h) {
            q += ow;
            continue;
          }
          const rowBase = base + (ci * h + iy) * w;
          for (let ox = 0; ox < ow; ox++, q++) {
            const ix = ox * sw - pw + j * dw;
            if (ix >= 0 && ix < w) x[rowBase + ix] = x[rowBase + ix]! + cols[q]!;
          }
        }
      }
    }
  }
}

function sizes(d: ConvDims) {
  const cg = d.c / d.groups,
    og = d.cout / d.groups;
  return { cg, og, kk: cg * d.kh * d.kw, p: d.oh * d.ow, hw: d.h * d.w };
}

function jsForward(x: FloatArray, w: FloatArray, bias: FloatArray | null, y: FloatArray, d: ConvDims): void {
  const { cg, og, kk, p, hw } = sizes(d);
  const mm = jsMatmulKernel(dtypeOfArray(y));
  const cols = scratchLike(y, 0, kk * p);
  for (let b = 0; b < d.n; b++) {
    for (let g = 0; g < d.groups; g++) {
      im2col(x, (b * d.c + g * cg) * hw, cols, d, cg, false);
      mm(w, g * og * kk, cols, 0, y, (b * d.cout + g * og) * p, og, kk, p, false, false);
    }
  }
  if (bias !== null) {
    const f32 = y instanceof Float32Array;
    for (let b = 0; b < d.n; b++) {
      for (let o = 0; o < d.cout; o++) {
        const base = (b * d.cout + o) * p,
          v = bias[o]!;
        for (let i = base; i < base + p; i++) y[i] = f32 ? Math.fround(y[i]! + v) : y[i]! + v;
      }
    }
  }
  flushRange(y, 0, d.n * d.cout * p);
}

function jsInputGrad(g: FloatArray, w: FloatArray, dx: FloatArray, d: ConvDims): void {
  const { cg, og, kk, p, hw } = sizes(d);
  const mm = jsMatmulKernel(dtypeOfArray(dx));
  const cols = scratchLike(dx, 0, kk * p);
  // W_gᵀ [kk, og] once per group, so the per-sample products need no transposed copies.
  const wt = scratchLike(dx, 1, kk * og);
  dx.fill(0, 0, d.n * d.c * hw);
  for (let gi = 0; gi < d.groups; gi++) {
    const wBase = gi * og * kk;
    for (let o = 0; o < og; o++) for (let r = 0; r < kk; r++) wt[r * og + o] = w[wBase + o * kk + r]!;
    for (let b = 0; b < d.n; b++) {
      mm(wt, 0, g, (b * d.cout + gi * og) * p, cols, 0, kk, og, p, false, false);
      col2im(cols, dx, (b * d.c + gi * cg) * hw, d, cg);
    }
  }
  flushRange(dx, 0, d.n * d.c * hw);
}

function jsWeightGrad(g: FloatArray, x: FloatArray, dw: FloatArray, d: ConvDims): void {
  const { cg, og, kk, p, hw } = sizes(d);
  const mm = jsMatmulKernel(dtypeOfArray(dw));
  const colsT = scratchLike(dw, 0, p * kk);
  const part = scratchLike(dw, 1, og * kk);
  const f32 = dw instanceof Float32Array;
  dw.fill(0, 0, d.cout * kk);
  for (let gi = 0; gi < d.groups; gi++) {
    const wBase = gi * og * kk;
    for (let b = 0; b < d.n; b++) {
      im2col(x, (b * d.c + gi * cg) * hw, colsT, d, cg, true);
      mm(g, (b * d.cout + gi * og) * p, colsT, 0, part, 0, og, p, kk, false, false);
      for (let i = 0; i < og * kk; i++) {
        const v = dw[wBase + i]! + part[i]!;
        dw[wBase + i] = f32 ? Math.fround(v) : v;
      }
    }
  }
  flushRange(dw, 0, d.cout * kk);
}
