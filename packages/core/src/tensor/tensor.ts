import type { Node } from "../autograd/node.js";
import { type DType, type TypedArray, arrayFor, dtypeOf, isFloat, stepRegionActive } from "./dtype.js";
import { type Shape, fmtShape, numelOf, stridesOf } from "./shape.js";

/** Brand shared by every copy of core loaded in a process (a user's model may bring its own). */
export const TENSOR_BRAND = Symbol.for("threadgrad.Tensor");

// biome-ignore lint/suspicious/noConfusingVoidType: a hook declared elsewhere as returning void must still fit
export type GradHook = (grad: Tensor) => Tensor | void;

/**
 * An n-dimensional array with autograd. Storage is always contiguous and row-major: `data` holds
 * exactly `numel` elements. Views that keep the element order (`reshape`, `view`, `squeeze`,
 * `unsqueeze`, `flatten`, `detach`) share `data`; the others (`transpose`, `narrow`, ...) copy.
 */
export class Tensor {
  readonly [TENSOR_BRAND] = true;
  private _data: TypedArray;
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** The node that produced this tensor; null for leaves. */
  gradFn: Node | null = null;
  /** Shared by all tensors over the same storage; bumped by every in-place change. */
  _version: { value: number };
  _hooks: GradHook[] | null = null;
  _retainsGrad = false;
  private _requiresGrad = false;
  private _grad: Tensor | null = null;
  private _gradBuffer: TypedArray | null = null;
  // True while the bound buffer holds the zeros `grad = null` wrote: the next accumulation can then
  // copy instead of add (0 + g is g), which saves a read of the buffer on every first backward.
  private _gradBufferZeroed = false;
  // `grad = null` on a bound buffer marks it zero without writing: the first accumulation copies
  // instead of adding, and `.grad` or `syncGrad()` write the zeros only if nothing else did.
  private _gradBufferStale = false;

  constructor(data: TypedArray, shape: Shape, version?: { value: number }) {
    if (data.length !== numelOf(shape)) {
      throw new Error(
        `tensor: ${data.length} values do not fill shape ${fmtShape(shape)} (${numelOf(shape)} elements)`,
      );
    }
    this._data = data;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtypeOf(data);
    this._version = version ?? { value: 0 };
  }

  /** The elements, row-major, exactly `numel` of them. */
  get data(): TypedArray {
    return this._data;
  }

  /**
   * Moves this tensor onto `array` (same dtype and length) without copying: how a trainer places a
   * model's parameters in shared memory after building it. The caller fills the array.
   */
  setStorage(array: TypedArray): void {
    if (array.length !== this._data.length || dtypeOf(array) !== this.dtype) {
      throw new Error(
        `setStorage: array holds ${array.length} ${dtypeOf(array)} values, tensor needs ${this.numel} ${this.dtype}`,
      );
    }
    this._data = array;
    this._bumpVersion();
  }

  get ndim(): number {
    return this.shape.length;
  }

  get numel(): number {
    return this.data.length;
  }

  get strides(): number[] {
    return stridesOf(this.shape);
  }

  size(dim?: number): number | readonly number[] {
    if (dim === undefined) return this.shape;
    return this.shape[dim < 0 ? dim + this.ndim : dim]!;
  }

  get isLeaf(): boolean {
    return this.gradFn === null;
  }

  get requiresGrad(): boolean {
    return this._requiresGrad;
  }

  set requiresGrad(flag: boolean) {
    if (!this.isLeaf && !flag) {
      throw new Error(
        "requiresGrad: you can only change requiresGrad of leaf tensors; " +
          "use detach() to get a tensor outside the graph",
      );
    }
    if (flag && !isFloat(this.dtype)) {
      throw new Error(`requiresGrad: only floating point tensors can require gradients, got ${this.dtype}`);
    }
    this._requiresGrad = flag;
  }

  /** Sets `requiresGrad` in place and returns this tensor, as PyTorch's `requires_grad_`. */
  requiresGrad_(flag = true): this {
    this.requiresGrad = flag;
    return this;
  }

  /** Marks the tensor as produced by `node`; used by ops only. */
  _setGradFn(node: Node): void {
    this.gradFn = node;
    this._requiresGrad = true;
  }

  /** Accumulated gradient of a leaf (or of a non-leaf after `retainGrad()`); null until backward. */
  get grad(): Tensor | null {
    if (this._gradBufferStale) this.syncGrad();
    return this._grad;
  }

  /**
   * Assigning keeps a bound gradient buffer attached: `null` zeroes it, a tensor is copied into it,
   * so a parameter can never silently drop the shared slice it accumulates into.
   */
  set grad(value: Tensor | null) {
    if (value !== null && !(value instanceof Tensor || isTensor(value))) {
      throw new Error("grad: expected a Tensor or null");
    }
    if (value !== null && value.shape.join() !== this.shape.join()) {
      throw new Error(
        `grad: assigned grad has shape ${fmtShape(value.shape)} but the tensor has shape ${fmtShape(this.shape)}`,
      );
    }
    if (this._gradBuffer !== null) {
      if (value !== null) this._gradBuffer.set(value.data);
      this._gradBufferZeroed = this._gradBufferStale = value === null;
      return;
    }
    this._grad = value;
  }

