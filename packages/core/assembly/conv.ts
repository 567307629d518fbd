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
// A direct 3×3 kernel (stride 1, pad 1; the gemm's 8-channel × 4-column register tile read straight
// from a zero-padded copy of the sample, no im2col and no packing) was measured against this on
// W6's layers at batch 128, one thread, same process: conv 1→32 on 28×28 (K = 9, where packing
// dominates) ran at 7.9-8.4 GFLOP/s against 5.4-6.0 here, conv 32→64 on 14×14 (K = 288, 94% of
// W6's convolution work) at 7.1-8.1 against 8.6-9.0 here. It would win ~1% of a step, for a
// second kernel (and its two gradients) per layout, so it was not kept.
//
// Outputs (y, dx, dW) are flushed: |v| < FLT_MIN is stored as 0, as the elementwise kernels do.
//
// Geometry block at geoPtr: 16 i32, in this order (CONV_GEOMETRY in src/kernels/conv.ts):
//   n, c, h, w, cout, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, groups
// Scratch at scratchPtr: convScratchBytes(geoPtr) bytes, 64-byte aligned (cols, then the gemm's
// packing scratch).
// ---------------------------------------------------------------------------------------------

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
  return <i32>(roundUp64(<usize>kk * <usize>p * 4) + <usize>pack);
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

/**
 * y [n, cout, oh, ow] = conv2d(x [n, c, h, w], w [cout, c/groups, kh, kw]) + bias (biasPtr 0: none),
 * flushed; geoPtr: the 16-i32 geometry block, scratchPtr: convScratchBytes(geoPtr) bytes.
 */
export function convForward(xPtr: usize, wPtr: usize, biasPtr: usize, yPtr: usize, geoPtr: usize, scratchPtr: usize): void {
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
