import { flush32 } from "./lanes";

// ---------------------------------------------------------------------------------------------
// Max pooling over planes (NCHW: every (sample, channel) plane of h×w is pooled alone).
//   maxPoolIndices   for every output, the flat in-plane index of its window's first maximum (NaN
//                    wins over numbers, the first NaN over later ones, as PyTorch); -1 for a window
//                    with no input element (cannot happen with padding <= kernel/2)
//   poolGather       y[plane][o] = x[plane][index[plane][o]]             (forward)
//   poolScatter      dx[plane][index[plane][o]] += g[plane][o], dx zeroed first, flushed  (backward)
// The gather and the scatter are each other's adjoint, so gradients of every order are these two.
// maxPoolIndices has an f32x4 path for the common 2×2, stride 2, no padding window: four outputs
// per step, the two input rows' even and odd columns split out by shuffles.
//
// Geometry block at geoPtr: 13 i32, in this order (POOL_GEOMETRY in src/kernels/pool.ts):
//   planes, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow
// ---------------------------------------------------------------------------------------------

@inline function geo(ptr: usize, i: i32): i32 {
  return load<i32>(ptr + <usize>i * 4);
}

// Lanes of v that should replace best: greater, or NaN where best is not.
@inline function takes(v: v128, best: v128): v128 {
  return v128.or(f32x4.gt(v, best), v128.andnot(f32x4.ne(v, v), f32x4.ne(best, best)));
}

/** index [planes, oh, ow] (i32) = the flat in-plane position of each window's first maximum of x. */
export function maxPoolIndices(xPtr: usize, indexPtr: usize, geoPtr: usize): void {
  const planes = geo(geoPtr, 0), h = geo(geoPtr, 1), w = geo(geoPtr, 2), kh = geo(geoPtr, 3), kw = geo(geoPtr, 4);
  const sh = geo(geoPtr, 5), sw = geo(geoPtr, 6), ph = geo(geoPtr, 7), pw = geo(geoPtr, 8);
  const dh = geo(geoPtr, 9), dw = geo(geoPtr, 10), oh = geo(geoPtr, 11), ow = geo(geoPtr, 12);
  const fast = kh == 2 && kw == 2 && sh == 2 && sw == 2 && ph == 0 && pw == 0 && dh == 1 && dw == 1;
  let out = indexPtr;
  for (let plane = 0; plane < planes; plane++) {
    const base = xPtr + <usize>plane * <usize>(h * w) * 4;
    for (let oy = 0; oy < oh; oy++) {
      let ox = 0;
      // Four outputs from ox read columns 2·ox .. 2·ox + 7: inside the row for every ox up to the
      // last four outputs (ow - 4) when 2·(ow - 4) + 8 <= w. A row whose width is not a multiple of
      // four ends with the last four outputs, recomputing a few (same values, same indices).
      const lastFour = ow - 4;
      if (fast && 2 * oy + 1 < h && lastFour >= 0 && 2 * lastFour + 8 <= w) {
        const r0 = base + <usize>(2 * oy * w) * 4, r1 = r0 + <usize>w * 4;
        for (let next = 0; ox < ow; next += 4) {
          ox = min(next, lastFour);
          const off = <usize>(2 * ox) * 4;
          const a0 = v128.load(r0 + off), a1 = v128.load(r0 + off, 16);
          const b0 = v128.load(r1 + off), b1 = v128.load(r1 + off, 16);
          const at = i32x4(0, 2, 4, 6);
          let best = v128.shuffle<f32>(a0, a1, 0, 2, 4, 6);
          let where = i32x4.add(i32x4.splat(2 * oy * w + 2 * ox), at);
          let v = v128.shuffle<f32>(a0, a1, 1, 3, 5, 7);
          let take = takes(v, best);
          best = v128.bitselect(v, best, take);
          where = v128.bitselect(i32x4.add(where, i32x4.splat(1)), where, take);
          const rowBelow = i32x4.add(i32x4.splat((2 * oy + 1) * w + 2 * ox), at);
          v = v128.shuffle<f32>(b0, b1, 0, 2, 4, 6);
          take = takes(v, best);
          best = v128.bitselect(v, best, take);
          where = v128.bitselect(rowBelow, where, take);
          v = v128.shuffle<f32>(b0, b1, 1, 3, 5, 7);
          take = takes(v, best);
          where = v128.bitselect(i32x4.add(rowBelow, i32x4.splat(1)), where, take);
          v128.store(out + <usize>ox * 4, where);
          ox += 4;
        }
      }
      for (; ox < ow; ox++) {
        let best: f32 = 0, at: i32 = -1;
        for (let i = 0; i < kh; i++) {
          const iy = oy * sh - ph + i * dh;
          if (iy < 0 || iy >= h) continue;
          for (let j = 0; j < kw; j++) {
            const ix = ox * sw - pw + j * dw;
            if (ix < 0 || ix >= w) continue;
            const v = load<f32>(base + <usize>(iy * w + ix) * 4);
            if (at < 0 || v > best || (isNaN(v) && !isNaN(best))) {
              best = v;
              at = iy * w + ix;
            }
          }
        }
        store<i32>(out + <usize>ox * 4, at);
      }
      out += <usize>ow * 4;
    }
  }
}

/** y[p][o] = x[p][index[p][o]] for planes p of hw inputs and count outputs (index -1 reads 0). */
export function poolGather(xPtr: usize, indexPtr: usize, yPtr: usize, planes: i32, hw: i32, count: i32): void {
  for (let p = 0; p < planes; p++) {
    const x = xPtr + <usize>p * <usize>hw * 4;
    const at = indexPtr + <usize>p * <usize>count * 4, y = yPtr + <usize>p * <usize>count * 4;
    for (let o = 0; o < count; o++) {
      const i = load<i32>(at + <usize>o * 4);
      store<f32>(y + <usize>o * 4, i >= 0 ? load<f32>(x + <usize>i * 4) : 0);
    }
  }
}

/** dx [planes, hw] = 0, then dx[p][index[p][o]] += g[p][o] (index -1 skipped), flushed. */
export function poolScatter(gPtr: usize, indexPtr: usize, dxPtr: usize, planes: i32, hw: i32, count: i32): void {
  memory.fill(dxPtr, 0, <usize>planes * <usize>hw * 4);
  for (let p = 0; p < planes; p++) {
    const dx = dxPtr + <usize>p * <usize>hw * 4;
    const at = indexPtr + <usize>p * <usize>count * 4, g = gPtr + <usize>p * <usize>count * 4;
    for (let o = 0; o < count; o++) {
      const i = load<i32>(at + <usize>o * 4);
      if (i >= 0) {
        const d = dx + <usize>i * 4;
        store<f32>(d, load<f32>(d) + load<f32>(g + <usize>o * 4));
      }
    }
  }
  const n = planes * hw;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const off = <usize>i * 4;
    v128.store(dxPtr + off, flush32(v128.load(dxPtr + off)));
  }
  for (; i < n; i++) {
    const off = <usize>i * 4;
    v128.store32_lane(dxPtr + off, flush32(v128.load32_zero(dxPtr + off)), 0);
  }
}
