import { expF32OfF64, expF32x4, flushSigned32, promoteHigh } from "./activation-math";
import { FLT_MIN_F64, load1, load2 } from "./lanes";

// ---------------------------------------------------------------------------------------------
// Softmax over the last dimension, forward and backward; JavaScript twins with the same bits in
// src/kernels/softmax.ts.
//
// Forward (attention's scores and F.softmax): per row, v = scale·x + bias in f64 (keys past the
// row's position masked when causal), m = max v, e = e^(v - m) (exponent clamped at -700) in f32
// lanes from the f64 exponent split into hi + lo (expF32OfF64, within 2 ulp), total = Σ e summed in
// two f64 lanes (even and odd columns, added at the end, then an odd last column), p = e·(1/total)
// in f64 rounded to f32 (below FLT_MIN stored as 0). A row whose scores are
// all -inf gives 0; a NaN score gives a NaN row. The e values wait in f64 scratch (8 bytes a column).
//
// Backward: dx = p·(g - Σ g·p), the chain `mul(p, sub(g, sum(mul(g, p))))` of float32 ops it replaces
// with its roundings: each product and difference rounded to f32 and flushed, the sum in f64 in
// column order and rounded once (as the JavaScript reduction does).
// ---------------------------------------------------------------------------------------------

@inline function scores2(x: usize, bias: usize, off: usize, scale: f64): v128 {
  const v = f64x2.mul(f64x2.splat(scale), load2(x + off));
  return bias == 0 ? v : f64x2.add(v, load2(bias + off));
}

@inline function scores1(x: usize, bias: usize, off: usize, scale: f64): v128 {
  const v = f64x2.mul(f64x2.splat(scale), load1(x + off));
  return bias == 0 ? v : f64x2.add(v, load1(bias + off));
}

@inline function shift(v: v128, m: f64): v128 {
  return f64x2.max(f64x2.sub(v, f64x2.splat(m)), f64x2.splat(-700));
}

/**
 * out[r][j] = softmax over j of (scale·x[r][j] + bias[r][j]) for rows × cols row-major x (bias 0: none;
 * causal != 0: columns j > r % l masked), in f64, rounded to f32; scratch holds cols f64; out may be x.
 */
export function softmaxRows(
  x: usize,
  bias: usize,
  out: usize,
  scratch: usize,
  rows: i32,
  cols: i32,
  l: i32,
  scale: f64,
  causal: i32,
): void {
  for (let r = 0; r < rows; r++) {
    const rowOff = <usize>r * <usize>cols * 4;
    const xr = x + rowOff,
      br = bias == 0 ? 0 : bias + rowOff,
      or = out + rowOff;
    const limit = causal != 0 ? min(r % l + 1, cols) : cols;
    let mv = f64x2.splat(-Infinity);
    let j = 0;
    for (; j + 2 <= limit; j += 2) mv = f64x2.max(mv, scores2(xr, br, <usize>j * 4, scale));
    let m = f64x2.extract_lane(mv, 0);
    const m1 = f64x2.extract_lane(mv, 1);
    if (m1 > m || isNaN(m1)) m = m1;
    if (j < limit) {
      const v = f64x2.extract_lane(scores1(xr, br, <usize>j * 4, scale), 0);
      if (v > m || isNaN(v)) m = v;
    }
    if (m == -Infinity) {
      memory.fill(or, 0, <usize>cols * 4);
      continue;
    }
    let acc = f64x2.splat(0);
    j = 0;
    for (; j + 4 <= limit; j += 4) {
      const e = expF32OfF64(shift(scores2(xr, br, <usize>j * 4, scale), m), shift(scores2(xr, br, <usize>j * 4 + 8, scale), m));
      const eA = f64x2.promote_low_f32x4(e),
        eB = promoteHigh(e);
      v128.store(scratch + <usize>j * 8, eA);
      acc = f64x2.add(acc, eA);
      v128.store(scratch + <usize>j * 8 + 16, eB);
      acc = f64x2.add(acc, eB);
    }
    if (j + 2 <= limit) {
      const d = shift(scores2(xr, br, <usize>j * 4, scale), m);
      const e = f64x2.promote_low_f32x4(expF32OfF64(d, d));
      v128.store(scratch + <usize>j * 8, e);
      acc = f64x2.add(acc, e);
      j += 2;
    }
    let total = f64x2.extract_lane(acc, 0) + f64x2.extract_lane(acc, 1);
    if (j < limit) {
      const d = shift(scores1(xr, br, <usize>j * 4, scale), m);
      const e = f64x2.extract_lane(f64x2.promote_low_f32x4(expF32OfF64(d, d)), 0);
      store<f64>(scratch + <usize>j * 8, e);
      total += e;
    }
    const inv = f64x2.splat(1 / total);
    j = 0;
    for (; j + 2 <= limit; j += 2) {
      const p = f32x4.demote_f64x2_zero(f64x2.mul(v128.load(scratch + <usize>j * 8), inv));
      v128.store64_lane(or + <usize>j * 4, flushSigned32(p), 0);
    }
    if (j < limit) {
      const p = f32x4.demote_f64x2_zero(f64x2.mul(v128.load64_zero(scratch + <usize>j * 8), inv));
      v128.store32_lane(or + <usize>j * 4, flushSigned32(p), 0);
    }
    if (limit < cols) memory.fill(or + <usize>limit * 4, 0, <usize>(cols - limit) * 4);
  }
}

