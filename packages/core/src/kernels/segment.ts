import { currentWasmKernels } from "./wasm/matmul-kernel.js";
import type { WasmKernels } from "./wasm/wasm-kernels.js";

// Typed operations on a segment [start, end) of flat float32 arrays: what a data-parallel rank runs
// on its share of the parameters (sum the ranks' gradient slices, the squared norm of the sum; the
// optimizer update is update-f32.ts). Each runs the WebAssembly SIMD kernel when every array it
// touches lies in the kernels' memory (a trainer's arena carved out of it), and a JavaScript loop
// otherwise. The sum gives the same bits either way (tests check); the squared norm adds in another
// order in the kernel, so its last bits may differ between the two.

/** The kernels that serve `arrays` in place: `kernels` if every array lies in its memory, else null. */
function inPlace(kernels: WasmKernels | null | undefined, arrays: readonly Float32Array[]): WasmKernels | null {
  if (kernels === null || kernels === undefined) return null;
  for (const a of arrays) if (a.buffer !== kernels.buffer) return null;
  return kernels;
}

function checkRange(where: string, arrays: readonly Float32Array[], start: number, end: number): void {
  if (!(Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start <= end)) {
    throw new RangeError(`${where}: range [${start}, ${end}) is not a valid segment`);
  }
  for (const a of arrays) {
    if (a.length < end)
      throw new RangeError(`${where}: range [${start}, ${end}) exceeds an array of length ${a.length}`);
  }
}

/**
 * out[i] = ((slices[0][i] + slices[1][i]) + ...) for i in [start, end), adding in slice order and
 * rounding to float32 after each add, so the result does not depend on the backend. `out` may be
 * `slices[0]`. The kernel serves slices that lie at equal distances in its memory (an arena's
 * gradient slices).
 * @example segmentSum([g0, g1, g2], g0, 0, g0.length) // g0 now holds g0 + g1 + g2
 */
export function segmentSum(
  slices: readonly Float32Array[],
  out: Float32Array,
  start: number,
  end: number,
  kernels: WasmKernels | null = currentWasmKernels() ?? null,
): void {
  const first = slices[0];
  if (first === undefined) throw new RangeError("segmentSum: needs at least one slice");
  checkRange("segmentSum", [...slices, out], start, end);
  const k = inPlace(kernels, [...slices, out]);
  const stride = slices.length > 1 ? slices[1]!.byteOffset - first.byteOffset : 0;
  const evenlySpaced = stride >= 0 && slices.every((s, r) => s.byteOffset === first.byteOffset + r * stride);
  if (k !== null && evenlySpaced) {
    k.exports.sumSlices(first.byteOffset, stride, slices.length, out.byteOffset, start, end);
    return;
  }
  // One pass per slice streams through memory. A float64 sum of two float32 values is exact, so
  // the store's rounding makes each pass an exact float32 add, the same as a per-element loop.
  if (out.buffer !== first.buffer || out.byteOffset !== first.byteOffset) out.set(first.subarray(start, end), start);
  for (let s = 1; s < slices.length; s++) {
    const slice = slices[s]!;
    for (let i = start; i < end; i++) out[i] = out[i]! + slice[i]!;
  }
}

/**
 * Σ x[i]² over [start, end) in float64: one rank's partial of a squared norm.
 * @example const total = Math.sqrt(segmentSumSquares(g, 0, 8) + segmentSumSquares(g, 8, g.length));
 */
export function segmentSumSquares(
  x: Float32Array,
  start: number,
  end: number,
  kernels: WasmKernels | null = currentWasmKernels() ?? null,
): number {
  checkRange("segmentSumSquares", [x], start, end);
  const k = inPlace(kernels, [x]);
  if (k !== null) return k.exports.sumSquares(x.byteOffset, start, end);
  let acc = 0;
  for (let i = start; i < end; i++) acc += x[i]! * x[i]!;
  return acc;
}
