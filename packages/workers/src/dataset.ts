import { type Tensor, isTensor } from "@threadgrad/core";

/**
 * A data set the trainer can shard: features `x` (one row of `features` values per sample) and
 * targets `y` (int32 class indices, or float32 regression targets with `targetDim` per sample).
 * Token data keeps int32 ids end to end: x `[N, T]` int32 and y `[N, T]` int32 (the next token of
 * each position) are sharded by rows like float rows, and the model's forward gets int32 `[rows, T]`.
 * `x`/`y` may be tensors (`{ x: Tensor, y: Tensor }`) or typed arrays with `length`.
 * Samples keep a shape of their own when `sampleShape` is given (`[1, 28, 28]` for grey images),
 * or when `x` is a tensor of more than 2 dims (`[N, 1, 28, 28]`: the shape after the first dim):
 * the model's forward then gets `[rows, ...sampleShape]`; otherwise it gets rows `[rows, features]`.
 */
export interface DatasetLike {
  x: Tensor | Float32Array | Int32Array;
  y: Tensor | Int32Array | Float32Array;
  length?: number;
  /** the shape of one sample (its product is the values per sample); default: flat rows */
  sampleShape?: readonly number[];
}

/** A data set in shared memory, as sent to workers (plain data: buffers and sizes). */
export interface SharedDataset {
  id: number;
  /** float32 features, or int32 token ids */
  x: Float32Array | Int32Array;
  y: Int32Array | Float32Array;
  length: number;
  features: number;
  targetDim: number;
  /** the shape each sample has in the model's input, or null: flat rows [rows, features] */
  sampleShape: number[] | null;
}

function isShared(a: ArrayBufferView): boolean {
  return typeof SharedArrayBuffer !== "undefined" && a.buffer instanceof SharedArrayBuffer;
}

/**
 * Shared memory for a copy of `bytes` bytes: a SharedArrayBuffer at least that large (the trainer
 * hands out the storage of data sets it let go of, so repeated fresh data sets reuse it).
 */
export type SharedAllocator = (bytes: number) => SharedArrayBuffer;

const allocate: SharedAllocator = (bytes) => new SharedArrayBuffer(bytes);

/** Copies into shared memory unless the array already lives in a SharedArrayBuffer. */
function share<T extends Float32Array | Int32Array>(a: T, alloc: SharedAllocator): T {
  if (isShared(a)) return a;
  const Ctor = a.constructor as new (b: SharedArrayBuffer, offset: number, length: number) => T;
  const out = new Ctor(alloc(a.byteLength), 0, a.length);
  out.set(a);
  return out;
}

/** What the model makes of a data set, when known: checked before any worker sees the data. */
export interface DatasetChecks {
  /** targets are class indices (one per sample, whole numbers from 0) */
  classification?: boolean;
  /** values the model takes per sample */
  inputs?: number;
  /** the model's outputs: the number of classes, or the targets per sample for regression */
  outputs?: number;
  /** the model takes flat rows (the built-in mlp): a sample shape is checked, then not passed on */
  flatRows?: boolean;
  /** the dtype the model's input must have, when the spec fixes it (float32 features, int32 token ids) */
  inputDtype?: "float32" | "int32";
  /** token ids in x must be below this (the model's vocabulary), when known */
  vocab?: number;
  /** the most tokens per sample the model takes (its context), when known */
  context?: number;
  /**
   * targets are one class index per position of a token sample (a sequence loss): y int32 with as
   * many values per sample as x, each from 0 to `outputs` - 1 when that is known
   */
  tokens?: boolean;
}

/** The first non-finite value of `a`, or -1 (a sum times zero stays 0 unless a value is NaN or ±Infinity). */
function firstNonFinite(a: Float32Array | Int32Array): number {
  if (a instanceof Int32Array) return -1;
  const CHUNK = 4096;
  for (let start = 0; start < a.length; start += CHUNK) {
    const end = Math.min(a.length, start + CHUNK);
    let probe = 0;
    for (let i = start; i < end; i++) probe += a[i]! * 0;
    if (probe !== 0) for (let i = start; i < end; i++) if (!Number.isFinite(a[i]!)) return i;
  }
  return -1;
}

let nextId = 1;

