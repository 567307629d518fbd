import type { TypedArray } from "../tensor/dtype.js";
import { stridesOf } from "../tensor/shape.js";
import { erf } from "./special.js";

/**
 * Elementwise kernels are generated from an expression once per (expression, dtype), so that every
 * generated loop only ever sees one typed-array class and stays monomorphic in V8: a single loop fed
 * both Float32Array and Float64Array slows down several-fold.
 *
 * Broadcasting is expressed with strides: an operand's stride is 0 along a broadcast dimension, and
 * the innermost dimension runs as a tight loop. `aStrides === null` means "same shape as out".
 */
export type BinaryKernel = (
  a: TypedArray,
  b: TypedArray,
  out: TypedArray,
  outShape: readonly number[],
  aStrides: readonly number[] | null,
  bStrides: readonly number[] | null,
) => void;
/** `p0`, `p1`: numeric parameters the expression may use (clamp bounds, softplus beta), so one
 * compiled kernel serves every value instead of one kernel per constant. */
export type UnaryKernel = (a: TypedArray, out: TypedArray, p0?: number, p1?: number) => void;

const binaryCache = new Map<string, BinaryKernel>();
const unaryCache = new Map<string, UnaryKernel>();

// float32 results with |r| < FLT_MIN are stored as zero of the same sign: subnormals make x86 float
// math tens of times slower (a matmul over them ~150x), and nothing flushes them in hardware here.
// float64 (gradcheck) and integer results are stored as computed.
const FLT_MIN = 1.1754943508222875e-38;

function storeOf(dtype: string): (target: string, expr: string) => string {
  if (!dtype.endsWith("->float32")) return (target, expr) => `${target} = ${expr};`;
  // One Math.abs compare: two comparisons (r > -m && r < m) made V8's loop 4x slower on a mul.
  return (target, expr) => `{ const r = ${expr}; ${target} = Math.abs(r) < ${FLT_MIN} ? r * 0 : r; }`;
}

function binarySource(expr: string, store: (target: string, expr: string) => string): string {
  return `
  const n = out.length;
  if (aStrides === null && bStrides === null) {
    for (let i = 0; i < n; i++) { const x = a[i], y = b[i]; ${store("out[i]", expr)} }
    return;
  }
  if (aStrides === null && b.length === 1) {
    const y = b[0];
    for (let i = 0; i < n; i++) { const x = a[i]; ${store("out[i]", expr)} }
    return;
  }
  if (bStrides === null && a.length === 1) {
    const x = a[0];
    for (let i = 0; i < n; i++) { const y = b[i]; ${store("out[i]", expr)} }
    return;
  }
  const nd = outShape.length;
  if (n === 0) return;
  if (nd === 0) { const x = a[0], y = b[0]; ${store("out[0]", expr)} return; }
  const as = aStrides === null ? contiguousStrides(outShape) : aStrides;
  const bs = bStrides === null ? contiguousStrides(outShape) : bStrides;
  const inner = outShape[nd - 1], sa = as[nd - 1], sb = bs[nd - 1];
  const idx = new Int32Array(nd);
  let ia = 0, ib = 0;
  for (let o = 0; o < n; o += inner) {
    for (let j = 0; j < inner; j++) { const x = a[ia + j * sa], y = b[ib + j * sb]; ${store("out[o + j]", expr)} }
    for (let d = nd - 2; d >= 0; d--) {
      idx[d]++; ia += as[d]; ib += bs[d];
      if (idx[d] < outShape[d]) break;
      ia -= as[d] * outShape[d]; ib -= bs[d] * outShape[d]; idx[d] = 0;
    }
  }`;
}

/**
 * Kernel computing `out = expr(x, y)` with broadcasting; `expr` is JavaScript over `x` and `y`.
 * `dtype` is `"<in>-><out>"`; float32 outputs are flushed (see storeOf).
 */
export function binaryKernel(expr: string, dtype: string): BinaryKernel {
  const key = `${dtype}:${expr}`;
  let k = binaryCache.get(key);
  if (k === undefined) {
    const make = new Function(
      "contiguousStrides",
      `return function binary(a, b, out, outShape, aStrides, bStrides) {${binarySource(expr, storeOf(dtype))}\n}`,
    );
    k = make(stridesOf) as BinaryKernel;
    binaryCache.set(key, k);
  }
  return k;
}

/** Kernel computing `out[i] = expr(x)` with `x = a[i]`. */
export function unaryKernel(expr: string, dtype: string): UnaryKernel {
  const key = `${dtype}:${expr}`;
  let k = unaryCache.get(key);
  if (k === undefined) {
    k = new Function(
      "erf",
      "return function unary(a, out, p0, p1) { const n = out.length; " +
        `for (let i = 0; i < n; i++) { const x = a[i]; ${storeOf(dtype)("out[i]", expr)} } }`,
    )(erf) as UnaryKernel;
    unaryCache.set(key, k);
  }
  return k;
}

/** Converts between element types (bool as 0/1, float to int truncates toward zero as in PyTorch). */
export function castInto(src: TypedArray, dst: TypedArray): void {
  if (dst instanceof Int32Array && !(src instanceof Int32Array) && !(src instanceof Uint8Array)) {
    for (let i = 0; i < src.length; i++) dst[i] = Math.trunc(src[i]!);
  } else if (dst instanceof Uint8Array && !(src instanceof Uint8Array)) {
    for (let i = 0; i < src.length; i++) dst[i] = src[i] !== 0 ? 1 : 0;
  } else {
    dst.set(src);
  }
}

export type StridedCopyKernel = (
  src: TypedArray,
  srcOffset: number,
  dst: TypedArray,
  shape: readonly number[],
  srcStrides: readonly number[],
) => void;
const copyCache = new Map<string, StridedCopyKernel>();

/** Copies a strided view of `src` (any strides, 0 for broadcast) into contiguous `dst` of `shape`. */
export function stridedCopyKernel(dtype: string): StridedCopyKernel {
  let k = copyCache.get(dtype);
  if (k === undefined) {
    k = new Function(`return function stridedCopy(src, off, dst, shape, ss) {
      const n = dst.length, nd = shape.length;
      if (n === 0) return;
      if (nd === 0) { dst[0] = src[off]; return; }
      const inner = shape[nd - 1], si = ss[nd - 1];
      const idx = new Int32Array(nd);
      let is = off;
      for (let o = 0; o < n; o += inner) {
        if (si === 1) { for (let j = 0; j < inner; j++) dst[o + j] = src[is + j]; }
        else { for (let j = 0; j < inner; j++) dst[o + j] = src[is + j * si]; }
        for (let d = nd - 2; d >= 0; d--) {
          idx[d]++; is += ss[d];
          if (idx[d] < shape[d]) break;
          is -= ss[d] * shape[d]; idx[d] = 0;
        }
      }
    }`)() as StridedCopyKernel;
    copyCache.set(dtype, k);
  }
  return k;
}
