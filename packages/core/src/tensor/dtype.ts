/** Element types a tensor can hold. `bool` is stored as one byte per element. */
export type DType = "float32" | "float64" | "int32" | "bool";
export type FloatDType = "float32" | "float64";
export type TypedArray = Float32Array | Float64Array | Int32Array | Uint8Array;
export type FloatArray = Float32Array | Float64Array;

/**
 * Smallest positive normal float32 (2^-126). Float32 results and float32 optimizer state with
 * |v| < FLT_MIN are stored as zero: subnormal floats take x86's slow microcode path, tens of times
 * slower per operation. Every backend that writes the same arrays must use this same threshold.
 */
export const FLT_MIN = 1.1754943508222875e-38;

const RANK: Record<DType, number> = { bool: 0, int32: 1, float32: 2, float64: 3 };

let defaultDtype: FloatDType = "float32";

/** Sets the floating dtype used for new float tensors, as `torch.set_default_dtype`. */
export function setDefaultDtype(dtype: FloatDType): void {
  if (dtype !== "float32" && dtype !== "float64") {
    throw new Error(`setDefaultDtype: only float32 or float64, got ${String(dtype)}`);
  }
  defaultDtype = dtype;
}

export function getDefaultDtype(): FloatDType {
  return defaultDtype;
}

export function isFloat(dtype: DType): dtype is FloatDType {
  return dtype === "float32" || dtype === "float64";
}

/** PyTorch's promotion between two tensors of the same category order: bool < int < float32 < float64. */
export function promoteTypes(a: DType, b: DType): DType {
  return RANK[a] >= RANK[b] ? a : b;
}

const category = (d: DType): number => (d === "bool" ? 0 : d === "int32" ? 1 : 2);

/**
 * Result dtype of a binary op, with PyTorch's rule for 0-d tensors: a 0-d operand facing one with
 * dimensions behaves like a Python scalar and only lifts the category (bool -> int -> float), never
 * the width (float32[3] + float64 0-d is float32).
 */
export function resultType(a: { dtype: DType; ndim: number }, b: { dtype: DType; ndim: number }): DType {
  if ((a.ndim === 0) === (b.ndim === 0)) return promoteTypes(a.dtype, b.dtype);
  const [dim, zero] = a.ndim === 0 ? [b.dtype, a.dtype] : [a.dtype, b.dtype];
  if (category(zero) <= category(dim)) return dim;
  return category(zero) === 2 ? defaultDtype : "int32";
}

/**
 * Result dtype of a tensor combined with a plain JavaScript number. As in PyTorch, a scalar only
 * lifts the category (bool -> int -> float), never the width within floats.
 */
export function promoteWithScalar(t: DType, value: number | boolean): DType {
  if (typeof value === "boolean") return t;
  if (isFloat(t)) return t;
  if (!Number.isInteger(value)) return defaultDtype;
  return t === "bool" ? "int32" : t;
}

/**
 * Where new tensor storage comes from while a step region is active (see kernels/wasm/step-region.ts):
 * returns an array of `n` elements, zero-filled when `zeroed`, or null to use the JavaScript heap.
 */
export type StepAllocator = (dtype: DType, n: number, zeroed: boolean) => TypedArray | null;
let stepAllocator: StepAllocator | null = null;

/** True while a step region's allocator is installed. */
export const stepRegionActive = (): boolean => stepAllocator !== null;

/** Installs (or with null removes) the step allocator; returns the previous one. */
export function setStepAllocator(fn: StepAllocator | null): StepAllocator | null {
  const previous = stepAllocator;
  stepAllocator = fn;
  return previous;
}

/**
 * Storage for `n` elements of `dtype`. `zeroed: false` is for callers that overwrite every
 * element: inside a step region it skips the zero fill.
 */
export function arrayFor(dtype: DType, n: number, zeroed = true): TypedArray {
  if (stepAllocator !== null) {
    const a = stepAllocator(dtype, n, zeroed);
    if (a !== null) return a;
  }
  switch (dtype) {
    case "float32":
      return new Float32Array(n);
    case "float64":
      return new Float64Array(n);
    case "int32":
      return new Int32Array(n);
    case "bool":
      return new Uint8Array(n);
  }
}

export function dtypeOf(array: TypedArray): DType {
  if (array instanceof Float32Array) return "float32";
  if (array instanceof Float64Array) return "float64";
  if (array instanceof Int32Array) return "int32";
  if (array instanceof Uint8Array) return "bool";
  throw new Error(`tensor: unsupported typed array ${Object.prototype.toString.call(array)}`);
}

export function checkDtype(dtype: string): DType {
  if (dtype === "float32" || dtype === "float64" || dtype === "int32" || dtype === "bool") return dtype;
  throw new Error(`tensor: unknown dtype '${dtype}' (expected float32, float64, int32 or bool)`);
}