/**
 * Validates a data set and puts it in shared memory (no copy when it already is there). Every
 * problem names the sample (its index in the data set): `x` and `y` must hold the same number of
 * samples, with the model's input count per sample when `checks.inputs` is known; values must be
 * finite; class labels whole numbers from 0 to `checks.outputs` - 1.
 */
export function toSharedDataset(
  ds: DatasetLike,
  checks: DatasetChecks = {},
  alloc: SharedAllocator = allocate,
): SharedDataset {
  if (ds === null || typeof ds !== "object" || !("x" in ds) || !("y" in ds)) {
    throw new Error("dataset: expected an object { x, y }");
  }
  const xArr = isTensor(ds.x) ? ds.x.data : ds.x;
  const yArr = isTensor(ds.y) ? ds.y.data : ds.y;
  if (!(xArr instanceof Float32Array || xArr instanceof Int32Array))
    throw new Error(`dataset: x must hold float32 values or int32 token ids, got ${xArr?.constructor?.name}`);
  const xDtype = xArr instanceof Int32Array ? "int32" : "float32";
  if (checks.inputDtype !== undefined && xDtype !== checks.inputDtype) {
    throw new Error(
      checks.inputDtype === "int32"
        ? `dataset: the model takes int32 token ids, but x holds ${xDtype} values`
        : `dataset: the model takes float32 features, but x holds int32 values (token ids need a model that embeds them)`,
    );
  }
  if (!(yArr instanceof Int32Array || yArr instanceof Float32Array)) {
    throw new Error(`dataset: y must hold int32 class indices or float32 targets, got ${yArr?.constructor?.name}`);
  }
  // Without an explicit length only tensors (their first dim) and one int32 label per sample tell
  // the sample count unambiguously; float targets may hold several values per sample.
  // Token rows hold several ids and several targets each, so only a tensor's first dim tells them.
  const isTokens = xArr instanceof Int32Array || checks.tokens === true;
  const length =
    ds.length ??
    (isTensor(ds.x)
      ? ds.x.shape[0]
      : !isTokens && (yArr instanceof Int32Array || checks.classification)
        ? yArr.length
        : undefined);
  if (length === undefined) {
    throw new Error(
      isTokens
        ? "dataset: pass `length` (the number of samples) with typed-array token ids, or x as an [N, T] tensor"
        : "dataset: pass `length` (the number of samples) with typed-array x and float y",
    );
  }
  if (!Number.isInteger(length) || length <= 0)
    throw new Error(`dataset: must hold at least one sample, got length ${length}`);
  const inputs = checks.inputs;
  if (inputs !== undefined && xArr.length !== length * inputs) {
    throw new Error(
      `dataset: x holds ${xArr.length} values for ${length} samples, but the model takes ${inputs} inputs per sample ` +
        `(${length * inputs} values): do x and y hold the same number of samples?`,
    );
  }
  if (xArr.length % length !== 0)
    throw new Error(`dataset: x holds ${xArr.length} values, not a whole number of rows for ${length} samples`);
  if (yArr.length % length !== 0) throw new Error(`dataset: y holds ${yArr.length} values for ${length} samples`);
  const features = xArr.length / length,
    targetDim = yArr.length / length;
  const shape = readSampleShape(ds, features);
  const sampleShape = checks.flatRows ? null : shape;
  const badX = firstNonFinite(xArr);
  if (badX >= 0) {
    throw new Error(
      `dataset: x of sample ${Math.floor(badX / features)} holds ${xArr[badX]} (feature ${badX % features}); ` +
        "every value must be finite",
    );
  }
  if (xArr instanceof Int32Array) checkTokenIds(xArr, features, checks);
  if (checks.tokens) checkTokenTargets(yArr, length, features, targetDim, checks.outputs);
  else checkTargets(yArr, length, targetDim, checks);
  return {
    id: nextId++,
    x: share(xArr, alloc),
    y: share(yArr, alloc),
    length,
    features,
    targetDim,
    sampleShape,
  };
}

