import { gemm, matmulPackBytes } from "./matmul";
import { flush32 } from "./lanes";

// ---------------------------------------------------------------------------------------------
// 2-D convolution (cross-correlation, NCHW, weight [C_out, C_in/groups, kh, kw]) as im2col + gemm,
// one sample and one group at a time:
//
//   cols [K, P] = im2col(x[b, group's channels])     K = C_in/groups·kh·kw, P = oh·ow
//   forward        y[b, group's outputs] = W_g [C_out/groups, K] · cols              ([og, P]: NCHW)
//   input grad     dcols = W_gᵀ · g[b, group]  ->  col2im adds each row back into dx[b]
//   weight grad    dW_g += g[b, group] · colsᵀ                                      (summed over b)
//
// Row r = (ci·kh + i)·kw + j of cols is channel ci's plane shifted by the window offset (i, j):
// cols[r][oy·ow + ox] = x[ci][oy·sh - ph + i·dh][ox·sw - pw + j·dw], 0 outside the input. With
// stride 1 each output row of it is one contiguous copy of an input row (memory.copy), and col2im
// adds it back with f32x4 adds. A sample's cols (at most a few hundred KiB for image-sized layers)
// lies in the caller's scratch and stays in L2 for the gemm that reads it; nothing is allocated per
// call and the layout needs no transpose: the gemm writes NCHW directly.
//
// Small K: with K = C_in·kh·kw = 9 (W6's conv 1→32 on 28×28, a CNN's first layer) the gemm is
// 9 deep, and packing and the 9-step micro-kernel loop left it at 26 / 21 / 17 GFLOP/s (forward /
// input grad / weight grad, batch 128, one thread, idle machine) against 39-44 at K = 288. So for
// stride 1, dilation 1, one group, padding < kernel size and K <= DIRECT_MAX_K = 144 the three
// entry points run direct kernels instead (below), the input gradient only for K <= 25 or C_in a
// multiple of 4 (inputGradDirect); convDirect says which path a geometry takes. Measured on a
// shared 2-core machine, the old and new builds alternating in one process, batch 32-128, ratios
// new/old: forward 1.1-1.9x and weight grad 1.1-2.4x at K = 9..75 (C_in 1..8 → 6..32 channels,
// 3×3 and 5×5; W6's conv1 1.3x and 1.9x, 2.2x with the 3×3 weight tile), at K = 144 (16 → 32 on
// 14×14) 1.4x and 1.0x; input grad 1.4-1.5x at W6's conv1, 1.0-1.1x for C_in 1 (5×5), 2, 4, 8 and
// 16, but 0.7-0.8x for C_in 3 and 6 (kept on im2col + matmul). At K = 288 (W6's conv2) the direct kernels were only even with
// the generic path, which already met its target, hence 144.
// Summation order differs from im2col + matmul (results agree within float32 rounding).
// A NaN or infinity in x can reach more of dW here (0·∞ in the masked lanes of a row's last group),
// as one in g already can through im2col's zero padding; y and dx keep the definition's NaNs.
//
// Outputs (y, dx, dW) are flushed: |v| < FLT_MIN is stored as 0, as the elementwise kernels do.
//
// Geometry block at geoPtr: 16 i32, in this order (CONV_GEOMETRY in src/kernels/conv.ts):
//   n, c, h, w, cout, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, groups
// Scratch at scratchPtr: convScratchBytes(geoPtr) bytes, 64-byte aligned (cols, then the gemm's
// packing scratch; or the direct kernels' padded sample, splatted weights and output planes).
// ---------------------------------------------------------------------------------------------

// The largest K = C_in·kh·kw that the direct kernels take (see the header).
const DIRECT_MAX_K = 144;

@inline function geo(ptr: usize, i: i32): i32 {
  return load<i32>(ptr + <usize>i * 4);
}

@inline function roundUp64(bytes: usize): usize {
  return (bytes + 63) & ~(<usize>63);
}

/** Bytes of scratch that convForward, convInputGrad and convWeightGrad need for the geometry at geoPtr. */
export function convScratchBytes(geoPtr: usize): i32 {
  const groups = geo(geoPtr, 15);
  const kk = geo(geoPtr, 1) / groups * geo(geoPtr, 5) * geo(geoPtr, 6);
  const og = geo(geoPtr, 4) / groups, p = geo(geoPtr, 13) * geo(geoPtr, 14);
  const pack = max(max(matmulPackBytes(og, kk, p), matmulPackBytes(kk, og, p)), matmulPackBytes(og, p, kk));
  const generic = roundUp64(<usize>kk * <usize>p * 4) + <usize>pack;
  return <i32>(directQualifies(geoPtr) ? max(generic, directBytes(geoPtr)) : generic);
}

// The range [lo, hi) of output columns ox whose input column ox·sw + ix0 lies in [0, w).
@inline function validLo(ix0: i32, sw: i32, ow: i32): i32 {
  return ix0 >= 0 ? 0 : min((sw - 1 - ix0) / sw, ow);
}

@inline function validHi(ix0: i32, sw: i32, w: i32, ow: i32): i32 {
  return ix0 >= w ? 0 : min((w - ix0 + sw - 1) / sw, ow);
}

