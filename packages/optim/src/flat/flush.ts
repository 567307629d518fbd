/**
 * FLT_MIN, the smallest positive normal float32 (one constant, from core). Optimizer state stored
 * in float32 is flushed to zero below it.
 *
 * Why: moments and momentum buffers decay geometrically towards zero and would otherwise fill with
 * subnormal floats, which x86 handles in microcode (tens of times slower per operation). The test is
 * on the float64 value about to be stored: `if (Math.abs(x) < FLT_MIN) x = 0`. Any other backend
 * that updates the same shared state (the WebAssembly kernels) must apply the identical test so that
 * all backends keep producing the same bits.
 */
export { FLT_MIN } from "@threadgrad/core";

/** True when stores into `a` must be flushed (float32 state); float64 state is left as computed. */
export const needsFlush = (a: Float32Array | Float64Array): boolean => a instanceof Float32Array;
