import { USER_BASE } from "./control.js";
import { SEGMENT_ALIGN } from "./shard.js";

// The arena: one contiguous stretch of a SharedArrayBuffer (its own, or a shared
// WebAssembly.Memory's buffer starting at a 64-byte aligned byteOffset). P is paddedLength: the
// parameters' sizes, each rounded up to SEGMENT_ALIGN floats, summed. Regions, in this order, each
// starting on a 64-byte line:
//   params   float32 [P]         every parameter a view at a multiple of 16 floats; the padding
//                                between parameters stays 0
//   grads    float32 [G][P]      G = gradSlices, a multiple of ranks: rank r owns slices
//                                [r·G/ranks, (r+1)·G/ranks) (one each by default), and the
//                                collective sums every slice, in slice order, into slice 0
//   state    float32 [S][P]      the optimizer's per-parameter buffers (Adam: m, v)
//   scalars  float64 [ranks][scalarStride]  per-rank partial results (loss sum, correct count,
//                                squared gradient norm); scalarStride rounds the slots up to 8
//                                so each rank writes its own cache line
//   control  int32   [USER_BASE + userControlWords]  see control.ts
// Byte offsets are relative to the arena's start, so a layout means the same inside any buffer.
export const ALIGN_BYTES = 64;
const FLOAT64_PER_LINE = ALIGN_BYTES / 8;

export interface ArenaSpec {
  /** number of float32 elements of each parameter */
  paramSizes: readonly number[];
  /** number of ranks, each with its own gradient slice(s) */
  ranks: number;
  /**
   * gradient slices, a multiple of ranks (default: ranks): with more, each rank accumulates its
   * shard's parts (virtual shards) into slices of their own, so the reduction adds the same
   * partial sums in the same order whatever the number of ranks
   */
  gradSlices?: number;
  /** optimizer buffers per parameter (SGD with momentum 1, Adam 2) */
  stateBuffers: number;
  /** float64 slots per rank; default 8 */
  scalarSlotsPerRank?: number;
  /** control words after USER_BASE for the layer above; default 64 */
  userControlWords?: number;
}

/** A planned arena; plain data, so it travels by postMessage or workerData. */
export interface ArenaLayout {
  dtype: "float32";
  ranks: number;
  /** gradient slices: ranks × slices per rank */
  gradSlices: number;
  stateBuffers: number;
  paramSizes: number[];
  /** element offset of each parameter in params (and in each grads slice, each state buffer) */
  paramOffsets: number[];
  /** P: elements per params, grads slice and state buffer; a multiple of 16 */
  paddedLength: number;
  scalarSlotsPerRank: number;
  /** float64 elements from one rank's scalars to the next */
  scalarStride: number;
  controlWords: number;
  byteOffsets: { params: number; grads: number; state: number; scalars: number; control: number };
  byteLength: number;
}

/**
 * Plans an arena's regions and parameter offsets.
 * @example const layout = planArena({ paramSizes: [784 * 64, 64, 64 * 10, 10], ranks: 2, stateBuffers: 2 });
 */
export function planArena(spec: ArenaSpec): ArenaLayout {
  const { paramSizes, ranks, stateBuffers } = spec;
  const scalarSlotsPerRank = spec.scalarSlotsPerRank ?? 8;
  const userControlWords = spec.userControlWords ?? 64;
  checkCount("ranks", ranks, 1);
  const gradSlices = spec.gradSlices ?? ranks;
  checkCount("gradSlices", gradSlices, 1);
  if (gradSlices % ranks !== 0)
    throw new RangeError(`planArena: gradSlices must be a multiple of ranks (${ranks}), got ${gradSlices}`);
  checkCount("stateBuffers", stateBuffers, 0);
  checkCount("scalarSlotsPerRank", scalarSlotsPerRank, 0);
  checkCount("userControlWords", userControlWords, 0);
  const paramOffsets: number[] = [];
  let paddedLength = 0;
  paramSizes.forEach((size, i) => {
    checkCount(`paramSizes[${i}]`, size, 0);
    paramOffsets.push(paddedLength);
    paddedLength += roundUp(size, SEGMENT_ALIGN);
  });
  const scalarStride = roundUp(scalarSlotsPerRank, FLOAT64_PER_LINE);
  const controlWords = USER_BASE + userControlWords;
  const sliceBytes = paddedLength * Float32Array.BYTES_PER_ELEMENT;
  const params = 0;
  const grads = params + sliceBytes;
  const state = grads + gradSlices * sliceBytes;
  const scalars = state + stateBuffers * sliceBytes;
  const control = scalars + ranks * scalarStride * Float64Array.BYTES_PER_ELEMENT;
  const byteLength = roundUp(control + controlWords * Int32Array.BYTES_PER_ELEMENT, ALIGN_BYTES);
  if (!Number.isSafeInteger(byteLength)) throw new RangeError(`planArena: arena too large (${byteLength} bytes)`);
  return {
    dtype: "float32",
    ranks,
    gradSlices,
    stateBuffers,
    paramSizes: [...paramSizes],
    paramOffsets,
    paddedLength,
    scalarSlotsPerRank,
    scalarStride,
    controlWords,
    byteOffsets: { params, grads, state, scalars, control },
    byteLength,
  };
}

