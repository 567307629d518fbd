// Max-pooling kernels over NCHW planes, one contract in both backends (assembly/pool.ts has the
// SIMD ones): the argmax of every window, and the gather/scatter pair that forms the forward and
// backward (each the other's adjoint). Float32 scatter results are flushed (|v| < FLT_MIN stored
// as 0); gather copies values unchanged; float64 is never flushed. Dispatch as in conv.ts: the
// WebAssembly kernels under the 'wasm' backend for float32, in place inside the step region.

import { FLT_MIN, type FloatArray } from "../tensor/dtype.js";
import { runWasm, type WasmCall } from "./conv.js";

/** Window geometry of a 2-D pooling over `planes` planes of h×w (padding before; after follows from oh/ow). */
export interface PoolDims {
  planes: number;
  h: number;
  w: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  ph: number;
  pw: number;
  dh: number;
  dw: number;
  oh: number;
  ow: number;
}

// The 13-i32 geometry block of assembly/pool.ts, in its order.
const POOL_GEOMETRY = ["planes", "h", "w", "kh", "kw", "sh", "sw", "ph", "pw", "dh", "dw", "oh", "ow"] as const;
const noScratch = (): number => 0;

/**
 * index[plane][oy·ow + ox] = the flat in-plane position of the first maximum of that window (NaN
 * counts as the maximum, the first one wins), -1 if the window holds no input element.
 */
export function maxPoolIndices(x: FloatArray, index: Int32Array, d: PoolDims): void {
  const run: WasmCall = (k, p, geo) => k.exports.maxPoolIndices(p[0]!, p[1]!, geo);
  const geometry = POOL_GEOMETRY.map((key) => d[key]);
  if (x instanceof Float32Array && runWasm(geometry, [x], index, noScratch, run)) return;
  const { h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow } = d;
  let o = 0;
  for (let plane = 0; plane < d.planes; plane++) {
    const base = plane * h * w;
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        let best = Number.NEGATIVE_INFINITY,
          at = -1;
        for (let i = 0; i < kh; i++) {
          const iy = oy * sh - ph + i * dh;
          if (iy < 0 || iy >= h) continue;
          for (let j = 0; j < kw; j++) {
            const ix = ox * sw - pw + j * dw;
            if (ix < 0 || ix >= w) continue;
            const v = x[base + iy * w + ix]!;
            if (at < 0 || v > best || (Number.isNaN(v) && !Number.isNaN(best))) {
              best = v;
              at = iy * w + ix;
            }
          }
        }
        index[o++] = at;
      }
    }
  }
}

/** y[p][o] = x[p][index[p][o]] over `planes` planes of `hw` inputs and `count` outputs (-1 reads 0). */
export function poolGather(x: FloatArray, index: Int32Array, y: FloatArray, planes: number, hw: number): void {
  const count = index.length / Math.max(planes, 1);
  const run: WasmCall = (k, p) => k.exports.poolGather(p[0]!, p[1]!, p[2]!, planes, hw, count);
  if (y instanceof Float32Array && x instanceof Float32Array && runWasm([], [x, index], y, noScratch, run)) return;
  for (let p = 0; p < planes; p++) {
    for (let o = p * count; o < (p + 1) * count; o++) {
      const i = index[o]!;
      y[o] = i >= 0 ? x[p * hw + i]! : 0;
    }
  }
}

/** dx = 0, then dx[p][index[p][o]] += g[p][o] over `planes` planes of `hw` inputs (-1 skipped). */
export function poolScatter(g: FloatArray, index: Int32Array, dx: FloatArray, planes: number, hw: number): void {
  const count = index.length / Math.max(planes, 1);
  const run: WasmCall = (k, p) => k.exports.poolScatter(p[0]!, p[1]!, p[2]!, planes, hw, count);
  if (dx instanceof Float32Array && g instanceof Float32Array && runWasm([], [g, index], dx, noScratch, run)) return;
  dx.fill(0, 0, planes * hw);
  for (let p = 0; p < planes; p++) {
    for (let o = p * count; o < (p + 1) * count; o++) {
      const i = index[o]!;
      if (i >= 0) dx[p * hw + i] = dx[p * hw + i]! + g[o]!;
    }
  }
  if (dx instanceof Float32Array) for (let i = 0; i < planes * hw; i++) if (Math.abs(dx[i]!) < FLT_MIN) dx[i] = 0;
}
