import { type DType, type TypedArray, arrayFor, checkDtype, dtypeOf, getDefaultDtype } from "./dtype.js";
import { type Generator, defaultGenerator } from "./random.js";
import { type Shape, checkShape, fmtShape, numelOf } from "./shape.js";
import { Tensor } from "./tensor.js";

export interface TensorOptions {
  dtype?: DType;
  requiresGrad?: boolean;
}
export interface RandomOptions extends TensorOptions {
  generator?: Generator;
}

type Nested = number | boolean | readonly Nested[];

function finish(t: Tensor, opts: TensorOptions): Tensor {
  if (opts.requiresGrad) t.requiresGrad = true;
  return t;
}

function inferShape(data: Nested): number[] {
  const shape: number[] = [];
  let cur: Nested = data;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    cur = (cur as readonly Nested[])[0] as Nested;
    if (cur === undefined) break;
  }
  return shape;
}

function flattenInto(data: Nested, shape: number[], dim: number, out: (number | boolean)[]): void {
  if (dim === shape.length) {
    if (Array.isArray(data)) throw new Error(`tensor: too many dimensions at depth ${dim}`);
    if (typeof data !== "number" && typeof data !== "boolean")
      throw new Error(`tensor: expected a number, got ${typeof data}`);
    out.push(data);
    return;
  }
  if (!Array.isArray(data) || data.length !== shape[dim]) {
    const got = Array.isArray(data) ? data.length : typeof data;
    throw new Error(`tensor: expected sequence of length ${shape[dim]} at dim ${dim} (got ${got})`);
  }
  for (const d of data as readonly Nested[]) flattenInto(d, shape, dim + 1, out);
}

/**
 * Creates a tensor from nested arrays, or wraps a typed array WITHOUT copying when given with a
 * `shape` (how parameters are bound to shared memory).
 * ```ts
 * const x = tensor([[1, 2], [3, 4]], { requiresGrad: true });
 * const p = tensor(sharedFloat32View, { shape: [256, 784] });
 * ```
 */
export function tensor(data: Nested | TypedArray, opts: TensorOptions & { shape?: Shape } = {}): Tensor {
  if (ArrayBuffer.isView(data)) {
    const typed = data as TypedArray;
    const own = dtypeOf(typed);
    if (opts.dtype !== undefined && opts.dtype !== own) {
      throw new Error(
        `tensor: a ${typed.constructor.name} holds ${own}, not ${opts.dtype}; convert with .to('${opts.dtype}')`,
      );
    }
    const shape = opts.shape ? checkShape(opts.shape, "tensor") : [typed.length];
    if (numelOf(shape) !== typed.length) {
      throw new Error(
        `tensor: shape ${fmtShape(shape)} needs ${numelOf(shape)} elements, the array has ${typed.length}`,
      );
    }
    return finish(new Tensor(typed, shape), opts);
  }
  const shape = inferShape(data as Nested);
  const flat: (number | boolean)[] = [];
  flattenInto(data as Nested, shape, 0, flat);
  const dtype =
    opts.dtype !== undefined
      ? checkDtype(opts.dtype)
      : flat.length > 0 && flat.every((v) => typeof v === "boolean")
        ? "bool"
        : flat.every((v) => typeof v === "number" && Number.isInteger(v)) && flat.length > 0
          ? "int32"
          : getDefaultDtype();
  const arr = arrayFor(dtype, flat.length);
  for (let i = 0; i < flat.length; i++) arr[i] = Number(flat[i]);
  if (opts.shape) return finish(new Tensor(arr, checkShape(opts.shape, "tensor")), opts);
  return finish(new Tensor(arr, shape), opts);
}

export function full(shape: Shape, value: number, opts: TensorOptions = {}): Tensor {
  const dtype = opts.dtype ?? getDefaultDtype();
  const t = Tensor.empty(checkShape(shape, "full"), dtype);
  t.data.fill(value);
  return finish(t, opts);
}

export const zeros = (shape: Shape, opts: TensorOptions = {}): Tensor => full(shape, 0, opts);
export const ones = (shape: Shape, opts: TensorOptions = {}): Tensor => full(shape, 1, opts);
export const zerosLike = (t: Tensor, opts: TensorOptions = {}): Tensor => zeros(t.shape, { dtype: t.dtype, ...opts });
export const onesLike = (t: Tensor, opts: TensorOptions = {}): Tensor => ones(t.shape, { dtype: t.dtype, ...opts });
export const fullLike = (t: Tensor, value: number, opts: TensorOptions = {}): Tensor =>
  full(t.shape, value, { dtype: t.dtype, ...opts });