// cols [cg·kh·kw, oh·ow] from the cg channels at x (one sample, one group), zeros over padding.
function im2col(x: usize, cols: usize, g: usize, cg: i32): void {
  const h = geo(g, 2), w = geo(g, 3), kh = geo(g, 5), kw = geo(g, 6), sh = geo(g, 7), sw = geo(g, 8);
  const ph = geo(g, 9), pw = geo(g, 10), dh = geo(g, 11), dw = geo(g, 12), oh = geo(g, 13), ow = geo(g, 14);
  let dst = cols;
  for (let ci = 0; ci < cg; ci++) {
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        const ix0 = j * dw - pw;
        const hi = validHi(ix0, sw, w, ow), lo = min(validLo(ix0, sw, ow), hi);
        for (let oy = 0; oy < oh; oy++) {
          const iy = oy * sh - ph + i * dh;
          if (iy < 0 || iy >= h) {
            memory.fill(dst, 0, <usize>ow * 4);
          } else {
            if (lo > 0) memory.fill(dst, 0, <usize>lo * 4);
            const src = x + <usize>((ci * h + iy) * w + lo * sw + ix0) * 4;
            if (sw == 1) {
              memory.copy(dst + <usize>lo * 4, src, <usize>(hi - lo) * 4);
            } else {
              for (let ox = lo; ox < hi; ox++) {
                store<f32>(dst + <usize>ox * 4, load<f32>(src + <usize>((ox - lo) * sw) * 4));
              }
            }
            if (hi < ow) memory.fill(dst + <usize>hi * 4, 0, <usize>(ow - hi) * 4);
          }
          dst += <usize>ow * 4;
        }
      }
    }
  }
}

// The adjoint of im2col: adds every entry of cols onto the input position it was read from.
function col2im(cols: usize, x: usize, g: usize, cg: i32): void {
  const h = geo(g, 2), w = geo(g, 3), kh = geo(g, 5), kw = geo(g, 6), sh = geo(g, 7), sw = geo(g, 8);
  const ph = geo(g, 9), pw = geo(g, 10), dh = geo(g, 11), dw = geo(g, 12), oh = geo(g, 13), ow = geo(g, 14);
  let src = cols;
  for (let ci = 0; ci < cg; ci++) {
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        const ix0 = j * dw - pw;
        const hi = validHi(ix0, sw, w, ow), lo = min(validLo(ix0, sw, ow), hi);
        for (let oy = 0; oy < oh; oy++) {
          const iy = oy * sh - ph + i * dh;
          if (iy >= 0 && iy < h) {
            const dst = x + <usize>((ci * h + iy) * w + lo * sw + ix0) * 4;
            const from = src + <usize>lo * 4;
            if (sw == 1) {
              const len = hi - lo;
              let q = 0;
              for (; q + 4 <= len; q += 4) {
                const off = <usize>q * 4;
                v128.store(dst + off, f32x4.add(v128.load(dst + off), v128.load(from + off)));
              }
              for (; q < len; q++) {
                const off = <usize>q * 4;
                store<f32>(dst + off, load<f32>(dst + off) + load<f32>(from + off));
              }
            } else {
              for (let q = 0; q < hi - lo; q++) {
                const d = dst + <usize>(q * sw) * 4;
                store<f32>(d, load<f32>(d) + load<f32>(from + <usize>q * 4));
              }
            }
          }
          src += <usize>ow * 4;
        }
      }
    }
  }
}

// x[i] = flush(x[i] + b) for i < len.
function addFlush(x: usize, b: f32, len: i32): void {
  const bv = f32x4.splat(b);
  let i = 0;
  for (; i + 4 <= len; i += 4) {
    const off = <usize>i * 4;
    v128.store(x + off, flush32(f32x4.add(v128.load(x + off), bv)));
  }
  for (; i < len; i++) {
    const off = <usize>i * 4;
    v128.store32_lane(x + off, flush32(f32x4.add(v128.load32_zero(x + off), bv)), 0);
  }
}

// x[i] = flush(x[i]) for i < len.
function flushAll(x: usize, len: i32): void {
  let i = 0;
  for (; i + 4 <= len; i += 4) {
    const off = <usize>i * 4;
    v128.store(x + off, flush32(v128.load(x + off)));
  }
  for (; i < len; i++) {
    const off = <usize>i * 4;
    v128.store32_lane(x + off, flush32(v128.load32_zero(x + off)), 0);
  }
}

// ---------------------------------------------------------------------------------------------
// Direct kernels for small K (stride 1, dilation 1, one group, padding < kernel size; see the header).
//
// Each is one correlation over a zero-padded copy of a sample's planes, src [R][hs][ws], that
// treats a plane as one long row: with out[o][q] for q = y·ws + x, every tap t = (r, i, j) is the
// same offset off(t) = (r·hs + i)·ws + j for all q, so
//
//   out[o][q] = Σ_t src[q + off(t)] · wt[o][t]
//
// runs over q in f32x4 lanes with no bounds checks and no row ends; the kw - 1 columns x >= the
// output width of each row (and the q past the last row, up to a whole tile) are computed and
// dropped when out is copied into place (with the bias and the flush that the generic path does in
// a pass of its own). With a multiple of 4 outputs the same tiles run row by row instead and store
// into place directly (forwardRows; 1.15x on W6's first layer's forward, no copy pass).
// Forward: src = x padded by (ph, pw), wt = w. Input grad: src = g padded by (kh-1-ph, kw-1-pw),
// outputs the input channels, wt[ci][(co, i, j)] = w[co][ci][kh-1-i][kw-1-j] (for fewer than 4
// input channels by way of per-tap planes instead: inputGradByTap).
// Weight grad: dW[co][t] = Σ over output pixels (y, x) of g[co][y][x] · src[y·ws + x + off(t)],
// src = x padded as in the forward, g read in place row by row (its last group of a row masked).
// ---------------------------------------------------------------------------------------------

// c + a·b (fused in the relaxed-SIMD build, as the matmul's).
@inline function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(c, f32x4.mul(a, b));
}

@inline function roundUpTo(x: i32, to: i32): i32 {
  return (x + to - 1) / to * to;
}

