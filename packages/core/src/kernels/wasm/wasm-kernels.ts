import { instantiateKernels, newSharedMemory, type KernelExports, type WasmMemory } from "./loader.js";
import { nativeBlas } from "../blas.js";

const PAGE_BYTES = 65536;
const DEFAULT_SCRATCH_BYTES = 64 << 20;
// Byte 0 is never handed out, so offset 0 can mean "none" to callers that want it.
const RESERVED_BYTES = 64;

/** A byte range of the memory. */
export interface Region {
  byteOffset: number;
  byteLength: number;
}

export interface WasmKernelsOptions {
  /**
   * an existing shared memory (another thread's layout): then `scratch` is required and the heap
   * is empty unless `heap` is given. Default: a new memory, laid out as heap then scratch.
   */
  memory?: WasmMemory;
  /** size of a new memory in 64 KiB pages; default: what heapBytes + scratchBytes need */
  pages?: number;
  /** long-lived bytes for a new memory when `pages` is not given; default 0 */
  heapBytes?: number;
  /** size of the scratch region when `scratch` is not given; default 64 MiB */
  scratchBytes?: number;
  /** where alloc() hands out long-lived regions; default (new memory): from byte 64 to the scratch */
  heap?: Region;
  /**
   * per-step scratch of THIS thread; default (new memory): its last scratchBytes. Threads sharing
   * one memory each pass their own region, carved with alloc() by the thread that made the memory.
   */
  scratch?: Region;
}

/**
 * Float32 WebAssembly SIMD kernels on one shared memory, with a fixed layout carved at start-up: a
 * heap of long-lived regions (alloc) and a per-step scratch stack (scratchAlloc, scratchMark,
 * scratchReset). The memory never grows: growing would leave every existing typed-array view at
 * its old length. Operands are passed to `exports` as byte offsets; `matmulF32` also takes arrays
 * that lie outside the memory and copies them through scratch.
 * @example
 * const k = createWasmKernels({ heapBytes: 1 << 20 });
 * const a = k.allocF32(6), b = k.allocF32(6), c = k.allocF32(4);
 * k.matmulF32(a, b, c, 2, 3, 2);
 */
export class WasmKernels {
  readonly memory: WasmMemory;
  /** memory.buffer, fixed for the life of this object (the memory never grows) */
  readonly buffer: SharedArrayBuffer;
  readonly exports: KernelExports;
  readonly heap: Region;
  readonly scratch: Region;
  private heapTop: number;
  private scratchTop: number;
  private readonly all: Float32Array;

  constructor(memory: WasmMemory, heap: Region, scratch: Region) {
    this.memory = memory;
    this.buffer = memory.buffer as SharedArrayBuffer;
    this.exports = instantiateKernels(memory);
    this.all = new Float32Array(this.buffer);
    for (const [name, r] of [
      ["heap", heap],
      ["scratch", scratch],
    ] as const) {
      if (r.byteOffset < 0 || r.byteLength < 0 || r.byteOffset + r.byteLength > this.buffer.byteLength) {
        throw new RangeError(
          `WasmKernels: ${name} [${r.byteOffset}, +${r.byteLength}) lies outside the memory ` +
            `(${this.buffer.byteLength} bytes)`,
        );
      }
    }
    if (
      heap.byteLength > 0 &&
      scratch.byteLength > 0 &&
      heap.byteOffset < scratch.byteOffset + scratch.byteLength &&
      scratch.byteOffset < heap.byteOffset + heap.byteLength
    ) {
      throw new RangeError("WasmKernels: the heap and scratch regions overlap");
    }
    this.heap = { ...heap };
    this.scratch = { ...scratch };
    this.heapTop = heap.byteOffset;
    this.scratchTop = scratch.byteOffset;
  }

  /** Reserves `bytes` of the heap for the life of the memory; returns the byte offset. */
  alloc(bytes: number, align = 64): number {
    const offset = alignUp(this.heapTop, align);
    if (offset + bytes > this.heap.byteOffset + this.heap.byteLength) {
      throw new RangeError(
        `WasmKernels.alloc: ${bytes} bytes do not fit; ` +
          `${this.heap.byteOffset + this.heap.byteLength - offset} of the heap left`,
      );
    }
    this.heapTop = offset + bytes;
    return offset;
  }

