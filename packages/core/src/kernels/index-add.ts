// The embedding's gradient: rows of a float32 source added into rows of out at int32 row numbers,
// by the SIMD kernel of assembly/index-add.ts when out and the source lie in this thread's
// WebAssembly memory (the index is copied into scratch when it does not). Same bits as the
// JavaScript loop in ops/indexing.ts (each sum rounded to float32 in the same order).

import type { FloatArray } from "../tensor/dtype.js";
import { wasmInPlace } from "./dispatch.js";

/**
 * out[index[j]·inner + i] += src[j·inner + i] by the SIMD kernel; returns false, doing nothing, when
 * the operands do not lie in wasm memory (the caller runs its own loop). Indices must be checked.
 */
export function indexAddRowsInWasm(
  out: FloatArray,
  src: FloatArray,
  index: Int32Array,
  n: number,
  inner: number,
): boolean {
  const k = wasmInPlace(out, src);
  if (k === null) return false;
  if (k.contains(index)) {
    k.exports.indexAddRows(out.byteOffset, src.byteOffset, index.byteOffset, n, inner);
    return true;
  }
  const mark = k.scratchMark();
  try {
    const ptr = k.scratchAlloc(Math.max(n, 1) * 4, 16);
    new Int32Array(k.buffer, ptr, n).set(index.subarray(0, n));
    k.exports.indexAddRows(out.byteOffset, src.byteOffset, ptr, n, inner);
  } finally {
    k.scratchReset(mark);
  }
  return true;
}