/** Which kernels take their direct small-K path for the geometry at geoPtr: 1 convForward and convWeightGrad, 2 convInputGrad (bits). */
export function convDirect(geoPtr: usize): i32 {
  return (directQualifies(geoPtr) ? 1 : 0) | (inputGradDirect(geoPtr) ? 2 : 0);
}

// The input gradient's own rule on top: per-tap planes for K <= 25 (C_in 1 and 2 with 3×3, C_in 1
// with 5×5), the flipped correlation for C_in a multiple of 4; the others (C_in 3, 6: 0.7-0.8x) stay
// with im2col + matmul.
function inputGradDirect(g: usize): bool {
  const c = geo(g, 1);
  return directQualifies(g) && (c * geo(g, 5) * geo(g, 6) <= 25 || (c & 3) == 0);
}

// Whether the direct kernels serve the geometry at g (the rule in the header).
function directQualifies(g: usize): bool {
  const kh = geo(g, 5), kw = geo(g, 6), ph = geo(g, 9), pw = geo(g, 10);
  return geo(g, 15) == 1 && geo(g, 7) == 1 && geo(g, 8) == 1 && geo(g, 11) == 1 && geo(g, 12) == 1 &&
    ph >= 0 && pw >= 0 && ph < kh && pw < kw && geo(g, 13) > 0 && geo(g, 14) > 0 &&
    geo(g, 1) * kh * kw <= DIRECT_MAX_K;
}

// Plane stride of out for q outputs per plane: whole 4×8 and 1×32 tiles.
@inline function outStride(q: i32): i32 {
  return roundUpTo(q, 32);
}

// Zero floats after src's planes: reads run up to a tile past the last output and kw - 1 columns
// past the plane end (into the dropped columns).
@inline function srcSlack(qs: i32, q: i32, kw: i32): i32 {
  return qs - q + kw + 4;
}

// Scratch layout of one direct correlation (src, splatted weights, tap offsets, out) in bytes.
@inline function srcBytes(planes: i32, hs: i32, ws: i32, slack: i32): usize {
  return roundUp64(<usize>(planes * hs * ws + slack) * 4);
}

function forwardBytes(g: usize, flip: bool): usize {
  const c = geo(g, 1), h = geo(g, 2), w = geo(g, 3), cout = geo(g, 4), kh = geo(g, 5), kw = geo(g, 6);
  // forward: R = c source planes of the padded input, cout outputs; input grad: the reverse
  const planes = flip ? cout : c, outs = flip ? c : cout, taps = planes * kh * kw;
  const hs = flip ? h + kh - 1 : h + 2 * geo(g, 9), ws = flip ? w + kw - 1 : w + 2 * geo(g, 10);
  const q = (hs - kh + 1) * ws, qs = outStride(q);
  return srcBytes(planes, hs, ws, srcSlack(qs, q, kw)) + roundUp64(<usize>outs * <usize>taps * 16) +
    roundUp64(<usize>taps * 4) + <usize>outs * <usize>qs * 4;
}

function weightGradBytes(g: usize): usize {
  const c = geo(g, 1), kh = geo(g, 5), kw = geo(g, 6);
  const hs = geo(g, 2) + 2 * geo(g, 9), ws = geo(g, 3) + 2 * geo(g, 10);
  return srcBytes(c, hs, ws, kw + 4) + roundUp64(<usize>roundUpTo(c * kh * kw, 3) * 4);
}

function directBytes(g: usize): usize {
  return max(max(forwardBytes(g, false), forwardBytes(g, true)), max(weightGradBytes(g), byTapBytes(g)));
}

// dst: `planes` planes of hIn×wIn from src placed at (top, left) in rows of ws floats, planes
// `stride` floats apart, zeros elsewhere over the first `zeroFloats` floats (src's planes are
// srcStride floats apart, 0: hIn·wIn). Rows are copied with
// f32x4 moves and only the padding is cleared: with one input channel and 28×28 planes the copies
// (of g, 32 planes) cost as much as the arithmetic, and memory.copy per row (a call) was slower.
function padPlanes(
  src: usize, planes: i32, hIn: i32, wIn: i32, dst: usize, ws: i32, stride: i32, top: i32, left: i32, zeroFloats: i32,
  srcStride: i32 = 0,
): void {
  const right = ws - left - wIn, srcSkip = <usize>(srcStride > 0 ? srcStride - hIn * wIn : 0) * 4;
  let d = dst;
  for (let p = 0; p < planes; p++) {
    if (p > 0) src += srcSkip;
    memory.fill(d, 0, <usize>(top * ws) * 4);
    let row = d + <usize>(top * ws) * 4;
    for (let y = 0; y < hIn; y++) {
      for (let k = 0; k < left; k++) store<f32>(row + <usize>k * 4, 0);
      const to = row + <usize>left * 4;
      let k = 0;
      for (; k + 4 <= wIn; k += 4) v128.store(to + <usize>k * 4, v128.load(src + <usize>k * 4));
      for (; k < wIn; k++) store<f32>(to + <usize>k * 4, load<f32>(src + <usize>k * 4));
      for (k = 0; k < right; k++) store<f32>(to + <usize>(wIn + k) * 4, 0);
      src += <usize>wIn * 4;
      row += <usize>ws * 4;
    }
    memory.fill(row, 0, <usize>(stride - (top + hIn) * ws) * 4);
    d += <usize>stride * 4;
  }
  memory.fill(d, 0, <usize>(zeroFloats - planes * stride) * 4);
}

// Byte offsets of the taps (r, i, j) in src, r < planes, then `pad` more zeros.
function tapOffsets(offs: usize, planes: i32, kh: i32, kw: i32, hs: i32, ws: i32, pad: i32): void {
  let t = 0;
  for (let r = 0; r < planes; r++) {
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        store<i32>(offs + <usize>t * 4, ((r * hs + i) * ws + j) * 4);
        t++;
      }
    }
  }
  for (let e = 0; e < pad; e++) store<i32>(offs + <usize>(t + e) * 4, 0);
}