/** What a worker needs to attach to the same arena; plain data plus the shared buffer. */
export interface ArenaHandle {
  buffer: SharedArrayBuffer;
  byteOffset: number;
  layout: ArenaLayout;
}

/**
 * Typed-array views over one arena. Every view aliases shared memory: nothing is copied.
 * @example
 * const arena = SharedArena.create(planArena({ paramSizes: [6, 3], ranks: 2, stateBuffers: 2 }));
 * new Worker(entryUrl, { workerData: arena.handle() }); // worker: SharedArena.attach(buffer, layout, byteOffset)
 */
export class SharedArena {
  readonly params: Float32Array;
  readonly scalars: Float64Array;
  readonly control: Int32Array;
  private readonly gradSlices: Float32Array[];
  private readonly stateBuffers: Float32Array[];

  private constructor(
    readonly buffer: SharedArrayBuffer,
    readonly layout: ArenaLayout,
    readonly byteOffset: number,
  ) {
    const { paddedLength: length, byteOffsets, ranks, gradSlices } = layout;
    const floats = (start: number, index: number) =>
      new Float32Array(buffer, byteOffset + start + index * length * Float32Array.BYTES_PER_ELEMENT, length);
    this.params = floats(byteOffsets.params, 0);
    this.gradSlices = Array.from({ length: gradSlices }, (_, r) => floats(byteOffsets.grads, r));
    this.stateBuffers = Array.from({ length: layout.stateBuffers }, (_, k) => floats(byteOffsets.state, k));
    this.scalars = new Float64Array(buffer, byteOffset + byteOffsets.scalars, ranks * layout.scalarStride);
    this.control = new Int32Array(buffer, byteOffset + byteOffsets.control, layout.controlWords);
  }

  /** Allocates a fresh, zeroed SharedArrayBuffer holding exactly this layout. */
  static create(layout: ArenaLayout): SharedArena {
    checkLayout(layout);
    return new SharedArena(new SharedArrayBuffer(layout.byteLength), layout, 0);
  }

  /**
   * Views an arena that already exists in `buffer` at `byteOffset` (a multiple of 64), such as
   * one created elsewhere and received by a worker, or carved out of a shared WebAssembly.Memory.
   * The memory is not cleared.
   */
  static attach(buffer: SharedArrayBuffer, layout: ArenaLayout, byteOffset = 0): SharedArena {
    if (!(buffer instanceof SharedArrayBuffer)) {
      throw new TypeError("SharedArena.attach: buffer must be a SharedArrayBuffer");
    }
    if (!Number.isSafeInteger(byteOffset) || byteOffset < 0 || byteOffset % ALIGN_BYTES !== 0) {
      throw new RangeError(`SharedArena.attach: byteOffset must be a multiple of ${ALIGN_BYTES}, got ${byteOffset}`);
    }
    checkLayout(layout);
    if (byteOffset + layout.byteLength > buffer.byteLength) {
      throw new RangeError(
        `SharedArena.attach: arena needs bytes [${byteOffset}, ${byteOffset + layout.byteLength}) ` +
          `but the buffer has ${buffer.byteLength}`,
      );
    }
    return new SharedArena(buffer, layout, byteOffset);
  }

  /** The plain data to post to a worker so it can attach(). */
  handle(): ArenaHandle {
    return { buffer: this.buffer, byteOffset: this.byteOffset, layout: this.layout };
  }

  /** Parameter `index` as a view into params. */
  paramView(index: number): Float32Array {
    return this.paramIn(this.params, index);
  }

  /** Parameter `index`'s part of any P-long region (a grads slice, a state buffer). */
  paramIn(region: Float32Array, index: number): Float32Array {
    const { paramOffsets, paramSizes } = this.layout;
    if (!Number.isInteger(index) || index < 0 || index >= paramSizes.length) {
      throw new RangeError(`SharedArena: parameter index must be in [0, ${paramSizes.length}), got ${index}`);
    }
    const offset = paramOffsets[index]!; // index was checked against paramSizes, as long as paramOffsets
    return region.subarray(offset, offset + paramSizes[index]!);
  }

