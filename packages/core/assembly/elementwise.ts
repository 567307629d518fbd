import { FLT_MIN, FLT_MIN_F64, flush32, load2, store2 } from "./lanes";

// ---------------------------------------------------------------------------------------------
// Elementwise kernels. Vector loops take 4 floats at a time; the tail reuses the same vector code
// on one float (load32_zero / store32_lane), so each formula is written once. Kernels with an f64
// scalar compute in f64 like the JavaScript they replace (a product of two f32 is exact in f64;
// the sum is rounded once to f64 and once to f32, as `y[i] += alpha * x[i]` does in JS), so both
// backends give the same bits.
// ---------------------------------------------------------------------------------------------

/** c[i][j] += bias[j] for an m×n row-major c (the bias row broadcast over rows), flushed. */
export function addBias(cPtr: usize, biasPtr: usize, m: i32, n: i32): void {
  for (let i = 0; i < m; i++) {
    const row = cPtr + <usize>i * <usize>n * 4;
    let j = 0;
    for (; j + 4 <= n; j += 4) {
      const off = <usize>j * 4;
      v128.store(row + off, flush32(f32x4.add(v128.load(row + off), v128.load(biasPtr + off))));
    }
    for (; j < n; j++) {
      const off = <usize>j * 4;
      v128.store32_lane(row + off, flush32(f32x4.add(v128.load32_zero(row + off), v128.load32_zero(biasPtr + off))), 0);
    }
  }
}

// relu with flushing: x < FLT_MIN covers x <= 0 and the positive subnormals; NaN passes through,
// as in the JavaScript kernel (`x <= 0 ? 0 : x`).
@inline function relu4(x: v128): v128 {
  return v128.andnot(x, f32x4.lt(x, f32x4.splat(FLT_MIN)));
}

/** out[i] = max(x[i], 0), subnormal results flushed; out may be x. */
export function reluForward(x: usize, out: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const off = <usize>i * 4;
    v128.store(out + off, relu4(v128.load(x + off)));
  }
  for (; i < n; i++) {
    const off = <usize>i * 4;
    v128.store32_lane(out + off, relu4(v128.load32_zero(x + off)), 0);
  }
}

@inline function reluGrad4(g: v128, x: v128): v128 {
  return v128.and(flush32(g), f32x4.gt(x, f32x4.splat(0)));
}

/** out[i] = x[i] > 0 ? g[i] : 0, subnormal g flushed; out may be g or x. */
export function reluBackward(g: usize, x: usize, out: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const off = <usize>i * 4;
    v128.store(out + off, reluGrad4(v128.load(g + off), v128.load(x + off)));
  }
  for (; i < n; i++) {
    const off = <usize>i * 4;
    v128.store32_lane(out + off, reluGrad4(v128.load32_zero(g + off), v128.load32_zero(x + off)), 0);
  }
}

// ---------------------------------------------------------------------------------------------
// Column sums: out[j] = Σ_i x[i][j] over an m×n row-major x, accumulated in f64 in row order and
// rounded to f32 once, as the JavaScript reduction (`sum(x, 0)`, a bias gradient) does: the same
// bits. Not flushed, like every reduction.
// ---------------------------------------------------------------------------------------------

/** out[j] = f32(Σ_i x[i·n + j]) for j < n, summed in f64 in row order; out must not overlap x. */
export function sumRows(x: usize, out: usize, m: i32, n: i32): void {
  const stride = <usize>n * 4;
  let j = 0;
  // 16 columns (one cache line of each row) per pass over the rows: each line is read once.
  for (; j + 16 <= n; j += 16) {
    let a0 = f64x2.splat(0), a1 = f64x2.splat(0), a2 = f64x2.splat(0), a3 = f64x2.splat(0);
    let a4 = f64x2.splat(0), a5 = f64x2.splat(0), a6 = f64x2.splat(0), a7 = f64x2.splat(0);
    let p = x + <usize>j * 4;
    for (let i = 0; i < m; i++) {
      a0 = f64x2.add(a0, load2(p));
      a1 = f64x2.add(a1, load2(p + 8));
      a2 = f64x2.add(a2, load2(p + 16));
      a3 = f64x2.add(a3, load2(p + 24));
      a4 = f64x2.add(a4, load2(p + 32));
      a5 = f64x2.add(a5, load2(p + 40));
      a6 = f64x2.add(a6, load2(p + 48));
      a7 = f64x2.add(a7, load2(p + 56));
      p += stride;
    }
    const o = out + <usize>j * 4;
    store2(o, a0);
    store2(o + 8, a1);
    store2(o + 16, a2);
    store2(o + 24, a3);
    store2(o + 32, a4);
    store2(o + 40, a5);
    store2(o + 48, a6);
    store2(o + 56, a7);
  }
  for (; j + 4 <= n; j += 4) {
    let a0 = f64x2.splat(0), a1 = f64x2.splat(0);
    let p = x + <usize>j * 4;
    for (let i = 0; i < m; i++) {
      a0 = f64x2.add(a0, load2(p));
      a1 = f64x2.add(a1, load2(p + 8));
      p += stride;
    }
    store2(out + <usize>j * 4, a0);
    store2(out + <usize>j * 4 + 8, a1);
  }
  for (; j < n; j++) {
    let a: f64 = 0;
    let p = x + <usize>j * 4;
    for (let i = 0; i < m; i++) {
      a += <f64>load<f32>(p);
      p += stride;
    }
    store<f32>(out + <usize>j * 4, <f32>a);
  }
}