  /** A zeroed Float32Array of `length` floats in the heap. */
  allocF32(length: number): Float32Array {
    return this.f32(this.alloc(length * 4), length);
  }

  /** A Float32Array view of `length` floats at `byteOffset` of the memory. */
  f32(byteOffset: number, length: number): Float32Array {
    return new Float32Array(this.buffer, byteOffset, length);
  }

  /** Takes `bytes` of this thread's scratch; released by scratchReset. */
  scratchAlloc(bytes: number, align = 64): number {
    const offset = alignUp(this.scratchTop, align);
    if (offset + bytes > this.scratch.byteOffset + this.scratch.byteLength) {
      throw new RangeError(
        `WasmKernels.scratchAlloc: ${bytes} bytes do not fit; ${this.scratchFree()} of the scratch left`,
      );
    }
    this.scratchTop = offset + bytes;
    return offset;
  }

  /** Bytes of scratch still free. */
  scratchFree(): number {
    return this.scratch.byteOffset + this.scratch.byteLength - this.scratchTop;
  }

  /** The scratch position, to hand to scratchReset when this step's temporaries are dead. */
  scratchMark(): number {
    return this.scratchTop;
  }

  /** Frees every scratch allocation made since `mark`. */
  scratchReset(mark: number): void {
    if (mark < this.scratch.byteOffset || mark > this.scratchTop) {
      throw new RangeError(
        `WasmKernels.scratchReset: mark ${mark} is not in [${this.scratch.byteOffset}, ${this.scratchTop}]`,
      );
    }
    this.scratchTop = mark;
  }

  /** True when `arr` is a view into this memory (then kernels use it in place). */
  contains(arr: ArrayBufferView): boolean {
    return arr.buffer === this.buffer;
  }

  /** Byte offset of a view into this memory, for `exports`. */
  offsetOf(arr: ArrayBufferView): number {
    if (!this.contains(arr)) throw new RangeError("WasmKernels.offsetOf: the array is not a view into this memory");
    return arr.byteOffset;
  }

  /**
   * c = op(a)·op(b) in float32 (c is m×n, overwritten; op transposes when the flag is set: a is
   * then stored k×m, b n×k). Any Float32Arrays: views into this memory are used in place, others are
   * copied through scratch. c must not overlap a or b.
   * @example k.matmulF32(x, w, y, batch, inFeatures, outFeatures, false, true) // y = x·wᵀ
   */
  matmulF32(
    a: Float32Array,
    b: Float32Array,
    c: Float32Array,
    m: number,
    k: number,
    n: number,
    transA = false,
    transB = false,
  ): void {
    checkOperands(a, b, c, m, k, n);
    const mark = this.scratchTop;
    try {
      const aPtr = this.input(a, m * k),
        bPtr = this.input(b, k * n);
      const cInside = this.contains(c);
      const cPtr = cInside ? c.byteOffset : this.scratchAlloc(m * n * 4);
      const packPtr = this.scratchAlloc(this.exports.matmulPackBytes(m, k, n));
      this.exports.matmul(aPtr, bPtr, cPtr, m, k, n, transA ? 1 : 0, transB ? 1 : 0, packPtr);
      if (!cInside) c.set(this.all.subarray(cPtr >> 2, (cPtr >> 2) + m * n));
    } finally {
      this.scratchTop = mark;
    }
  }

  /**
   * `exports.matmulStrided` (same arguments: byte offsets, row strides in floats, flags 0/1), run on
   * the native BLAS where one serves this thread (then packPtr is not used).
   * @example k.matmulStrided(q, kPtr, scores, t, d, t, 0, 1, 3 * d, 3 * d, t, pack) // Q·Kᵀ of one head
   */
  matmulStrided(
    aPtr: number,
    bPtr: number,
    cPtr: number,
    m: number,
    k: number,
    n: number,
    transA: number,
    transB: number,
    lda: number,
    ldb: number,
    ldc: number,
    packPtr: number,
  ): void {
    const blas = nativeBlas();
    if (blas === null) {
      this.exports.matmulStrided(aPtr, bPtr, cPtr, m, k, n, transA, transB, lda, ldb, ldc, packPtr);
      return;
    }
    const all = this.all;
    blas.sgemm(transA !== 0, transB !== 0, m, n, k, all, aPtr >> 2, lda, all, bPtr >> 2, ldb, all, cPtr >> 2, ldc);
  }