// wt[o][t] splatted to f32x4: outputs in groups of 4 as [group][t][4] (the 4×12 tile's), the last
// outs % 4 as [o][t] (the 1×32 tile's); output o's block starts at o·taps·16 bytes either way.
// flip: the input gradient's weights (outputs = input channels, taps over (co, i, j), kernel flipped).
// byTap: inputGradByTap's weights (outputs (ci, i, j) of the flipped kernel, taps the cout channels).
// Outputs from `real` on get zero weights (byTap pads its outputs to a multiple of 4).
function splatWeights(
  w: usize, dst: usize, outs: i32, taps: i32, flip: bool, byTap: bool, c: i32, khw: i32, real: i32 = 0x7fffffff,
): void {
  const full = outs & ~3;
  for (let o = 0; o < outs; o++) {
    for (let t = 0; t < taps; t++) {
      let idx = flip ? ((t / khw) * c + o) * khw + khw - 1 - t % khw : o * taps + t;
      if (byTap) idx = (t * c + o / khw) * khw + khw - 1 - o % khw;
      const at = o < full ? ((o & ~3) * taps + t * 4 + (o & 3)) : o * taps + t;
      const v: f32 = o < real ? load<f32>(w + <usize>idx * 4) : 0;
      v128.store(dst + <usize>at * 16, f32x4.splat(v));
    }
  }
}

// out[o + k][q + 0..8) for k < 4: Σ_t src[q + off(t)] · wt[o + k][t]. 8 accumulators, 2 inputs and
// a weight: 11 vector registers (V8 on x64 allocates 15; a 4×12 tile spilled and ran slower).
@inline function tile4x8(src: usize, offs: usize, taps: i32, wt: usize, out: usize, stride: usize): void {
  tile4x8Into(src, offs, taps, wt, out, stride, 0, false);
}

// tile4x8, stored as flush(sum + bias[o + k]) when `finish` (biasPtr 0: no bias).
@inline function tile4x8Into(
  src: usize, offs: usize, taps: i32, wt: usize, out: usize, stride: usize, biasPtr: usize, finish: bool,
): void {
  let a00 = f32x4.splat(0), a01 = f32x4.splat(0);
  let a10 = f32x4.splat(0), a11 = f32x4.splat(0);
  let a20 = f32x4.splat(0), a21 = f32x4.splat(0);
  let a30 = f32x4.splat(0), a31 = f32x4.splat(0);
  for (let t = 0; t < taps; t++) {
    const s = src + <usize>load<i32>(offs + <usize>t * 4);
    const x0 = v128.load(s), x1 = v128.load(s, 16);
    let w = v128.load(wt);
    a00 = madd(x0, w, a00); a01 = madd(x1, w, a01);
    w = v128.load(wt, 16);
    a10 = madd(x0, w, a10); a11 = madd(x1, w, a11);
    w = v128.load(wt, 32);
    a20 = madd(x0, w, a20); a21 = madd(x1, w, a21);
    w = v128.load(wt, 48);
    a30 = madd(x0, w, a30); a31 = madd(x1, w, a31);
    wt += 64;
  }
  if (finish) {
    let b = biasPtr != 0 ? v128.load32_splat(biasPtr) : f32x4.splat(0);
    a00 = flush32(f32x4.add(a00, b)); a01 = flush32(f32x4.add(a01, b));
    b = biasPtr != 0 ? v128.load32_splat(biasPtr, 4) : b;
    a10 = flush32(f32x4.add(a10, b)); a11 = flush32(f32x4.add(a11, b));
    b = biasPtr != 0 ? v128.load32_splat(biasPtr, 8) : b;
    a20 = flush32(f32x4.add(a20, b)); a21 = flush32(f32x4.add(a21, b));
    b = biasPtr != 0 ? v128.load32_splat(biasPtr, 12) : b;
    a30 = flush32(f32x4.add(a30, b)); a31 = flush32(f32x4.add(a31, b));
  }
  v128.store(out, a00); v128.store(out, a01, 16);
  out += stride;
  v128.store(out, a10); v128.store(out, a11, 16);
  out += stride;
  v128.store(out, a20); v128.store(out, a21, 16);
  out += stride;
  v128.store(out, a30); v128.store(out, a31, 16);
}

// out[q + 0..32) of one output (+)= Σ_t src[q + off(t)] · wt[t] (added to out when `accumulate`).
@inline function tile1x32(src: usize, offs: usize, taps: i32, wt: usize, out: usize, accumulate: bool): void {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let a4 = f32x4.splat(0), a5 = f32x4.splat(0), a6 = f32x4.splat(0), a7 = f32x4.splat(0);
  if (accumulate) {
    a0 = v128.load(out); a1 = v128.load(out, 16); a2 = v128.load(out, 32); a3 = v128.load(out, 48);
    a4 = v128.load(out, 64); a5 = v128.load(out, 80); a6 = v128.load(out, 96); a7 = v128.load(out, 112);
  }
  for (let t = 0; t < taps; t++) {
    const s = src + <usize>load<i32>(offs + <usize>t * 4);
    const w = v128.load(wt);
    a0 = madd(v128.load(s), w, a0); a1 = madd(v128.load(s, 16), w, a1);
    a2 = madd(v128.load(s, 32), w, a2); a3 = madd(v128.load(s, 48), w, a3);
    a4 = madd(v128.load(s, 64), w, a4); a5 = madd(v128.load(s, 80), w, a5);
    a6 = madd(v128.load(s, 96), w, a6); a7 = madd(v128.load(s, 112), w, a7);
    wt += 16;
  }
  v128.store(out, a0); v128.store(out, a1, 16); v128.store(out, a2, 32); v128.store(out, a3, 48);
  v128.store(out, a4, 64); v128.store(out, a5, 80); v128.store(out, a6, 96); v128.store(out, a7, 112);
}