  /** Gradient slice `slice`, P long: rank r's first is `firstSlice(r)` (r itself, with one slice per rank). */
  grads(slice: number): Float32Array {
    return pick(this.gradSlices, slice, "grads slice");
  }

  /** How many gradient slices each rank owns. */
  get slicesPerRank(): number {
    return this.layout.gradSlices / this.layout.ranks;
  }

  /** The index of rank `rank`'s first gradient slice. */
  firstSlice(rank: number): number {
    return rank * this.slicesPerRank;
  }

  /** Optimizer state buffer `k`, P long. */
  state(k: number): Float32Array {
    return pick(this.stateBuffers, k, "state buffer");
  }

  /** Rank `rank`'s scalarSlotsPerRank float64 slots. */
  rankScalars(rank: number): Float64Array {
    const { scalarStride, scalarSlotsPerRank, ranks } = this.layout;
    if (!Number.isInteger(rank) || rank < 0 || rank >= ranks) {
      throw new RangeError(`SharedArena: scalars rank must be in [0, ${ranks}), got ${rank}`);
    }
    return this.scalars.subarray(rank * scalarStride, rank * scalarStride + scalarSlotsPerRank);
  }
}

// A layout may have crossed postMessage or been written by hand: it must be exactly what
// planArena gives for its own spec, or views would overlap.
function checkLayout(layout: ArenaLayout): void {
  const expected = planArena({
    paramSizes: layout.paramSizes,
    ranks: layout.ranks,
    gradSlices: layout.gradSlices,
    stateBuffers: layout.stateBuffers,
    scalarSlotsPerRank: layout.scalarSlotsPerRank,
    userControlWords: layout.controlWords - USER_BASE,
  });
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  const { params, grads, state, scalars, control } = layout.byteOffsets;
  if (
    layout.dtype !== expected.dtype ||
    layout.gradSlices !== expected.gradSlices ||
    layout.paddedLength !== expected.paddedLength ||
    layout.scalarStride !== expected.scalarStride ||
    layout.byteLength !== expected.byteLength ||
    !same(layout.paramOffsets, expected.paramOffsets) ||
    !same([params, grads, state, scalars, control], Object.values(expected.byteOffsets))
  ) {
    throw new Error("SharedArena: layout does not match planArena for its own sizes; plan it with planArena");
  }
}

function pick(views: Float32Array[], index: number, what: string): Float32Array {
  const view = views[index];
  if (!Number.isInteger(index) || view === undefined) {
    throw new RangeError(`SharedArena: ${what} must be in [0, ${views.length}), got ${index}`);
  }
  return view;
}

function checkCount(what: string, value: number, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RangeError(`planArena: ${what} must be an integer >= ${min}, got ${value}`);
  }
}

function roundUp(value: number, multiple: number): number {
  return Math.ceil(value / multiple) * multiple;
}

/** Where one module buffer (running statistics, counters) lives in the shared buffer block. */
export interface BufferSlot {
  name: string;
  dtype: "float32" | "float64" | "int32";
  shape: number[];
  /** byte offset in the block, a multiple of 8 */
  byteOffset: number;
  length: number;
}

/**
 * Lays out a model's buffers (`module.namedBuffers()`) one after another in a block of shared
 * memory of their own, beside the arena: buffers are not trained, so they need no gradient slices
 * or optimizer state, and they keep their dtype (BatchNorm's numBatchesTracked is int32).
 */
export function planBuffers(named: readonly [string, { dtype: string; shape: readonly number[] }][]): {
  slots: BufferSlot[];
  byteLength: number;
} {
  let byteLength = 0;
  const slots = named.map(([name, t]) => {
    if (t.dtype !== "float32" && t.dtype !== "float64" && t.dtype !== "int32")
      throw new Error(`buffer '${name}' is ${t.dtype}; shared buffers must be float32, float64 or int32`);
    const length = t.shape.reduce((a, b) => a * b, 1);
    const slot: BufferSlot = { name, dtype: t.dtype, shape: [...t.shape], byteOffset: byteLength, length };
    byteLength = roundUp(byteLength + length * (t.dtype === "float64" ? 8 : 4), 8);
    return slot;
  });
  return { slots, byteLength };
}

/** A typed-array view of each slot in `block`. */
export function bufferViews(
  block: SharedArrayBuffer,
  slots: readonly BufferSlot[],
): (Float32Array | Float64Array | Int32Array)[] {
  return slots.map((s) => {
    if (s.dtype === "float64") return new Float64Array(block, s.byteOffset, s.length);
    if (s.dtype === "int32") return new Int32Array(block, s.byteOffset, s.length);
    return new Float32Array(block, s.byteOffset, s.length);
  });
}
