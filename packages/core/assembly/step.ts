import { load2 } from "./lanes";

// ---------------------------------------------------------------------------------------------
// All-reduce sum: out[i] = ((s0[i] + s1[i]) + s2[i]) + ... in rank order, slice r at
// basePtr + r·strideBytes, elements [start, end). Adding f32 in f32 gives the same bits as the
// JavaScript reference (an f64 sum of two f32 rounded to f32 is the correctly rounded f32 sum). One
// pass reads every slice once. out may be slice 0. No flushing: the sums feed the optimizer (which
// flushes its state), not a matmul, and the bits stay equal to workers' reduceSlices.
// ---------------------------------------------------------------------------------------------

/**
 * out[i] = sum over r < ranks, in rank order, of slice r at basePtr + r·strideBytes, i in [start, end);
 * outPtr may be slice 0.
 */
export function sumSlices(basePtr: usize, strideBytes: usize, ranks: i32, outPtr: usize, start: i32, end: i32): void {
  let i = start;
  for (; i + 4 <= end; i += 4) {
    const off = <usize>i * 4;
    let acc = f32x4.splat(0);
    if (ranks > 0) acc = v128.load(basePtr + off);
    for (let r = 1; r < ranks; r++) acc = f32x4.add(acc, v128.load(basePtr + <usize>r * strideBytes + off));
    v128.store(outPtr + off, acc);
  }
  for (; i < end; i++) {
    const off = <usize>i * 4;
    let acc: f32 = 0;
    if (ranks > 0) acc = load<f32>(basePtr + off);
    for (let r = 1; r < ranks; r++) acc += load<f32>(basePtr + <usize>r * strideBytes + off);
    store<f32>(outPtr + off, acc);
  }
}

/**
 * Σ g[i]² over [start, end) in f64 (two f64x2 accumulators over widened pairs): the partial squared
 * norm each rank contributes to the global gradient norm. Sums in another order than a sequential
 * JavaScript loop, so the last bits may differ from it.
 */
export function sumSquares(ptr: usize, start: i32, end: i32): f64 {
  let a0 = f64x2.splat(0), a1 = f64x2.splat(0);
  let i = start;
  for (; i + 4 <= end; i += 4) {
    const off = ptr + <usize>i * 4;
    const lo = load2(off), hi = load2(off + 8);
    a0 = f64x2.add(a0, f64x2.mul(lo, lo));
    a1 = f64x2.add(a1, f64x2.mul(hi, hi));
  }
  const s = f64x2.add(a0, a1);
  let total = f64x2.extract_lane(s, 0) + f64x2.extract_lane(s, 1);
  for (; i < end; i++) {
    const v = <f64>load<f32>(ptr + <usize>i * 4);
    total += v * v;
  }
  return total;
}
