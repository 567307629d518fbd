import { flushSigned32 } from "./activation-math";
import { load1, load2 } from "./lanes";

// ---------------------------------------------------------------------------------------------
// LayerNorm's normalization over the last n floats of each row, forward and backward (the affine
// weight and bias stay elementwise ops); JavaScript twins with the same bits in
// src/kernels/layer-norm.ts. In f64, two lanes (even and odd columns, added at the end, then an
// odd last column) for every row sum:
//   mean μ = Σx/n, var = Σ(x - μ)²/n (biased, two passes), r = 1/√(var + eps), x̂ = (x - μ)·r
//   forward: out = x̂ rounded to f32;  backward: dx = r·(g - mean(g) - x̂·mean(g·x̂)) rounded to f32
// Results below FLT_MIN are stored as a zero of the same sign.
// ---------------------------------------------------------------------------------------------

@inline function lanesSum(acc: v128): f64 {
  return f64x2.extract_lane(acc, 0) + f64x2.extract_lane(acc, 1);
}

// Σ x over the row.
@inline function rowSum(x: usize, n: i32): f64 {
  let acc = f64x2.splat(0);
  let j = 0;
  for (; j + 2 <= n; j += 2) acc = f64x2.add(acc, load2(x + <usize>j * 4));
  let s = lanesSum(acc);
  if (j < n) s += <f64>load<f32>(x + <usize>j * 4);
  return s;
}

// 1/√(Σ(x - μ)²/n + eps)
@inline function rowRstd(x: usize, n: i32, mu: f64, eps: f64): f64 {
  const m = f64x2.splat(mu);
  let acc = f64x2.splat(0);
  let j = 0;
  for (; j + 2 <= n; j += 2) {
    const c = f64x2.sub(load2(x + <usize>j * 4), m);
    acc = f64x2.add(acc, f64x2.mul(c, c));
  }
  let s = lanesSum(acc);
  if (j < n) {
    const c = <f64>load<f32>(x + <usize>j * 4) - mu;
    s += c * c;
  }
  return 1 / Math.sqrt(s / <f64>n + eps);
}

@inline function store2(ptr: usize, v: v128): void {
  v128.store64_lane(ptr, flushSigned32(f32x4.demote_f64x2_zero(v)), 0);
}

@inline function store1(ptr: usize, v: v128): void {
  v128.store32_lane(ptr, flushSigned32(f32x4.demote_f64x2_zero(v)), 0);
}

/** out = (x - μ)/√(var + eps) per row of n floats (rows × n row-major, biased variance), in f64, rounded to f32; out may be x. */
export function layerNormForward(x: usize, out: usize, rows: i32, n: i32, eps: f64): void {
  for (let r = 0; r < rows; r++) {
    const off = <usize>r * <usize>n * 4;
    const xr = x + off,
      or = out + off;
    const mu = rowSum(xr, n) / <f64>n;
    const m = f64x2.splat(mu),
      rs = f64x2.splat(rowRstd(xr, n, mu, eps));
    let j = 0;
    for (; j + 2 <= n; j += 2) store2(or + <usize>j * 4, f64x2.mul(f64x2.sub(load2(xr + <usize>j * 4), m), rs));
    if (j < n) store1(or + <usize>j * 4, f64x2.mul(f64x2.sub(load1(xr + <usize>j * 4), m), rs));
  }
}

/** out = r·(g - mean(g) - xh·mean(g·xh)), xh = (x - μ)·r, per row of n floats: the backward from x; out may alias g. */
export function layerNormBackward(g: usize, x: usize, out: usize, rows: i32, n: i32, eps: f64): void {
  for (let r = 0; r < rows; r++) {
    const off = <usize>r * <usize>n * 4;
    const xr = x + off,
      gr = g + off,
      or = out + off;
    const mu = rowSum(xr, n) / <f64>n;
    const rstd = rowRstd(xr, n, mu, eps);
    const m = f64x2.splat(mu),
      rs = f64x2.splat(rstd);
    let acc = f64x2.splat(0);
    let j = 0;
    for (; j + 2 <= n; j += 2) {
      const xh = f64x2.mul(f64x2.sub(load2(xr + <usize>j * 4), m), rs);
      acc = f64x2.add(acc, f64x2.mul(load2(gr + <usize>j * 4), xh));
    }
    let gx = lanesSum(acc);
    if (j < n) gx += <f64>load<f32>(gr + <usize>j * 4) * ((<f64>load<f32>(xr + <usize>j * 4) - mu) * rstd);
    const gMean = f64x2.splat(rowSum(gr, n) / <f64>n),
      a = f64x2.splat(gx / <f64>n);
    for (j = 0; j + 2 <= n; j += 2) {
      const o = <usize>j * 4;
      const xh = f64x2.mul(f64x2.sub(load2(xr + o), m), rs);
      store2(or + o, f64x2.mul(rs, f64x2.sub(f64x2.sub(load2(gr + o), gMean), f64x2.mul(xh, a))));
    }
    if (j < n) {
      const o = <usize>j * 4;
      const xh = f64x2.mul(f64x2.sub(load1(xr + o), m), rs);
      store1(or + o, f64x2.mul(rs, f64x2.sub(f64x2.sub(load1(gr + o), gMean), f64x2.mul(xh, a))));
    }
  }
}