// out [outs][qs] = the correlation of src with the splatted weights, q < qOut per plane. The 1×32
// tile reads 4 floats of src per multiply-add (the 4×8 tile 1): it sweeps q over a chunk of taps
// whose planes (~16 KiB) stay in L1, then the next chunk, adding to out.
function correlate(
  src: usize, offs: usize, taps: i32, wsp: usize, out: usize, outs: i32, qOut: i32, qs: i32, tapsPerPlane: i32, plane: i32,
): void {
  const full = outs & ~3, stride = <usize>qs * 4;
  for (let o = 0; o < full; o += 4) {
    const wt = wsp + <usize>o * <usize>taps * 16, dst = out + <usize>o * stride;
    for (let q = 0; q < qOut; q += 8) tile4x8(src + <usize>q * 4, offs, taps, wt, dst + <usize>q * 4, stride);
  }
  const chunk = max(1, 4096 / plane) * tapsPerPlane;
  for (let o = full; o < outs; o++) {
    const wt = wsp + <usize>o * <usize>taps * 16, dst = out + <usize>o * stride;
    for (let t = 0; t < taps; t += chunk) {
      const n = min(chunk, taps - t), w = wt + <usize>t * 16, ofs = offs + <usize>t * 4;
      for (let q = 0; q < qOut; q += 32) tile1x32(src + <usize>q * 4, ofs, n, w, dst + <usize>q * 4, t > 0);
    }
  }
}

// dst[i] = flush(src[i] + b) for i < len.
function copyAddFlush(src: usize, dst: usize, b: f32, len: i32): void {
  const bv = f32x4.splat(b);
  let i = 0;
  for (; i + 4 <= len; i += 4) {
    const off = <usize>i * 4;
    v128.store(dst + off, flush32(f32x4.add(v128.load(src + off), bv)));
  }
  for (; i < len; i++) {
    const off = <usize>i * 4;
    v128.store32_lane(dst + off, flush32(f32x4.add(v128.load32_zero(src + off), bv)), 0);
  }
}

// directCorrelation's sums stored straight into res [outs][hOut][wOut] (outs a multiple of 4),
// finished (+ bias, flushed), row by row: no out planes and no copy. A row's last tile runs past
// the row into the next one, which is computed (and stored) after it; the last row's goes through buf.
function forwardRows(
  src: usize, offs: usize, taps: i32, wsp: usize, biasPtr: usize, res: usize, outs: i32, hOut: i32, wOut: i32, ws: i32,
  buf: usize,
): void {
  const plane = <usize>(hOut * wOut) * 4;
  for (let o = 0; o < outs; o += 4) {
    const wt = wsp + <usize>o * <usize>taps * 16, bias = biasPtr != 0 ? biasPtr + <usize>o * 4 : 0;
    const dst = res + <usize>o * plane;
    for (let y = 0; y < hOut; y++) {
      const s = src + <usize>(y * ws) * 4, d = dst + <usize>(y * wOut) * 4;
      let x = 0;
      for (; x + 8 <= wOut; x += 8) tile4x8Into(s + <usize>x * 4, offs, taps, wt, d + <usize>x * 4, plane, bias, true);
      if (x == wOut) continue;
      if (y + 1 < hOut) {
        tile4x8Into(s + <usize>x * 4, offs, taps, wt, d + <usize>x * 4, plane, bias, true);
      } else {
        tile4x8Into(s + <usize>x * 4, offs, taps, wt, buf, 32, bias, true);
        for (let k = 0; k < 4; k++) {
          memory.copy(d + <usize>k * plane + <usize>x * 4, buf + <usize>k * 32, <usize>(wOut - x) * 4);
        }
      }
    }
  }
}

// convForward (flip false) or convInputGrad (flip true) by direct correlation: in [n][planes][hIn][wIn]
// (x, or g) to res [n][outs][hOut][wOut] (y, or dx), plus bias (0: none).
function directCorrelation(inPtr: usize, wPtr: usize, biasPtr: usize, resPtr: usize, g: usize, scratch: usize, flip: bool): void {
  const n = geo(g, 0), c = geo(g, 1), h = geo(g, 2), w = geo(g, 3), cout = geo(g, 4), kh = geo(g, 5), kw = geo(g, 6);
  const ph = geo(g, 9), pw = geo(g, 10), oh = geo(g, 13), ow = geo(g, 14);
  const planes = flip ? cout : c, outs = flip ? c : cout, taps = planes * kh * kw;
  const hIn = flip ? oh : h, wIn = flip ? ow : w, hOut = flip ? h : oh, wOut = flip ? w : ow;
  const top = flip ? kh - 1 - ph : ph, left = flip ? kw - 1 - pw : pw;
  const hs = flip ? h + kh - 1 : h + 2 * ph, ws = flip ? w + kw - 1 : w + 2 * pw;
  const q = hOut * ws, qs = outStride(q), slack = srcSlack(qs, q, kw);
  const src = scratch, wsp = src + srcBytes(planes, hs, ws, slack);
  const offs = wsp + roundUp64(<usize>outs * <usize>taps * 16), out = offs + roundUp64(<usize>taps * 4);
  splatWeights(wPtr, wsp, outs, taps, flip, false, c, kh * kw);
  tapOffsets(offs, planes, kh, kw, hs, ws, 0);
  for (let b = 0; b < n; b++) {
    padPlanes(inPtr + <usize>(b * planes * hIn * wIn) * 4, planes, hIn, wIn, src, ws, hs * ws, top, left, planes * hs * ws + slack);
    if ((outs & 3) == 0) {
      forwardRows(src, offs, taps, wsp, biasPtr, resPtr + <usize>(b * outs * hOut * wOut) * 4, outs, hOut, wOut, ws, out);
      continue;
    }
    correlate(src, offs, taps, wsp, out, outs, q, qs, kh * kw, hs * ws);
    for (let o = 0; o < outs; o++) {
      const bias: f32 = biasPtr != 0 ? load<f32>(biasPtr + <usize>o * 4) : 0;
      const from = out + <usize>(o * qs) * 4, to = resPtr + <usize>((b * outs + o) * hOut * wOut) * 4;
      for (let y = 0; y < hOut; y++) copyAddFlush(from + <usize>(y * ws) * 4, to + <usize>(y * wOut) * 4, bias, wOut);
    }
  }
}

