// Structural types so optim does not depend on core's Tensor while core is being written; core's
// Tensor satisfies ParamLike.

/** A contiguous float buffer: parameters, gradients and optimizer state all use one of these. */
export type FloatArray = Float32Array | Float64Array;

/**
 * Storage as a tensor library types it (core's `Tensor.data` may hold any dtype); the optimizers
 * check that parameters and gradients are float32 or float64 and refuse the rest.
 */
export type AnyArray = Float32Array | Float64Array | Int32Array | Uint8Array;

/** A gradient as the optimizer sees it: contiguous data plus a shape. */
export interface GradLike {
  data: AnyArray;
  shape: readonly number[];
}

/**
 * Anything with contiguous `data` and a settable `grad` can be optimized.
 * `gradIsBound` marks a gradient backed by a shared buffer: assigning `grad = null` to such a
 * parameter zeroes the buffer instead of dropping it (core's Tensor does this, lazily: reading
 * `.grad` writes the zeros, the next backward overwrites them), because the workers keep writing
 * into that exact memory; `zeroGrad` relies on it.
 */
export interface ParamLike {
  data: AnyArray;
  shape: readonly number[];
  grad: GradLike | null;
  gradIsBound?: boolean;
}

/** Names accepted by `createOptimizer`, `flatStep` and `stateBuffers`. */
export type OptimizerName = "adam" | "adamw" | "sgd" | "rmsprop" | "adagrad";

/** One per-parameter state buffer: its name in `stateDict` and the value it starts filled with. */
export interface StateBufferSpec {
  name: string;
  init: number;
}

/** Arguments of a flat update over the index range `[start, end)`. */
export interface FlatStepArgs {
  params: FloatArray;
  grads: FloatArray;
  /** One array per entry of the optimizer's state spec, in that order, each as long as `params`. */
  state: FloatArray[];
  start: number;
  end: number;
  /** 1-based count of steps taken so far, including this one. */
  step: number;
  /** Overrides the options' lr (the trainer publishes it per step from the scheduler). */
  lr?: number;
}
