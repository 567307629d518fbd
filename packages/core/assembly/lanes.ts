// Lane helpers shared by the elementwise and per-step kernels: subnormal flushing, and two (or one)
// float32 values widened to an f64x2 and narrowed back.
//
// Subnormal floats run in microcode on x86 (a matmul over them is ~150x slower), so elementwise and
// optimizer kernels store 0 wherever |value| < FLT_MIN, the test of packages/optim/src/flat/flush.ts.
// NaN is never flushed (every comparison with NaN is false).

export const FLT_MIN: f32 = 1.1754943508222875e-38;
export const FLT_MIN_F64: f64 = 1.1754943508222875e-38;

// Zero in every lane whose |v| < FLT_MIN (NaN lanes compare false and are kept).
@inline export function flush32(v: v128): v128 {
  return v128.andnot(v, f32x4.lt(f32x4.abs(v), f32x4.splat(FLT_MIN)));
}

// Two f32 at ptr promoted to f64x2, and back.
@inline export function load2(ptr: usize): v128 {
  return f64x2.promote_low_f32x4(v128.load64_zero(ptr));
}

@inline export function store2(ptr: usize, v: v128): void {
  v128.store64_lane(ptr, f32x4.demote_f64x2_zero(v), 0);
}

@inline export function load1(ptr: usize): v128 {
  return f64x2.promote_low_f32x4(v128.load32_zero(ptr));
}

@inline export function store1(ptr: usize, v: v128): void {
  v128.store32_lane(ptr, f32x4.demote_f64x2_zero(v), 0);
}
