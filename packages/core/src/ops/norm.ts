import { noGrad } from "../autograd/grad-mode.js";
import { arrayFor, isFloat } from "../tensor/dtype.js";
import { fmtShape } from "../tensor/shape.js";
import { Tensor } from "../tensor/tensor.js";
import { add, div, mul, sqrt, sub, to } from "./elementwise.js";
import { record } from "./op.js";
import { mean, sum } from "./reduce.js";
import { reshape } from "./shape.js";

// Batch and group normalisation composed from differentiable ops (mean, sub, mul, div, sqrt), so
// gradients of every order come for free. Variance is the biased one, Σ(x - μ)²/n, as PyTorch
// normalises with; the running variance is updated with the unbiased one, Σ(x - μ)²/(n - 1).

export interface BatchNormOptions {
  /** Normalise with the batch's statistics and update the running ones (default false: use them). */
  training?: boolean;
  /** running = (1 - momentum)·running + momentum·batch. */
  momentum?: number;
  eps?: number;
}

/** A per-channel tensor [C] shaped to broadcast against x [N, C, ...]: [C, 1, ..., 1]. */
function perChannel(t: Tensor, x: Tensor): Tensor {
  return reshape(t, [x.shape[1]!, ...x.shape.slice(2).map(() => 1)]);
}

function checkChannelTensor(t: Tensor | null, c: number, what: string, op: string): void {
  if (t !== null && (t.ndim !== 1 || t.shape[0] !== c)) {
    throw new Error(`${op}: ${what} must have shape [${c}] (one value per channel), got ${fmtShape(t.shape)}`);
  }
}

function affine(y: Tensor, x: Tensor, weight: Tensor | null, bias: Tensor | null): Tensor {
  let out = y;
  if (weight) out = mul(out, perChannel(weight, x));
  if (bias) out = add(out, perChannel(bias, x));
  return out;
}

/** Writes (1 - m)·running + m·value into `running` in place, outside autograd. */
function blend(running: Tensor, value: Tensor, m: number): void {
  noGrad(() => {
    const r = running.data,
      v = value.data;
    for (let i = 0; i < r.length; i++) r[i] = (1 - m) * r[i]! + m * v[i]!;
    running._bumpVersion();
  });
}

/**
 * How batch normalisation reaches the other replicas of a data-parallel model, so that training
 * normalises with the statistics of the global batch (synchronised batch norm). Core knows no
 * threads: the trainer installs one with `setBatchNormReducer` for the length of a step.
 */
export interface BatchNormReducer {
  /**
   * Sums `values` element by element over every replica, in place. Every replica calls it the same
   * number of times in the same order (the same model, forward and backward), and every replica
   * must get the same sums, bit for bit (a fixed order of replicas).
   */
  allReduce(values: Float64Array): void;
  /**
   * This replica's rows are padding: a replica with no samples in this step still runs the model
   * (on stand-in rows) so the others are not left waiting, and its rows count for nothing.
   */
  padding: boolean;
}

let reducer: BatchNormReducer | null = null;

/**
 * Installs (or, with null, removes) the reducer every training-mode `batchNorm` uses; returns the
 * previous one. With a reducer the batch mean and variance are those of all replicas' rows
 * together, the running statistics are updated with them (identically on every replica), and the
 * backward pass sums the matching gradient terms over the replicas (the reduction is itself an op
 * whose backward is the same reduction), so N replicas compute the gradient of the global batch.
 */
export function setBatchNormReducer(r: BatchNormReducer | null): BatchNormReducer | null {
  const previous = reducer;
  reducer = r;
  return previous;
}

/** `t` summed over the replicas; its gradient is the replicas' gradients summed the same way. */
function replicaSum(t: Tensor, r: BatchNormReducer): Tensor {
  const values = Float64Array.from(t.data as Float32Array | Float64Array);
  r.allReduce(values);
  const data = arrayFor(t.dtype, t.numel);
  data.set(values);
  return record(new Tensor(data, t.shape), "replicaSum", [t], (g) => [replicaSum(g, r)]);
}

/**
 * Batch statistics over every replica's rows: mean, x - mean and biased variance (the first and
 * last shaped [1, C, 1, ...]), and the global count of values per channel. Both sums go through the reducer, in float64 and replica
 * order; a padding replica multiplies its own by 0 (the same ops on every replica, so their
 * backward passes meet the reductions in the same order).
 */
function syncedStats(x: Tensor, dims: number[], n: number, r: BatchNormReducer): [Tensor, Tensor, Tensor, number] {
  const w = r.padding ? 0 : 1;
  const count = new Float64Array([w * n]);
  r.allReduce(count);
  const total = count[0]!;
  if (total <= 1) {
    throw new Error(
      `batchNorm: expected more than 1 value per channel when training, got ${total} over all replicas ` +
        `(this one's input is ${fmtShape(x.shape)})`,
    );
  }
  const mu = div(replicaSum(mul(sum(x, dims, true), w), r), total);
  const centred = sub(x, mu);
  const v = div(replicaSum(mul(sum(mul(centred, centred), dims, true), w), r), total);
  return [mu, centred, v, total];
}