/** The shape of one sample: given, or a tensor x's dims after the first; checked against `features`. */
function readSampleShape(ds: DatasetLike, features: number): number[] | null {
  const given = ds.sampleShape;
  const fromTensor = isTensor(ds.x) && ds.x.ndim > 2 ? ds.x.shape.slice(1) : null;
  if (given === undefined) return fromTensor;
  if (
    !Array.isArray(given) ||
    given.length === 0 ||
    given.length > 8 ||
    !given.every((d) => Number.isInteger(d) && d > 0)
  ) {
    throw new Error(`dataset: sampleShape must be a list of 1 to 8 positive integers, got ${JSON.stringify(given)}`);
  }
  const size = given.reduce((a, b) => a * b, 1);
  if (size !== features) {
    throw new Error(
      `dataset: sampleShape [${given.join(", ")}] holds ${size} values, but each sample of x has ${features}`,
    );
  }
  if (fromTensor !== null && fromTensor.join() !== given.join()) {
    throw new Error(
      `dataset: sampleShape [${given.join(", ")}] differs from x's sample shape [${fromTensor.join(", ")}]`,
    );
  }
  return [...given];
}

function checkTargets(y: Int32Array | Float32Array, length: number, targetDim: number, checks: DatasetChecks): void {
  const { classification, outputs } = checks;
  if (classification) {
    if (!(y instanceof Int32Array))
      throw new Error(`dataset: class labels in y must be int32, got ${y.constructor.name}`);
    if (targetDim !== 1)
      throw new Error(`dataset: y holds ${y.length} labels for ${length} samples; classification takes one per sample`);
    for (let i = 0; i < length; i++) {
      const c = y[i]!;
      if (Number.isInteger(c) && c >= 0 && (outputs === undefined || c < outputs)) continue;
      const range = outputs === undefined ? "a whole number from 0" : `a whole number from 0 to ${outputs - 1}`;
      throw new Error(
        `dataset: the label of sample ${i} is ${c}; ${outputs === undefined ? "each" : `with ${outputs} classes each`} must be ${range}`,
      );
    }
    return;
  }
  const bad = firstNonFinite(y);
  if (bad >= 0) {
    throw new Error(`dataset: y of sample ${Math.floor(bad / targetDim)} holds ${y[bad]}; every target must be finite`);
  }
  if (outputs !== undefined && targetDim !== outputs) {
    throw new Error(
      `dataset: y holds ${targetDim} target${targetDim === 1 ? "" : "s"} per sample, ` +
        `but the model has ${outputs} output${outputs === 1 ? "" : "s"}`,
    );
  }
}

/** Token ids: whole numbers from 0, below the model's vocabulary when known; at most `context` per sample. */
function checkTokenIds(x: Int32Array, tokens: number, checks: DatasetChecks): void {
  const { vocab, context } = checks;
  if (context !== undefined && tokens > context) {
    throw new Error(`dataset: each sample of x holds ${tokens} tokens, but the model's context is ${context}`);
  }
  const limit = vocab ?? 2 ** 31;
  for (let i = 0; i < x.length; i++) {
    const id = x[i]!;
    if (id >= 0 && id < limit) continue;
    const range = vocab === undefined ? "from 0" : `from 0 to ${vocab - 1} (the model's vocabulary is ${vocab})`;
    throw new Error(
      `dataset: token ${i % tokens} of sample ${Math.floor(i / tokens)} in x is ${id}; token ids must be ${range}`,
    );
  }
}

/** A sequence loss's targets: int32, one per token of x, each a class index below `outputs` when known. */
function checkTokenTargets(
  y: Int32Array | Float32Array,
  length: number,
  tokens: number,
  targetDim: number,
  outputs: number | undefined,
): void {
  if (!(y instanceof Int32Array))
    throw new Error(`dataset: a sequence loss takes int32 targets (token ids) in y, got ${y.constructor.name}`);
  if (targetDim !== tokens) {
    throw new Error(
      `dataset: y holds ${targetDim} targets per sample but x holds ${tokens} tokens; ` +
        `a sequence loss takes one target per token (x and y both [${length}, ${tokens}])`,
    );
  }
  for (let i = 0; i < y.length; i++) {
    const c = y[i]!;
    if (c >= 0 && (outputs === undefined || c < outputs)) continue;
    const range = outputs === undefined ? "from 0" : `from 0 to ${outputs - 1}`;
    throw new Error(
      `dataset: target ${i % targetDim} of sample ${Math.floor(i / targetDim)} in y is ${c}; each must be a token id ${range}`,
    );
  }
}