  /**
   * Binds this leaf's gradient to `buffer` (for example a view into shared memory): backward then
   * accumulates into it in place and `zeroGrad` fills it with zeros instead of dropping it. Whoever
   * else writes into the buffer must do so before zeroing it through `grad = null`, not after, and
   * code that reads the buffer directly (not through `.grad`) calls `syncGrad()` first: zeroing is
   * lazy, the next backward overwrites the buffer instead of adding to it.
   */
  bindGrad(buffer: TypedArray): void {
    if (buffer.length !== this.numel || dtypeOf(buffer) !== this.dtype) {
      throw new Error(
        `bindGrad: buffer holds ${buffer.length} ${dtypeOf(buffer)} values, tensor needs ${this.numel} ${this.dtype}`,
      );
    }
    this.syncGrad(); // the old buffer gets the zeros it was promised
    this._gradBuffer = buffer;
    this._gradBufferZeroed = this._gradBufferStale = false; // a new buffer holds what it holds
    this._grad = new Tensor(buffer, this.shape);
  }

  /** Writes the zeros a `grad = null` left pending into a bound gradient buffer (no-op otherwise). */
  syncGrad(): void {
    if (!this._gradBufferStale) return;
    this._gradBuffer!.fill(0);
    this._gradBufferStale = false;
  }

  get gradIsBound(): boolean {
    return this._gradBuffer !== null;
  }

  /** Keeps `.grad` for a non-leaf tensor after backward, as PyTorch's `retain_grad`. */
  retainGrad(): void {
    if (!this._requiresGrad) throw new Error("retainGrad: can't retain grad on a tensor that doesn't require grad");
    if (!this.isLeaf) this._retainsGrad = true;
  }

  /** Adds `g` to `.grad`: in place when there is one and no graph is being built. */
  _accumulateGrad(g: Tensor, keepGraph: boolean): void {
    if (keepGraph && (this._gradBuffer !== null || stepRegionActive())) {
      throw new Error(
        this._gradBuffer !== null
          ? "backward: createGraph cannot accumulate into a bound gradient buffer (it holds values, not a graph); " +
              "use grad(..., { createGraph: true }) instead"
          : "backward: createGraph inside a step region would leave .grad in memory freed after the step; " +
              "use grad(..., { createGraph: true }) instead",
      );
    }
    if (this._gradBuffer !== null) {
      const buf = this._gradBuffer;
      const src = g.data;
      if (this._gradBufferZeroed) buf.set(src);
      else for (let i = 0; i < buf.length; i++) buf[i]! += src[i]!;
      this._gradBufferZeroed = this._gradBufferStale = false;
      return;
    }
    if (this._grad === null) {
      // A fresh copy: the incoming gradient may be shared with another leaf or with the caller.
      // Keeping g itself is safe only when later accumulation is out of place (g has a graph).
      this._grad = keepGraph && g.requiresGrad ? g : new Tensor(g.data.slice(), g.shape);
    } else if (keepGraph || this._grad.requiresGrad) {
      if (stepRegionActive())
        throw new Error(
          "backward: .grad carries a graph (from an earlier createGraph); it cannot be extended inside a step region",
        );
      this._grad = (this._grad as Tensor & { add(o: Tensor): Tensor }).add(g);
    } else {
      const dst = this._grad.data;
      const src = g.data;
      for (let i = 0; i < dst.length; i++) dst[i]! += src[i]!;
    }
  }

  /** Calls `fn` with this tensor's gradient whenever one is computed; it may return a replacement. */
  registerHook(fn: GradHook): { remove(): void } {
    if (!this._requiresGrad)
      throw new Error("registerHook: cannot register a hook on a tensor that doesn't require gradient");
    this._hooks ??= [];
    this._hooks.push(fn);
    return {
      remove: () => {
        this._hooks = this._hooks?.filter((h) => h !== fn) ?? null;
      },
    };
  }

  /** Marks an in-place change: tensors saved for backward at an older version become unusable. */
  _bumpVersion(): void {
    this._version.value++;
  }

  /** A new tensor over the same storage, outside the graph. */
  detach(): Tensor {
    return new Tensor(this.data, this.shape, this._version);
  }

  /** Detaches in place. */
  detach_(): this {
    this.gradFn = null;
    this._requiresGrad = false;
    return this;
  }

  contiguous(): Tensor {
    return this;
  }

  isContiguous(): boolean {
    return true;
  }

  item(): number {
    if (this.numel !== 1) {
      throw new Error(`item: a tensor with ${this.numel} elements cannot be converted to a number`);
    }
    return Number(this.data[0]);
  }

  /** Nested arrays of numbers (booleans for bool tensors). */
  toArray(): unknown {
    const values = this.dtype === "bool" ? Array.from(this.data, (v) => v !== 0) : Array.from(this.data);
    if (this.ndim === 0) return values[0];
    const build = (dim: number, offset: number): unknown[] => {
      const n = this.shape[dim]!;
      const stride = this.strides[dim]!;
      const out: unknown[] = [];
      for (let i = 0; i < n; i++) {
        out.push(dim === this.ndim - 1 ? values[offset + i] : build(dim + 1, offset + i * stride));
      }
      return out;
    };
    return build(0, 0);
  }

  static empty(shape: Shape, dtype: DType): Tensor {
    return new Tensor(arrayFor(dtype, numelOf(shape)), shape);
  }
}

export function isTensor(value: unknown): value is Tensor {
  return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[TENSOR_BRAND] === true;
}