/**
 * Batch normalisation of x [N, C, ...] per channel (over every dim but 1), as PyTorch's
 * F.batch_norm. Training: batch statistics, and the running ones (when given) updated in place;
 * otherwise the running statistics.
 * ```ts
 * const y = F.batchNorm(x, runningMean, runningVar, weight, bias, { training: true });
 * ```
 */
export function batchNorm(
  x: Tensor,
  runningMean: Tensor | null,
  runningVar: Tensor | null,
  weight: Tensor | null = null,
  bias: Tensor | null = null,
  opts: BatchNormOptions = {},
): Tensor {
  const { training = false, momentum = 0.1, eps = 1e-5 } = opts;
  if (x.ndim < 2)
    throw new Error(`batchNorm: expected an input [N, C, ...] of 2 or more dims, got ${fmtShape(x.shape)}`);
  if (!isFloat(x.dtype)) throw new Error(`batchNorm: expected a floating point input, got ${x.dtype}`);
  const c = x.shape[1]!;
  checkChannelTensor(runningMean, c, "runningMean", "batchNorm");
  checkChannelTensor(runningVar, c, "runningVar", "batchNorm");
  checkChannelTensor(weight, c, "weight", "batchNorm");
  checkChannelTensor(bias, c, "bias", "batchNorm");
  if ((runningMean === null) !== (runningVar === null)) {
    throw new Error("batchNorm: runningMean and runningVar must be given together (or both null)");
  }
  if (!(eps >= 0)) throw new Error(`batchNorm: eps must be >= 0, got ${eps}`);
  const dims = x.shape.map((_, i) => i).filter((i) => i !== 1);
  if (!training) {
    if (runningMean === null || runningVar === null) {
      throw new Error("batchNorm: running statistics are required when not training (pass training: true)");
    }
    const mu = perChannel(to(runningMean.detach(), x.dtype), x);
    const v = perChannel(to(runningVar.detach(), x.dtype), x);
    return affine(div(sub(x, mu), sqrt(add(v, eps))), x, weight, bias);
  }
  if (!(momentum >= 0 && momentum <= 1)) throw new Error(`batchNorm: momentum must be in [0, 1], got ${momentum}`);
  const sync = reducer;
  let n = x.numel / c;
  let mu: Tensor, centred: Tensor, v: Tensor;
  if (sync !== null) [mu, centred, v, n] = syncedStats(x, dims, n, sync);
  else {
    if (n <= 1) {
      throw new Error(
        `batchNorm: expected more than 1 value per channel when training, got input size ${fmtShape(x.shape)}`,
      );
    }
    mu = mean(x, dims, true);
    centred = sub(x, mu);
    v = mean(mul(centred, centred), dims, true);
  }
  if (runningMean !== null && runningVar !== null) {
    blend(runningMean, mu, momentum);
    blend(
      runningVar,
      noGrad(() => mul(v, n / (n - 1))),
      momentum,
    );
  }
  return affine(div(centred, sqrt(add(v, eps))), x, weight, bias);
}

/**
 * Group normalisation of x [N, C, ...]: the channels split into `numGroups` groups, each sample's
 * group normalised over its channels and positions, then a per-channel affine map (PyTorch's
 * F.group_norm).
 */
export function groupNorm(
  x: Tensor,
  numGroups: number,
  weight: Tensor | null = null,
  bias: Tensor | null = null,
  eps = 1e-5,
): Tensor {
  if (x.ndim < 2)
    throw new Error(`groupNorm: expected an input [N, C, ...] of 2 or more dims, got ${fmtShape(x.shape)}`);
  if (!isFloat(x.dtype)) throw new Error(`groupNorm: expected a floating point input, got ${x.dtype}`);
  const [n, c] = x.shape as [number, number];
  if (!(Number.isInteger(numGroups) && numGroups > 0 && c % numGroups === 0)) {
    throw new Error(
      `groupNorm: numGroups (${numGroups}) must be a positive integer that divides the channels of input ` +
        fmtShape(x.shape),
    );
  }
  checkChannelTensor(weight, c, "weight", "groupNorm");
  checkChannelTensor(bias, c, "bias", "groupNorm");
  if (x.numel === 0) return affine(x, x, weight, bias);
  const grouped = reshape(x, [n, numGroups, -1]);
  const centred = sub(grouped, mean(grouped, -1, true));
  const v = mean(mul(centred, centred), -1, true);
  return affine(reshape(div(centred, sqrt(add(v, eps))), x.shape), x, weight, bias);
}
