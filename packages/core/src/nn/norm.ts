import { batchNorm, groupNorm } from "../ops/norm.js";
import { Tensor } from "../tensor/tensor.js";
import * as init from "./init.js";
import { pyFloat } from "./layers.js";
import { Module, Parameter } from "./module.js";
import { empty } from "./util.js";

export interface BatchNormModuleOptions {
  eps?: number;
  /** Weight of each batch in the running statistics; null: a cumulative average over all batches. */
  momentum?: number | null;
  /** A learned per-channel scale (ones) and shift (zeros). */
  affine?: boolean;
  /** Keep running statistics for evaluation; without them evaluation uses the batch's. */
  trackRunningStats?: boolean;
  dtype?: "float32" | "float64";
}

/**
 * Batch normalisation over the channels (dim 1), as PyTorch's BatchNorm. Buffers: `runningMean`
 * (zeros), `runningVar` (ones) and `numBatchesTracked` (an int32 scalar), updated in training mode
 * and used in evaluation mode (`eval()`).
 */
abstract class BatchNormNd extends Module {
  weight: Tensor | null;
  bias: Tensor | null;
  runningMean: Tensor | null = null;
  runningVar: Tensor | null = null;
  numBatchesTracked: Tensor | null = null;
  readonly eps: number;
  readonly momentum: number | null;
  readonly trackRunningStats: boolean;

  constructor(
    readonly numFeatures: number,
    opts: BatchNormModuleOptions = {},
  ) {
    super();
    const name = new.target.name;
    if (!(Number.isInteger(numFeatures) && numFeatures > 0)) {
      throw new Error(`${name}: numFeatures must be a positive integer, got ${numFeatures}`);
    }
    this.eps = opts.eps ?? 1e-5;
    this.momentum = opts.momentum === undefined ? 0.1 : opts.momentum;
    if (this.momentum !== null && !(this.momentum >= 0 && this.momentum <= 1)) {
      throw new Error(`${name}: momentum must be in [0, 1] or null, got ${this.momentum}`);
    }
    this.trackRunningStats = opts.trackRunningStats ?? true;
    const affine = opts.affine ?? true;
    this.weight = affine ? Parameter(init.ones_(empty([numFeatures], opts.dtype))) : null;
    this.bias = affine ? Parameter(init.zeros_(empty([numFeatures], opts.dtype))) : null;
    if (this.trackRunningStats) {
      this.registerBuffer("runningMean", init.zeros_(empty([numFeatures], opts.dtype)));
      this.registerBuffer("runningVar", init.ones_(empty([numFeatures], opts.dtype)));
      this.registerBuffer("numBatchesTracked", Tensor.empty([], "int32"));
    }
  }

  /** Throws unless x has the dims this layer takes. */
  protected abstract checkInput(x: Tensor): void;

  forward(x: Tensor): Tensor {
    this.checkInput(x);
    let factor = this.momentum ?? 0;
    if (this.training && this.trackRunningStats && this.numBatchesTracked !== null) {
      const count = this.numBatchesTracked;
      count.data[0] = count.data[0]! + 1;
      count._bumpVersion();
      if (this.momentum === null) factor = 1 / count.data[0]!;
    }
    // Batch statistics in training, and in evaluation when no running ones are kept.
    const useBatch = this.training || this.runningMean === null;
    const keepRunning = !this.training || this.trackRunningStats;
    return batchNorm(
      x,
      keepRunning ? this.runningMean : null,
      keepRunning ? this.runningVar : null,
      this.weight,
      this.bias,
      { training: useBatch, momentum: factor, eps: this.eps },
    );
  }

  override extraRepr(): string {
    const m = this.momentum === null ? "None" : pyFloat(this.momentum);
    const flag = (b: boolean) => (b ? "True" : "False");
    return (
      `${this.numFeatures}, eps=${pyFloat(this.eps)}, momentum=${m}, affine=${flag(this.weight !== null)}, ` +
      `track_running_stats=${flag(this.trackRunningStats)}`
    );
  }
}

/** Batch normalisation of [N, C] or [N, C, L] inputs. */
export class BatchNorm1d extends BatchNormNd {
  protected checkInput(x: Tensor): void {
    if (x.ndim !== 2 && x.ndim !== 3) throw new Error(`BatchNorm1d: expected 2D or 3D input (got ${x.ndim}D input)`);
    if (x.shape[1] !== this.numFeatures)
      throw new Error(`BatchNorm1d: expected ${this.numFeatures} channels in dim 1, got input [${x.shape.join(", ")}]`);
  }
}

/** Batch normalisation of [N, C, H, W] inputs. */
export class BatchNorm2d extends BatchNormNd {
  protected checkInput(x: Tensor): void {
    if (x.ndim !== 4) throw new Error(`BatchNorm2d: expected 4D input (got ${x.ndim}D input)`);
    if (x.shape[1] !== this.numFeatures)
      throw new Error(`BatchNorm2d: expected ${this.numFeatures} channels in dim 1, got input [${x.shape.join(", ")}]`);
  }
}

/** Group normalisation: channels in `numGroups` groups, each normalised per sample; no buffers. */
export class GroupNorm extends Module {
  weight: Tensor | null;
  bias: Tensor | null;
  constructor(
    readonly numGroups: number,
    readonly numChannels: number,
    readonly eps = 1e-5,
    opts: { affine?: boolean; dtype?: "float32" | "float64" } = {},
  ) {
    super();
    if (!(Number.isInteger(numGroups) && numGroups > 0 && Number.isInteger(numChannels) && numChannels > 0)) {
      throw new Error(
        `GroupNorm: numGroups and numChannels must be positive integers, got (${numGroups}, ${numChannels})`,
      );
    }
    if (numChannels % numGroups !== 0) {
      throw new Error(`GroupNorm: numChannels (${numChannels}) must be divisible by numGroups (${numGroups})`);
    }
    const affine = opts.affine ?? true;
    this.weight = affine ? Parameter(init.ones_(empty([numChannels], opts.dtype))) : null;
    this.bias = affine ? Parameter(init.zeros_(empty([numChannels], opts.dtype))) : null;
  }
  forward(x: Tensor): Tensor {
    return groupNorm(x, this.numGroups, this.weight, this.bias, this.eps);
  }
  override extraRepr(): string {
    return `${this.numGroups}, ${this.numChannels}, eps=${pyFloat(this.eps)}, affine=${this.weight ? "True" : "False"}`;
  }
}
