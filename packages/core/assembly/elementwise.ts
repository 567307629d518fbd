import { FLT_MIN, flush32, load2, store2 } from "./lanes";

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