// Outputs of inputGradByTap's first correlation: c·kh·kw, padded with zero weights to whole 4×8
// tiles when 2 or 3 would be left to the slower 1×32 tile (one is cheaper left there: 0.89x padded).
@inline function byTapOuts(outs: i32): i32 {
  return (outs & 3) >= 2 ? roundUpTo(outs, 4) : outs;
}

// Scratch of inputGradByTap: the last sample's g (with a tile of slack), the splatted weights,
// offsets, z, z padded (+ slack), ones, the sum's offsets and one dx plane.
function byTapBytes(g: usize): usize {
  const c = geo(g, 1), cout = geo(g, 4), khw = geo(g, 5) * geo(g, 6), p = geo(g, 13) * geo(g, 14);
  const hs = geo(g, 2) + geo(g, 5) - 1, ws = geo(g, 3) + geo(g, 6) - 1, q = geo(g, 2) * ws;
  const outs = c * khw, outs4 = byTapOuts(outs), qs = roundUpTo(p, 32), ps = roundUpTo(hs * ws, 4);
  return roundUp64(<usize>(cout * p + 32) * 4) + roundUp64(<usize>outs4 * <usize>cout * 16) + roundUp64(<usize>cout * 4) +
    roundUp64(<usize>outs4 * <usize>qs * 4) + roundUp64(<usize>(outs * ps + roundUpTo(q, 32) - q + geo(g, 6) + 4) * 4) +
    roundUp64(<usize>khw * 20) + <usize>roundUpTo(q, 32) * 4;
}

// convInputGrad for fewer than 4 input channels, where the flipped correlation has fewer than 4
// outputs (the 1×32 tile, 1 load per multiply-add, ran at a third of the 4×8 tile's speed): first
// z[(ci, i, j)][p] = Σ_co g[co][p] · w[co][ci][kh-1-i][kw-1-j] at every output position p (g read
// in place, its cout planes the taps; c·kh·kw outputs, mostly 4×8 tiles), then z is padded as g
// would be for the flipped correlation and dx[ci][y][x] = Σ_(i,j) zpad[(ci, i, j)][(y + i)·ws + x + j],
// a correlation of those planes with weights 1 (kh·kw adds per input pixel, against cout·kh·kw
// multiply-adds for z). Tiles read up to 31 floats past a sample's g: the last sample's is copied.
function inputGradByTap(gPtr: usize, wPtr: usize, dxPtr: usize, g: usize, scratch: usize): void {
  const n = geo(g, 0), c = geo(g, 1), h = geo(g, 2), w = geo(g, 3), cout = geo(g, 4), kh = geo(g, 5), kw = geo(g, 6);
  const ph = geo(g, 9), pw = geo(g, 10), oh = geo(g, 13), ow = geo(g, 14), khw = kh * kw, outs = c * khw;
  const outs4 = byTapOuts(outs), p = oh * ow, qs = roundUpTo(p, 32), hs = h + kh - 1, ws = w + kw - 1, ps = roundUpTo(hs * ws, 4);
  const q = h * ws, qd = roundUpTo(q, 32), slack = qd - q + kw + 4;
  const last = scratch, wsp = last + roundUp64(<usize>(cout * p + 32) * 4);
  const offs = wsp + roundUp64(<usize>outs4 * <usize>cout * 16), z = offs + roundUp64(<usize>cout * 4);
  const zp = z + roundUp64(<usize>outs4 * <usize>qs * 4), ones = zp + roundUp64(<usize>(outs * ps + slack) * 4);
  const zoffs = ones + <usize>khw * 16, plane = ones + roundUp64(<usize>khw * 20);
  splatWeights(wPtr, wsp, outs4, cout, false, true, c, khw, outs);
  for (let co = 0; co < cout; co++) store<i32>(offs + <usize>co * 4, co * p * 4);
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const t = i * kw + j;
      v128.store(ones + <usize>t * 16, f32x4.splat(1));
      store<i32>(zoffs + <usize>t * 4, (t * ps + i * ws + j) * 4);
    }
  }
  for (let b = 0; b < n; b++) {
    let gb = gPtr + <usize>(b * cout * p) * 4;
    if (b == n - 1) {
      memory.copy(last, gb, <usize>(cout * p) * 4);
      memory.fill(last + <usize>(cout * p) * 4, 0, 32 * 4);
      gb = last;
    }
    correlate(gb, offs, cout, wsp, z, outs4, p, qs, 1, p);
    padPlanes(z, outs, oh, ow, zp, ws, ps, kh - 1 - ph, kw - 1 - pw, outs * ps + slack, qs);
    for (let ci = 0; ci < c; ci++) {
      correlate(zp + <usize>(ci * khw) * <usize>ps * 4, zoffs, khw, ones, plane, 1, q, qd, khw, ps);
      const dst = dxPtr + <usize>((b * c + ci) * h * w) * 4;
      for (let y = 0; y < h; y++) copyAddFlush(plane + <usize>(y * ws) * 4, dst + <usize>(y * w) * 4, 0, w);
    }
  }
}

