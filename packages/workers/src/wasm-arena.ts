import {
  type Region,
  type WasmKernels,
  type WasmMemory,
  createWasmKernels,
  getKernelBackend,
  segmentSum,
} from "@threadgrad/core";
import type { ArenaLayout, SharedArena } from "./arena.js";
import type { SegmentSum } from "./collective.js";

/**
 * Scratch per rank for a step's tensors (the step region): its activations, the matmul's packed
 * panels and the convolution's im2col. A W6 step (the cnn preset, batch 128) peaks near 90 MiB, a
 * W7 step (chargpt, 32 windows) near 117 MiB since its attention runs on the packed projection;
 * beyond the scratch, tensors fall back to the JavaScript heap (W6 ran at a quarter of the speed).
 * Only the pages a step touches are ever committed.
 */
export const RANK_SCRATCH_BYTES = 256 << 20;
/** The least scratch a rank gets when many ranks share the memory. */
const MIN_RANK_SCRATCH_BYTES = 48 << 20;
// Stay well inside wasm32's 4 GiB: beyond this the arena falls back to a plain SharedArrayBuffer.
const MAX_MEMORY_BYTES = 2 ** 31;

/** Where the trainer put the arena and each rank's scratch inside one shared WebAssembly.Memory. */
export interface WasmPlacement {
  memory: WasmMemory;
  arenaOffset: number;
  scratch: Region[];
}

/**
 * Carves the arena and one scratch region per rank out of a new shared WebAssembly.Memory, so the
 * SIMD kernels read parameters and gradients in place and run the reduction and the Adam update by
 * byte offset. Returns null when the WebAssembly backend is off or the model is too large.
 */
export function placeInWasm(
  layout: ArenaLayout,
  ranks: number,
): { kernels: WasmKernels; placement: WasmPlacement } | null {
  if (getKernelBackend() !== "wasm") return null;
  // Every rank's scratch within three quarters of the memory, so 16 ranks still fit beside a model.
  const share = Math.floor((MAX_MEMORY_BYTES * 0.75) / ranks / 2 ** 20) * 2 ** 20;
  const scratchBytes = Math.max(MIN_RANK_SCRATCH_BYTES, Math.min(RANK_SCRATCH_BYTES, share));
  const heapBytes = layout.byteLength + ranks * scratchBytes + 64 * (ranks + 2);
  if (heapBytes > MAX_MEMORY_BYTES) return null;
  const kernels = createWasmKernels({ heapBytes, scratchBytes: 1 << 16 });
  const arenaOffset = kernels.alloc(layout.byteLength, 64);
  const scratch = Array.from({ length: ranks }, () => ({
    byteOffset: kernels.alloc(scratchBytes, 64),
    byteLength: scratchBytes,
  }));
  return { kernels, placement: { memory: kernels.memory, arenaOffset, scratch } };
}

/** The reduction's segment sum as the SIMD kernel over every gradient slice of an arena, in slice order (core's segmentSum). */
export function wasmSegmentSum(k: WasmKernels, arena: SharedArena): SegmentSum {
  if (arena.buffer !== k.buffer) throw new Error("wasmSegmentSum: the arena does not lie in these kernels' memory");
  const count = arena.layout.gradSlices;
  // One slice: slice 0 already is the sum.
  if (count === 1) return () => {};
  const slices = Array.from({ length: count }, (_, i) => arena.grads(i));
  return (start, end) => segmentSum(slices, slices[0]!, start, end, k);
}

/** An optimizer update of parameters [start, end) at 1-based step t with learning rate lr. */
export type SegmentUpdate = (start: number, end: number, t: number, lr: number) => void;