  /** Bytes of scratch matmulF32 needs for these operands (0 for operands already inside). */
  matmulScratchBytes(a: Float32Array, b: Float32Array, c: Float32Array, m: number, k: number, n: number): number {
    const copy = (arr: Float32Array, len: number) => (this.contains(arr) ? 0 : alignUp(len * 4, 64));
    return copy(a, m * k) + copy(b, k * n) + copy(c, m * n) + alignUp(this.exports.matmulPackBytes(m, k, n), 64) + 64;
  }

  // Byte offset of the first `length` floats of arr, copied into scratch when outside the memory.
  private input(arr: Float32Array, length: number): number {
    if (this.contains(arr)) return arr.byteOffset;
    const ptr = this.scratchAlloc(length * 4);
    this.all.set(length === arr.length ? arr : arr.subarray(0, length), ptr >> 2);
    return ptr;
  }
}

/**
 * Kernels on a given or a new shared memory; see WasmKernelsOptions for the layout.
 * @example const k = createWasmKernels({ heapBytes: arenaBytes, scratchBytes: 16 << 20 });
 */
export function createWasmKernels(options: WasmKernelsOptions = {}): WasmKernels {
  if (options.memory !== undefined) {
    if (options.scratch === undefined) {
      throw new RangeError("createWasmKernels: with an existing memory, pass this thread's own `scratch` region");
    }
    return new WasmKernels(options.memory, options.heap ?? { byteOffset: 0, byteLength: 0 }, options.scratch);
  }
  const scratchBytes = alignUp(options.scratch?.byteLength ?? options.scratchBytes ?? DEFAULT_SCRATCH_BYTES, 64);
  const need = RESERVED_BYTES + alignUp(options.heapBytes ?? 0, 64) + scratchBytes;
  const pages = options.pages ?? Math.max(1, Math.ceil(need / PAGE_BYTES));
  const memory = newSharedMemory(pages);
  const byteLength = memory.buffer.byteLength;
  const scratch = options.scratch ?? { byteOffset: byteLength - scratchBytes, byteLength: scratchBytes };
  const heap = options.heap ?? {
    byteOffset: RESERVED_BYTES,
    byteLength: Math.max(0, Math.min(scratch.byteOffset, byteLength) - RESERVED_BYTES),
  };
  return new WasmKernels(memory, heap, scratch);
}

function alignUp(x: number, align: number): number {
  return Math.ceil(x / align) * align;
}

function checkOperands(a: Float32Array, b: Float32Array, c: Float32Array, m: number, k: number, n: number): void {
  for (const [name, v] of [
    ["m", m],
    ["k", k],
    ["n", n],
  ] as const) {
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`matmulF32: ${name} must be an integer >= 0, got ${v}`);
  }
  for (const [name, arr, len] of [
    ["a", a, m * k],
    ["b", b, k * n],
    ["c", c, m * n],
  ] as const) {
    if (arr.length < len) throw new RangeError(`matmulF32: ${name} has ${arr.length} elements, needs ${len}`);
  }
  for (const [name, arr, len] of [
    ["a", a, m * k],
    ["b", b, k * n],
  ] as const) {
    if (overlaps(c, m * n, arr, len))
      throw new RangeError(`matmulF32: c overlaps ${name}; the output must not alias an input`);
  }
}

// True when the first lenX floats of x and the first lenY floats of y share bytes.
function overlaps(x: Float32Array, lenX: number, y: Float32Array, lenY: number): boolean {
  if (x.buffer !== y.buffer || lenX === 0 || lenY === 0) return false;
  return x.byteOffset < y.byteOffset + lenY * 4 && y.byteOffset < x.byteOffset + lenX * 4;
}
