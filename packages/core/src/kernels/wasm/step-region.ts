import { type DType, type TypedArray, setStepAllocator } from "../../tensor/dtype.js";
import type { WasmKernels } from "./wasm-kernels.js";

type ViewCtor = {
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): TypedArray;
  BYTES_PER_ELEMENT: number;
};
const CTORS: Record<DType, ViewCtor> = {
  float32: Float32Array,
  float64: Float64Array,
  int32: Int32Array,
  bool: Uint8Array,
} as unknown as Record<DType, ViewCtor>;
// Arrays smaller than this stay on the JavaScript heap: scalars and tiny masks cost nothing there.
const MIN_BYTES = 1024;
// Kept free for the matmul's packed panels and operand copies, which it takes on top of the region.
const RESERVE_BYTES = 8 << 20;

/**
 * Runs `fn` (one training or evaluation step) with every tensor it creates stored in this thread's
 * wasm scratch, a bump allocator reset when `fn` returns: no per-step garbage for the collector, and
 * activations already lie where the SIMD kernels read them. Tensors made inside are only valid
 * until then: whatever must outlive the step (a loss value, a gradient) is read or copied out
 * inside `fn`. Plain backward copies into `.grad` (heap or bound buffer); backward with
 * `createGraph` would leave `.grad` in the region and is refused inside it (use `grad(...)`).
 * When the region is full, allocation falls back to the heap.
 * @example const loss = runInStepRegion(kernels, () => { const l = lossOf(batch); l.backward(); return l.item(); });
 */
export function runInStepRegion<T>(k: WasmKernels, fn: () => T): T {
  const mark = k.scratchMark();
  const previous = setStepAllocator((dtype: DType, n: number, zeroed: boolean): TypedArray | null => {
    const Ctor = CTORS[dtype];
    const bytes = n * Ctor.BYTES_PER_ELEMENT;
    if (bytes < MIN_BYTES || k.scratchFree() - bytes < RESERVE_BYTES) return null;
    const a = new Ctor(k.buffer, k.scratchAlloc(bytes, 16), n);
    if (zeroed) a.fill(0);
    return a;
  });
  try {
    return fn();
  } finally {
    setStepAllocator(previous);
    k.scratchReset(mark);
  }
}