@inline function hsum(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

// Floats n = 1..3 at p in the low lanes, zeros above (a row's last, partial group).
@inline function loadPartial(p: usize, n: i32): v128 {
  let v = v128.load32_zero(p);
  if (n > 1) v = v128.load32_lane(p, v, 1, 4);
  if (n > 2) v = v128.load32_lane(p, v, 2, 8);
  return v;
}

// dw[o + k][t + j] += Σ_(y, x) g[o + k][y][x] · src[y·ws + x + off(t + j)] for k < 3, j < 3 (those
// that exist). g is read in place, row by row (gk: channel o + k's plane, the last one repeated
// past cout); src's rows are ws floats long, so its taps lie at fixed offsets from g's position.
// 9 accumulators, 3 inputs and g: 13 vector registers (a 4×3 tile, 16, spilled; 4×2 wasted a
// tenth of its work on 3×3 kernels' 9 taps and ran 0.85x on W6's conv1).
@inline function weightTile(
  g0: usize, g1: usize, g2: usize, src: usize, offs: usize, oh: i32, ow: i32, ws: i32,
  dw: usize, o: i32, t: i32, cout: i32, taps: i32,
): void {
  let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a02 = f32x4.splat(0);
  let a10 = f32x4.splat(0), a11 = f32x4.splat(0), a12 = f32x4.splat(0);
  let a20 = f32x4.splat(0), a21 = f32x4.splat(0), a22 = f32x4.splat(0);
  const o0 = load<i32>(offs + <usize>t * 4);
  let s0 = src + <usize>o0;
  const d1 = <usize>(load<i32>(offs + <usize>t * 4, 4) - o0), d2 = <usize>(load<i32>(offs + <usize>t * 4, 8) - o0);
  const full = ow & ~3, rest = ow - full, rowBytes = <usize>ow * 4;
  let gr: usize = 0;
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < full; x += 4) {
      const off = gr + <usize>x * 4, s = s0 + <usize>x * 4;
      const x0 = v128.load(s), x1 = v128.load(s + d1), x2 = v128.load(s + d2);
      let v = v128.load(g0 + off);
      a00 = madd(v, x0, a00); a01 = madd(v, x1, a01); a02 = madd(v, x2, a02);
      v = v128.load(g1 + off);
      a10 = madd(v, x0, a10); a11 = madd(v, x1, a11); a12 = madd(v, x2, a12);
      v = v128.load(g2 + off);
      a20 = madd(v, x0, a20); a21 = madd(v, x1, a21); a22 = madd(v, x2, a22);
    }
    if (rest > 0) {
      const off = gr + <usize>full * 4, s = s0 + <usize>full * 4;
      const x0 = v128.load(s), x1 = v128.load(s + d1), x2 = v128.load(s + d2);
      let v = loadPartial(g0 + off, rest);
      a00 = madd(v, x0, a00); a01 = madd(v, x1, a01); a02 = madd(v, x2, a02);
      v = loadPartial(g1 + off, rest);
      a10 = madd(v, x0, a10); a11 = madd(v, x1, a11); a12 = madd(v, x2, a12);
      v = loadPartial(g2 + off, rest);
      a20 = madd(v, x0, a20); a21 = madd(v, x1, a21); a22 = madd(v, x2, a22);
    }
    gr += rowBytes;
    s0 += <usize>ws * 4;
  }
  addSums(dw, o, t, cout, taps, hsum(a00), hsum(a01), hsum(a02));
  addSums(dw, o + 1, t, cout, taps, hsum(a10), hsum(a11), hsum(a12));
  addSums(dw, o + 2, t, cout, taps, hsum(a20), hsum(a21), hsum(a22));
}

@inline function addSums(dw: usize, o: i32, t: i32, cout: i32, taps: i32, v0: f32, v1: f32, v2: f32): void {
  if (o >= cout) return;
  const p = dw + <usize>(o * taps + t) * 4;
  store<f32>(p, load<f32>(p) + v0);
  if (t + 1 < taps) store<f32>(p, load<f32>(p, 4) + v1, 4);
  if (t + 2 < taps) store<f32>(p, load<f32>(p, 8) + v2, 8);
}

// convWeightGrad by direct correlation (see above), g read in place.
function directWeightGrad(gPtr: usize, xPtr: usize, dwPtr: usize, g: usize, scratch: usize): void {
  const n = geo(g, 0), c = geo(g, 1), h = geo(g, 2), w = geo(g, 3), cout = geo(g, 4), kh = geo(g, 5), kw = geo(g, 6);
  const ph = geo(g, 9), pw = geo(g, 10), oh = geo(g, 13), ow = geo(g, 14);
  const hs = h + 2 * ph, ws = w + 2 * pw, taps = c * kh * kw, tapsPad = roundUpTo(taps, 3);
  const src = scratch, offs = src + srcBytes(c, hs, ws, kw + 4), plane = <usize>(oh * ow) * 4;
  tapOffsets(offs, c, kh, kw, hs, ws, tapsPad - taps);
  memory.fill(dwPtr, 0, <usize>cout * <usize>taps * 4);
  for (let b = 0; b < n; b++) {
    padPlanes(xPtr + <usize>(b * c * h * w) * 4, c, h, w, src, ws, hs * ws, ph, pw, c * hs * ws + kw + 4);
    const gb = gPtr + <usize>(b * cout) * plane;
    for (let o = 0; o < cout; o += 3) {
      const g0 = gb + <usize>o * plane, g1 = gb + <usize>min(o + 1, cout - 1) * plane;
      const g2 = gb + <usize>min(o + 2, cout - 1) * plane;
      for (let t = 0; t < taps; t += 3) weightTile(g0, g1, g2, src, offs, oh, ow, ws, dwPtr, o, t, cout, taps);
    }
  }
  flushAll(dwPtr, cout * taps);
}