// ---------------------------------------------------------------------------------------------
// add, sub and mul over float32 with the broadcasts of a layer's step (same shape, one row over
// every row, a scalar), flushed as the JavaScript elementwise kernels flush: |r| < FLT_MIN is
// stored as a zero of r's sign. Bits equal the JavaScript kernels', which compute x op y in f64
// and round once to f32. For add and sub the f32 result is that rounding (f64 holds the exact sum
// of two f32 or rounds it once, and 53 >= 2·24 + 2 makes the double rounding harmless), and a sum
// below FLT_MIN is exact in both. For mul, f64 holds the exact product, so JavaScript flushes
// where |x·y| < FLT_MIN before rounding: a product that rounds up to exactly FLT_MIN in f32 is
// flushed there, which the f32 lanes tell apart by recomputing such products in f64.
// ---------------------------------------------------------------------------------------------

const SIGN_MASK: i32 = i32.MIN_VALUE;
const OP_ADD: i32 = 0;
const OP_SUB: i32 = 1;
// Operand layouts: a full m×n array, one row of n broadcast over the rows, one scalar.
const FULL: i32 = 0;
const ROW: i32 = 1;

// Zero of the lane's sign where `tiny` is set.
@inline function zeroWhere(v: v128, tiny: v128): v128 {
  return v128.andnot(v, v128.andnot(tiny, i32x4.splat(SIGN_MASK)));
}

@inline function tinyMask(v: v128): v128 {
  return f32x4.lt(f32x4.abs(v), f32x4.splat(FLT_MIN));
}

// Lanes whose exact product (f64) lies below FLT_MIN.
function exactTiny(x: v128, y: v128): v128 {
  const lo = f64x2.lt(f64x2.abs(f64x2.mul(f64x2.promote_low_f32x4(x), f64x2.promote_low_f32x4(y))), f64x2.splat(FLT_MIN_F64));
  const xh = i32x4.shuffle(x, x, 2, 3, 2, 3);
  const yh = i32x4.shuffle(y, y, 2, 3, 2, 3);
  const hi = f64x2.lt(f64x2.abs(f64x2.mul(f64x2.promote_low_f32x4(xh), f64x2.promote_low_f32x4(yh))), f64x2.splat(FLT_MIN_F64));
  return i32x4.shuffle(lo, hi, 0, 2, 4, 6);
}

@inline function apply4(op: i32, x: v128, y: v128): v128 {
  if (op == OP_ADD) {
    const r = f32x4.add(x, y);
    return zeroWhere(r, tinyMask(r));
  }
  if (op == OP_SUB) {
    const r = f32x4.sub(x, y);
    return zeroWhere(r, tinyMask(r));
  }
  const r = f32x4.mul(x, y);
  let tiny = tinyMask(r);
  const edge = f32x4.eq(f32x4.abs(r), f32x4.splat(FLT_MIN));
  if (v128.any_true(edge)) tiny = v128.or(tiny, v128.and(edge, exactTiny(x, y)));
  return zeroWhere(r, tiny);
}

@inline function loadAt(p: usize, mode: i32): v128 {
  return mode == FULL || mode == ROW ? v128.load(p) : v128.load32_splat(p);
}

/**
 * out = a op b over m rows of n floats, op 0 add, 1 sub, 2 mul; aMode/bMode 0: m×n, 1: one row of
 * n for every row, 2: one scalar. Flushed with the sign kept: the bits of the JavaScript kernels.
 * out may be a or b when that one is m×n.
 */
export function binaryF32(op: i32, a: usize, aMode: i32, b: usize, bMode: i32, out: usize, m: i32, n: i32): void {
  const rowBytes = <usize>n * 4;
  const aStep: usize = aMode == FULL ? rowBytes : 0;
  const bStep: usize = bMode == FULL ? rowBytes : 0;
  const aCol: usize = aMode == FULL || aMode == ROW ? 16 : 0;
  const bCol: usize = bMode == FULL || bMode == ROW ? 16 : 0;
  let ar = a,
    br = b,
    o = out;
  for (let i = 0; i < m; i++) {
    let pa = ar,
      pb = br,
      j = 0;
    for (; j + 4 <= n; j += 4) {
      v128.store(o + <usize>j * 4, apply4(op, loadAt(pa, aMode), loadAt(pb, bMode)));
      pa += aCol;
      pb += bCol;
    }
    for (; j < n; j++) {
      const x = v128.load32_zero(pa);
      const y = v128.load32_zero(pb);
      v128.store32_lane(o + <usize>j * 4, apply4(op, x, y), 0);
      pa += aCol >> 2;
      pb += bCol >> 2;
    }
    ar += aStep;
    br += bStep;
    o += rowBytes;
  }
}
