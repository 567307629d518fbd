import { type Tensor, isTensor } from "@threadgrad/core";

/**
 * A data set the trainer can shard: features `x` (one row of `features` values per sample) and
 * targets `y` (int32 class indices, or float32 regression targets with `targetDim` per sample).
 * `x`/`y` may be tensors (`{ x: Tensor, y: Tensor }`) or typed arrays with `length`.
 */
export interface DatasetLike {
  x: Tensor | Float32Array;
  y: Tensor | Int32Array | Float32Array;
  length?: number;
}

/** A data set in shared memory, as sent to workers (plain data: buffers and sizes). */
export interface SharedDataset {
  id: number;
  x: Float32Array;
  y: Int32Array | Float32Array;
  length: number;
  features: number;
  targetDim: number;
}

function isShared(a: ArrayBufferView): boolean {
  return typeof SharedArrayBuffer !== "undefined" && a.buffer instanceof SharedArrayBuffer;
}

/** Copies into a SharedArrayBuffer unless the array already lives in one. */
function share<T extends Float32Array | Int32Array>(a: T): T {
  if (isShared(a)) return a;
  const Ctor = a.constructor as new (b: SharedArrayBuffer) => T;
  const out = new Ctor(new SharedArrayBuffer(a.byteLength));
  out.set(a);
  return out;
}

let nextId = 1;

/** Validates a data set and puts it in shared memory (no copy when it already is there). */
export function toSharedDataset(ds: DatasetLike): SharedDataset {
  if (ds === null || typeof ds !== "object" || !("x" in ds) || !("y" in ds)) {
    throw new Error("dataset: expected an object { x, y }");
  }
  const xArr = isTensor(ds.x) ? ds.x.data : ds.x;
  const yArr = isTensor(ds.y) ? ds.y.data : ds.y;
  if (!(xArr instanceof Float32Array))
    throw new Error(`dataset: x must hold float32 values, got ${xArr?.constructor?.name}`);
  if (!(yArr instanceof Int32Array || yArr instanceof Float32Array)) {
    throw new Error(`dataset: y must hold int32 class indices or float32 targets, got ${yArr?.constructor?.name}`);
  }
  // Without an explicit length only tensors (their first dim) and one int32 label per sample tell
  // the sample count unambiguously; float targets may hold several values per sample.
  const length = ds.length ?? (isTensor(ds.x) ? ds.x.shape[0] : yArr instanceof Int32Array ? yArr.length : undefined);
  if (length === undefined)
    throw new Error("dataset: pass `length` (the number of samples) with typed-array x and float y");
  if (!Number.isInteger(length) || length <= 0)
    throw new Error(`dataset: must hold at least one sample, got length ${length}`);
  if (xArr.length % length !== 0)
    throw new Error(`dataset: x holds ${xArr.length} values, not a whole number of rows for ${length} samples`);
  if (yArr.length % length !== 0) throw new Error(`dataset: y holds ${yArr.length} values for ${length} samples`);
  return {
    id: nextId++,
    x: share(xArr),
    y: share(yArr),
    length,
    features: xArr.length / length,
    targetDim: yArr.length / length,
  };
}
