import { FLT_MIN } from "../tensor/dtype.js";
import { currentWasmKernels } from "./wasm/matmul-kernel.js";
import type { WasmKernels } from "./wasm/wasm-kernels.js";

// Typed operations on a segment [start, end) of flat float32 arrays: what a data-parallel rank runs
// on its share of the parameters (sum the ranks' gradient slices, the squared norm of the sum, an
// optimizer update). Each runs the WebAssembly SIMD kernel when every array it touches lies in the
// kernels' memory (a trainer's arena carved out of it), and a JavaScript loop otherwise. The sum,
// Adam and SGD give the same bits either way (tests check); the squared norm adds in another order
// in the kernel, so its last bits may differ between the two.

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

/** The arrays of an Adam update: parameters, gradient, first and second moments. */
export interface AdamSegment {
  params: Float32Array;
  grads: Float32Array;
  m: Float32Array;
  v: Float32Array;
}

/** One Adam or AdamW step's scalars (torch.optim.Adam/AdamW without amsgrad). */
export interface AdamSegmentOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** AdamW: decay the parameters by 1 - lr·weightDecay instead of adding weightDecay·p to the gradient */
  decoupledWeightDecay: boolean;
  maximize: boolean;
}

/**
 * Adam (or AdamW) on params[start, end) in place, at 1-based step `step`:
 *   g = ±grad (+ wd·p for Adam);  p *= 1 - lr·wd for AdamW (before the moments)
 *   m = β1·m + (1-β1)·g;  v = β2·v + (1-β2)·g²   (flushed to 0 below FLT_MIN, then stored)
 *   p -= lr/(1-β1^t) · m / (sqrt(v)·(1/sqrt(1-β2^t)) + eps)
 * In float64 with float32 stores, in the order of @threadgrad/optim's flat Adam: the same bits.
 * @example
 * const o = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, decoupledWeightDecay: false, maximize: false };
 * adamSegmentUpdate({ params, grads, m, v }, 0, params.length, 1, o);
 */
export function adamSegmentUpdate(
  s: AdamSegment,
  start: number,
  end: number,
  step: number,
  o: AdamSegmentOptions,
  kernels: WasmKernels | null = currentWasmKernels() ?? null,
): void {
  const { params, grads, m, v } = s;
  checkRange("adamSegmentUpdate", [params, grads, m, v], start, end);
  const { lr, beta1, beta2, eps, weightDecay } = o;
  const l2 = o.decoupledWeightDecay ? 0 : weightDecay;
  const decay = o.decoupledWeightDecay ? 1 - lr * weightDecay : 1;
  const k = inPlace(kernels, [params, grads, m, v]);
  if (k !== null) {
    const [p, g, mp, vp] = [params, grads, m, v].map((a) => a.byteOffset) as [number, number, number, number];
    const bc1 = 1 - beta1 ** step,
      bc2 = 1 - beta2 ** step;
    k.exports.adamUpdate(p, g, mp, vp, start, end, lr, beta1, beta2, eps, bc1, bc2, l2, decay, o.maximize ? 1 : 0);
    return;
  }
  const stepSize = lr / (1 - beta1 ** step);
  // A product with the reciprocal: one division per element instead of two (the kernel does the same).
  const invBc2Sqrt = 1 / Math.sqrt(1 - beta2 ** step);
  for (let i = start; i < end; i++) {
    let g = o.maximize ? -grads[i]! : grads[i]!;
    let p = params[i]!;
    if (decay !== 1) p *= decay;
    if (l2 !== 0) g += l2 * p;
    let mi = beta1 * m[i]! + (1 - beta1) * g;
    let vi = beta2 * v[i]! + (1 - beta2) * g * g;
    if (Math.abs(mi) < FLT_MIN) mi = 0;
    if (vi < FLT_MIN) vi = 0;
    m[i] = mi;
    v[i] = vi;
    params[i] = p - stepSize * (mi / (Math.sqrt(vi) * invBc2Sqrt + eps));
  }
}

/** The arrays of an SGD update; `momentum` is null without a momentum buffer. */
export interface SgdSegment {
  params: Float32Array;
  grads: Float32Array;
  momentum: Float32Array | null;
}

/** One SGD step's scalars (torch.optim.SGD). */
export interface SgdSegmentOptions {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  maximize: boolean;
}

/**
 * SGD on params[start, end) in place, at 1-based step `step` (the momentum buffer takes the
 * gradient on step 1):
 *   g = ±grad + wd·p;  b = g on step 1, else μ·b + (1-dampening)·g   (flushed below FLT_MIN, stored)
 *   g = nesterov ? g + μ·b : b;  p -= lr·g
 * In float64 with float32 stores, in the order of @threadgrad/optim's flat SGD: the same bits.
 * @example
 * const o = { lr: 0.1, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, maximize: false };
 * sgdSegmentUpdate({ params, grads, momentum: null }, 0, params.length, 1, o);
 */
export function sgdSegmentUpdate(
  s: SgdSegment,
  start: number,
  end: number,
  step: number,
  o: SgdSegmentOptions,
  kernels: WasmKernels | null = currentWasmKernels() ?? null,
): void {
  const { params, grads } = s;
  const buf = o.momentum !== 0 ? s.momentum : null;
  if (o.momentum !== 0 && buf === null)
    throw new Error("sgdSegmentUpdate: momentum is set but no momentum buffer is given");
  const arrays = buf === null ? [params, grads] : [params, grads, buf];
  checkRange("sgdSegmentUpdate", arrays, start, end);
  const { lr, momentum, dampening, weightDecay } = o;
  const first = step === 1;
  const k = inPlace(kernels, arrays);
  if (k !== null) {
    const b = buf === null ? 0 : buf.byteOffset;
    const flags = [o.nesterov, o.maximize, first].map((f) => (f ? 1 : 0)) as [number, number, number];
    k.exports.sgdUpdate(
      params.byteOffset,
      grads.byteOffset,
      b,
      start,
      end,
      lr,
      momentum,
      dampening,
      weightDecay,
      ...flags,
    );
    return;
  }
  for (let i = start; i < end; i++) {
    let g = o.maximize ? -grads[i]! : grads[i]!;
    const p = params[i]!;
    if (weightDecay !== 0) g += weightDecay * p;
    if (buf !== null) {
      let b = first ? g : momentum * buf[i]! + (1 - dampening) * g;
      if (Math.abs(b) < FLT_MIN) b = 0;
      buf[i] = b;
      g = o.nesterov ? g + momentum * b : b;
    }
    params[i] = p - lr * g;
  }
}