/**
 * y [n, cout, oh, ow] = conv2d(x [n, c, h, w], w [cout, c/groups, kh, kw]) + bias (biasPtr 0: none),
 * flushed; geoPtr: the 16-i32 geometry block, scratchPtr: convScratchBytes(geoPtr) bytes.
 */
export function convForward(xPtr: usize, wPtr: usize, biasPtr: usize, yPtr: usize, geoPtr: usize, scratchPtr: usize): void {
  if (directQualifies(geoPtr)) {
    directCorrelation(xPtr, wPtr, biasPtr, yPtr, geoPtr, scratchPtr, false);
    return;
  }
  const n = geo(geoPtr, 0), c = geo(geoPtr, 1), hw = geo(geoPtr, 2) * geo(geoPtr, 3), cout = geo(geoPtr, 4);
  const groups = geo(geoPtr, 15), cg = c / groups, og = cout / groups;
  const kk = cg * geo(geoPtr, 5) * geo(geoPtr, 6), p = geo(geoPtr, 13) * geo(geoPtr, 14);
  const cols = scratchPtr, pack = scratchPtr + roundUp64(<usize>kk * <usize>p * 4);
  for (let b = 0; b < n; b++) {
    for (let g = 0; g < groups; g++) {
      im2col(xPtr + <usize>(b * c + g * cg) * <usize>hw * 4, cols, geoPtr, cg);
      const yg = yPtr + <usize>(b * cout + g * og) * <usize>p * 4;
      gemm(wPtr + <usize>(g * og) * <usize>kk * 4, cols, yg, og, kk, p, 0, 0, pack, false);
    }
    for (let o = 0; o < cout; o++) {
      const bias: f32 = biasPtr != 0 ? load<f32>(biasPtr + <usize>o * 4) : 0;
      addFlush(yPtr + <usize>(b * cout + o) * <usize>p * 4, bias, p);
    }
  }
}

/**
 * dx [n, c, h, w] = the gradient of convForward's input for output gradient g [n, cout, oh, ow]
 * (a transposed convolution), overwritten and flushed; w, geoPtr and scratchPtr as convForward.
 */
export function convInputGrad(gPtr: usize, wPtr: usize, dxPtr: usize, geoPtr: usize, scratchPtr: usize): void {
  if (inputGradDirect(geoPtr)) {
    if ((geo(geoPtr, 1) & 3) != 0) inputGradByTap(gPtr, wPtr, dxPtr, geoPtr, scratchPtr);
    else directCorrelation(gPtr, wPtr, 0, dxPtr, geoPtr, scratchPtr, true);
    return;
  }
  const n = geo(geoPtr, 0), c = geo(geoPtr, 1), hw = geo(geoPtr, 2) * geo(geoPtr, 3), cout = geo(geoPtr, 4);
  const groups = geo(geoPtr, 15), cg = c / groups, og = cout / groups;
  const kk = cg * geo(geoPtr, 5) * geo(geoPtr, 6), p = geo(geoPtr, 13) * geo(geoPtr, 14);
  const cols = scratchPtr, pack = scratchPtr + roundUp64(<usize>kk * <usize>p * 4);
  memory.fill(dxPtr, 0, <usize>n * <usize>c * <usize>hw * 4);
  for (let b = 0; b < n; b++) {
    for (let g = 0; g < groups; g++) {
      const gg = gPtr + <usize>(b * cout + g * og) * <usize>p * 4;
      gemm(wPtr + <usize>(g * og) * <usize>kk * 4, gg, cols, kk, og, p, 1, 0, pack, false);
      col2im(cols, dxPtr + <usize>(b * c + g * cg) * <usize>hw * 4, geoPtr, cg);
    }
  }
  flushAll(dxPtr, n * c * hw);
}

/**
 * dw [cout, c/groups, kh, kw] = Σ over samples of g[b] · im2col(x[b])ᵀ, the gradient of
 * convForward's weight for output gradient g, overwritten and flushed; geoPtr, scratchPtr as there.
 */
export function convWeightGrad(gPtr: usize, xPtr: usize, dwPtr: usize, geoPtr: usize, scratchPtr: usize): void {
  if (directQualifies(geoPtr)) {
    directWeightGrad(gPtr, xPtr, dwPtr, geoPtr, scratchPtr);
    return;
  }
  const n = geo(geoPtr, 0), c = geo(geoPtr, 1), hw = geo(geoPtr, 2) * geo(geoPtr, 3), cout = geo(geoPtr, 4);
  const groups = geo(geoPtr, 15), cg = c / groups, og = cout / groups;
  const kk = cg * geo(geoPtr, 5) * geo(geoPtr, 6), p = geo(geoPtr, 13) * geo(geoPtr, 14);
  const cols = scratchPtr, pack = scratchPtr + roundUp64(<usize>kk * <usize>p * 4);
  if (n == 0) memory.fill(dwPtr, 0, <usize>cout * <usize>kk * 4);
  for (let g = 0; g < groups; g++) {
    const dwg = dwPtr + <usize>(g * og) * <usize>kk * 4;
    for (let b = 0; b < n; b++) {
      im2col(xPtr + <usize>(b * c + g * cg) * <usize>hw * 4, cols, geoPtr, cg);
      const gg = gPtr + <usize>(b * cout + g * og) * <usize>p * 4;
      gemm(gg, cols, dwg, og, p, kk, 0, 1, pack, b > 0);
    }
  }
  flushAll(dwPtr, cout * kk);
}