/** Values from `start` up to (not including) `end` by `step`: `arange(5)`, `arange(1, 2, 0.25)`. */
export function arange(start: number, end?: number, step = 1, opts: TensorOptions = {}): Tensor {
  const [s, e] = end === undefined ? [0, start] : [start, end];
  if (step === 0) throw new Error("arange: step must be nonzero");
  if ((e - s) / step < 0)
    throw new Error(
      `arange: upper bound and larger bound inconsistent with step sign (start ${s}, end ${e}, step ${step})`,
    );
  const n = Math.max(0, Math.ceil((e - s) / step));
  const dtype = opts.dtype ?? ([s, e, step].every(Number.isInteger) ? "int32" : getDefaultDtype());
  const arr = arrayFor(dtype, n);
  for (let i = 0; i < n; i++) arr[i] = s + i * step;
  return finish(new Tensor(arr, [n]), opts);
}

export function linspace(start: number, end: number, steps: number, opts: TensorOptions = {}): Tensor {
  if (!Number.isInteger(steps) || steps < 0)
    throw new Error(`linspace: number of steps must be a non-negative integer, got ${steps}`);
  const arr = arrayFor(opts.dtype ?? getDefaultDtype(), steps);
  const step = steps > 1 ? (end - start) / (steps - 1) : 0;
  // Fill the second half from the end, as PyTorch does, so both ends are exact.
  for (let i = 0; i < steps; i++) arr[i] = i < steps / 2 ? start + i * step : end - (steps - 1 - i) * step;
  return finish(new Tensor(arr, [steps]), opts);
}

export function eye(n: number, m = n, opts: TensorOptions = {}): Tensor {
  const t = zeros([n, m], opts);
  for (let i = 0; i < Math.min(n, m); i++) t.data[i * m + i] = 1;
  return t;
}

function randomFill(shape: Shape, opts: RandomOptions, op: string, draw: (g: Generator) => number): Tensor {
  const dtype = opts.dtype ?? getDefaultDtype();
  if (dtype !== "float32" && dtype !== "float64")
    throw new Error(`${op}: dtype must be float32 or float64, got ${dtype}`);
  const t = Tensor.empty(checkShape(shape, op), dtype);
  const g = opts.generator ?? defaultGenerator;
  for (let i = 0; i < t.numel; i++) t.data[i] = draw(g);
  return finish(t, opts);
}

// The largest float32 below 1: a 53-bit draw above it would round up to 1 in a Float32Array.
const BELOW_ONE_F32 = 1 - 2 ** -24;
export const rand = (shape: Shape, opts: RandomOptions = {}) =>
  randomFill(
    shape,
    opts,
    "rand",
    (opts.dtype ?? getDefaultDtype()) === "float32" ? (g) => Math.min(g.random(), BELOW_ONE_F32) : (g) => g.random(),
  );
export const randn = (shape: Shape, opts: RandomOptions = {}) => randomFill(shape, opts, "randn", (g) => g.normal());
export const randLike = (t: Tensor, opts: RandomOptions = {}) => rand(t.shape, { dtype: t.dtype, ...opts });
export const randnLike = (t: Tensor, opts: RandomOptions = {}) => randn(t.shape, { dtype: t.dtype, ...opts });

/** Integers uniform in [low, high), int32 by default. */
export function randint(low: number, high: number, shape: Shape, opts: RandomOptions = {}): Tensor {
  if (!(high > low)) throw new Error(`randint: expected low < high, got low=${low}, high=${high}`);
  const t = Tensor.empty(checkShape(shape, "randint"), opts.dtype ?? "int32");
  const g = opts.generator ?? defaultGenerator;
  for (let i = 0; i < t.numel; i++) t.data[i] = g.integer(low, high);
  return t;
}

/** A random permutation of 0..n-1 (Fisher-Yates), int32. */
export function randperm(n: number, opts: RandomOptions = {}): Tensor {
  const g = opts.generator ?? defaultGenerator;
  const arr = new Int32Array(n);
  for (let i = 0; i < n; i++) arr[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = g.integer(0, i + 1);
    const tmp = arr[i]!;
    arr[i] = arr[j]!;
    arr[j] = tmp;
  }
  return new Tensor(arr, [n]);
}