/** out[r][j] = p[r][j]·(g[r][j] - Σ_k g[r][k]·p[r][k]) for rows × cols row-major g and p, in f32 (see above); out may alias g. */
export function softmaxBackward(g: usize, p: usize, out: usize, rows: i32, cols: i32): void {
  for (let r = 0; r < rows; r++) {
    const off = <usize>r * <usize>cols * 4;
    const gr = g + off,
      pr = p + off,
      or = out + off;
    let s: f64 = 0;
    for (let j = 0; j < cols; j++) {
      const o = <usize>j * 4;
      const t = flushSigned32(f32x4.mul(v128.load32_zero(gr + o), v128.load32_zero(pr + o)));
      s += <f64>f32x4.extract_lane(t, 0);
    }
    const sv = f32x4.splat(<f32>s);
    let j = 0;
    for (; j + 4 <= cols; j += 4) {
      const o = <usize>j * 4;
      const d = flushSigned32(f32x4.sub(v128.load(gr + o), sv));
      v128.store(or + o, flushSigned32(f32x4.mul(v128.load(pr + o), d)));
    }
    for (; j < cols; j++) {
      const o = <usize>j * 4;
      const d = flushSigned32(f32x4.sub(v128.load32_zero(gr + o), sv));
      v128.store32_lane(or + o, flushSigned32(f32x4.mul(v128.load32_zero(pr + o), d)), 0);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Log-softmax over rows (a classifier's or a language model's loss), forward in two passes around
// one Math.log per row in JavaScript, and backward; the JavaScript twins are the float32 paths of
// logSoftmaxKernel and logSoftmaxBackwardKernel in src/ops/softmax.ts.
//   logSoftmaxStats: per row m = max x (NaN wins) and, for a finite m, s = Σ e^(x - m) in f64, each
//   e in f32 lanes (expF32x4 of the f32 difference x - m), added in column order. A row whose max is not
//   finite is left to JavaScript (its results, NaN and ±inf, do not depend on how exp rounds).
//   logSoftmaxApply: out = x - lse in f64 (lse = log(s) + m from JavaScript), flushed, rounded to f32.
//   logSoftmaxBackward: out = g - e^y·Σ g in f64 (Σ g in column order), e^y in f32 lanes for rows
//   whose y are all <= 0 (log-probabilities); a row holding a y > 0 or NaN is flagged for
//   JavaScript, which uses Math.exp there.
// ---------------------------------------------------------------------------------------------

const SIGN64: i64 = i64.MIN_VALUE;

// Zero of the lane's sign where |v| < FLT_MIN (as `Math.abs(r) < FLT_MIN ? r * 0 : r`), in f64.
@inline function flushSigned64(v: v128): v128 {
  const tiny = f64x2.lt(f64x2.abs(v), f64x2.splat(FLT_MIN_F64));
  return v128.andnot(v, v128.andnot(tiny, i64x2.splat(SIGN64)));
}

@inline function store2Signed(ptr: usize, v: v128): void {
  v128.store64_lane(ptr, f32x4.demote_f64x2_zero(flushSigned64(v)), 0);
}

@inline function store1Signed(ptr: usize, v: v128): void {
  v128.store32_lane(ptr, f32x4.demote_f64x2_zero(flushSigned64(v)), 0);
}

@inline function rowMax(row: usize, cols: i32): f32 {
  let mv = f32x4.splat(-Infinity);
  let j = 0;
  for (; j + 4 <= cols; j += 4) mv = f32x4.max(mv, v128.load(row + <usize>j * 4));
  const m01 = max<f32>(f32x4.extract_lane(mv, 0), f32x4.extract_lane(mv, 1));
  let m = max<f32>(m01, max<f32>(f32x4.extract_lane(mv, 2), f32x4.extract_lane(mv, 3)));
  for (; j < cols; j++) m = max<f32>(m, load<f32>(row + <usize>j * 4));
  return m;
}

/**
 * Log-softmax pass 1 over rows × cols row-major x: stats[2r] = the row's max m, stats[2r + 1] =
 * Σ e^(x - m) (f64; NaN when m is not finite, for JavaScript to finish that row).
 */
export function logSoftmaxStats(x: usize, stats: usize, rows: i32, cols: i32): void {
  for (let r = 0; r < rows; r++) {
    const row = x + <usize>r * <usize>cols * 4;
    const st = stats + <usize>r * 16;
    const m = <f64>rowMax(row, cols);
    store<f64>(st, m);
    if (!isFinite<f64>(m)) {
      store<f64>(st, NaN, 8);
      continue;
    }
    const mf = <f32>m;
    const mv = f32x4.splat(mf);
    const zero = f32x4.splat(0);
    let s: f64 = 0;
    let j = 0;
    for (; j + 4 <= cols; j += 4) {
      const e = expF32x4(f32x4.sub(v128.load(row + <usize>j * 4), mv), zero);
      s += <f64>f32x4.extract_lane(e, 0);
      s += <f64>f32x4.extract_lane(e, 1);
      s += <f64>f32x4.extract_lane(e, 2);
      s += <f64>f32x4.extract_lane(e, 3);
    }
    for (; j < cols; j++) s += <f64>f32x4.extract_lane(expF32x4(f32x4.splat(load<f32>(row + <usize>j * 4) - mf), zero), 0);
    store<f64>(st, s, 8);
  }
}

/** Log-softmax pass 2: out[r][j] = x[r][j] - lse[2r] in f64, flushed with its sign, rounded to f32; out may be x. */
export function logSoftmaxApply(x: usize, lse: usize, out: usize, rows: i32, cols: i32): void {
  for (let r = 0; r < rows; r++) {
    const off = <usize>r * <usize>cols * 4;
    const l = f64x2.splat(load<f64>(lse + <usize>r * 16));
    let j = 0;
    for (; j + 2 <= cols; j += 2) {
      const o = off + <usize>j * 4;
      store2Signed(out + o, f64x2.sub(load2(x + o), l));
    }
    if (j < cols) {
      const o = off + <usize>j * 4;
      store1Signed(out + o, f64x2.sub(load1(x + o), l));
    }
  }
}

/**
 * out[r][j] = g[r][j] - e^y[r][j]·Σ_k g[r][k] (log-softmax's backward from its output y) in f64,
 * flushed with its sign, rounded to f32, for rows whose y are all <= 0; flags[r] (i32) = 1 for a row
 * holding a y > 0 or NaN, left untouched for JavaScript, else 0. out may alias g.
 */
export function logSoftmaxBackward(g: usize, y: usize, out: usize, flags: usize, rows: i32, cols: i32): void {
  for (let r = 0; r < rows; r++) {
    const off = <usize>r * <usize>cols * 4;
    const gr = g + off,
      yr = y + off,
      or = out + off;
    let bad = i32x4.splat(0);
    let j = 0;
    for (; j + 4 <= cols; j += 4) {
      const v = v128.load(yr + <usize>j * 4);
      bad = v128.or(bad, v128.or(f32x4.gt(v, f32x4.splat(0)), f32x4.ne(v, v)));
    }
    let isBad = v128.any_true(bad);
    for (; j < cols; j++) {
      const v = load<f32>(yr + <usize>j * 4);
      if (v > 0 || v != v) isBad = true;
    }
    store<i32>(flags + <usize>r * 4, isBad ? 1 : 0);
    if (isBad) continue;
    let s: f64 = 0;
    for (j = 0; j < cols; j++) s += <f64>load<f32>(gr + <usize>j * 4);
    const sv = f64x2.splat(s);
    const zero = f32x4.splat(0);
    for (j = 0; j + 4 <= cols; j += 4) {
      const o = <usize>j * 4;
      const e = expF32x4(v128.load(yr + o), zero);
      const gA = load2(gr + o),
        gB = load2(gr + o + 8);
      store2Signed(or + o, f64x2.sub(gA, f64x2.mul(f64x2.promote_low_f32x4(e), sv)));
      store2Signed(or + o + 8, f64x2.sub(gB, f64x2.mul(promoteHigh(e), sv)));
    }
    for (; j < cols; j++) {
      const o = <usize>j * 4;
      const e = f64x2.promote_low_f32x4(expF32x4(f32x4.splat(load<f32>(yr + o)), zero));
      store1Signed(or + o, f64x2.sub(load1(gr + o), f64x2.mul(e, sv)));
    }
  }
}
