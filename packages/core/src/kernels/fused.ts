// Float32 kernels of the MLP hot path (relu forward and backward, bias add, column sums) with one
// contract in both backends: results with |v| < FLT_MIN are stored as 0 (subnormals make x86 float
// math tens of times slower), NaN passes through. When every operand lies in this thread's
// WebAssembly memory (inside the trainer's step region) the SIMD kernels run on them in place;
// otherwise the JavaScript loops below give the same bits. float64 arrays take the JavaScript
// loops unflushed.

import { FLT_MIN, type FloatArray } from "../tensor/dtype.js";
import { wasmInPlace, wasmServes } from "./dispatch.js";
import { currentWasmKernels } from "./wasm/matmul-kernel.js";

/** out = max(x, 0). */
export function reluForward(x: FloatArray, out: FloatArray): void {
  const k = wasmInPlace(x, out);
  if (k !== null) {
    k.exports.reluForward(x.byteOffset, out.byteOffset, x.length);
    return;
  }
  if (x instanceof Float32Array) {
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      out[i] = v < FLT_MIN ? 0 : v;
    }
  } else {
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      out[i] = Math.max(v, 0);
    }
  }
}

/** out = x > 0 ? g : 0. */
export function reluBackward(g: FloatArray, x: FloatArray, out: FloatArray): void {
  const k = wasmInPlace(g, x, out);
  if (k !== null) {
    k.exports.reluBackward(g.byteOffset, x.byteOffset, out.byteOffset, g.length);
    return;
  }
  if (g instanceof Float32Array) {
    for (let i = 0; i < g.length; i++) {
      const v = g[i]!;
      out[i] = x[i]! > 0 && !(Math.abs(v) < FLT_MIN) ? v : 0;
    }
  } else {
    for (let i = 0; i < g.length; i++) out[i] = x[i]! > 0 ? g[i]! : 0;
  }
}

/** c[i][j] += bias[j] for row-major c of m rows and n columns, in place. */
export function addBias(c: FloatArray, bias: FloatArray, m: number, n: number): void {
  const k = wasmInPlace(c, bias);
  if (k !== null) {
    k.exports.addBias(c.byteOffset, bias.byteOffset, m, n);
    return;
  }
  if (c instanceof Float32Array) {
    for (let i = 0; i < m; i++) {
      const row = i * n;
      for (let j = 0; j < n; j++) {
        const v = Math.fround(c[row + j]! + bias[j]!);
        c[row + j] = Math.abs(v) < FLT_MIN ? 0 : v;
      }
    }
  } else {
    for (let i = 0; i < m; i++) {
      const row = i * n;
      for (let j = 0; j < n; j++) c[row + j] = c[row + j]! + bias[j]!;
    }
  }
}

/**
 * out[j] = Σ_i x[i·n + j] (float32, summed in float64 in row order, rounded once: the bits of the
 * JavaScript reduction) by the SIMD kernel when x lies in this thread's wasm memory (out elsewhere
 * goes through scratch); returns false, doing nothing, otherwise (the caller runs the general reduction).
 */
export function sumRowsInWasm(x: FloatArray, out: FloatArray, m: number, n: number): boolean {
  const k = wasmInPlace(x, x);
  if (k === null || !(out instanceof Float32Array)) return false;
  if (k.contains(out)) {
    k.exports.sumRows(x.byteOffset, out.byteOffset, m, n);
    return true;
  }
  // A small output (a bias gradient under the step region's 1 KiB) sits on the heap: sum into scratch.
  if (out.byteLength + 16 > k.scratchFree()) return false;
  const mark = k.scratchMark();
  try {
    const at = k.scratchAlloc(out.byteLength, 16);
    k.exports.sumRows(x.byteOffset, at, m, n);
    out.set(k.f32(at, n));
  } finally {
    k.scratchReset(mark);
  }
  return true;
}

/** How binaryInWasm reads an operand: an m×n array, one row of n for every row, or one scalar. */
export type BinaryLayout = "full" | "row" | "scalar";
const LAYOUT = { full: 0, row: 1, scalar: 2 } as const;
const BINARY_OP = { add: 0, sub: 1, mul: 2 } as const;

/** Below this many output elements, heap operands stay with the JavaScript kernel (the copies cost more). */
const STAGE_MIN = 2048;

/**
 * out = a op b (op add, sub or mul; out m×n float32) by the SIMD kernel when out and every m×n
 * operand lie in this thread's wasm memory, a row or scalar operand elsewhere being copied into
 * scratch for the call; or, for an out on the JavaScript heap (the object API) of at least
 * STAGE_MIN elements, with every operand and out copied through scratch. Returns false, doing
 * nothing, otherwise (the caller runs the JavaScript kernel, whose bits the SIMD one gives,
 * flushing included).
 */
export function binaryInWasm(
  op: keyof typeof BINARY_OP,
  a: Float32Array,
  aLayout: BinaryLayout,
  b: Float32Array,
  bLayout: BinaryLayout,
  out: Float32Array,
  m: number,
  n: number,
): boolean {
  const k = wasmServes("float32") ? currentWasmKernels() : undefined;
  if (k === undefined) return false;
  const staged = !k.contains(out);
  if (staged && out.length < STAGE_MIN) return false;
  if (!staged && ((aLayout === "full" && !k.contains(a)) || (bLayout === "full" && !k.contains(b)))) return false;
  const mark = k.scratchMark();
  const place = (x: Float32Array): number => {
    if (k.contains(x)) return x.byteOffset;
    const at = k.scratchAlloc(x.byteLength, 16);
    k.f32(at, x.length).set(x);
    return at;
  };
  try {
    if (a.byteLength + b.byteLength + (staged ? out.byteLength : 0) + 48 > k.scratchFree()) return false;
    const ap = place(a),
      bp = place(b);
    const outAt = staged ? k.scratchAlloc(out.byteLength, 16) : out.byteOffset;
    k.exports.binaryF32(BINARY_OP[op], ap, LAYOUT[aLayout], bp, LAYOUT[bLayout], outAt, m, n);
    if (staged) out.set(k.f32(outAt, out.length));
    return true;
  } finally {
    k.scratchReset(mark);
  }
}
