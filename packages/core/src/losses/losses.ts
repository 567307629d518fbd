import { fmtShape, shapeEq } from "../tensor/shape.js";
import { Tensor } from "../tensor/tensor.js";
import { abs, mul, neg, softplus, sub, where } from "../ops/elementwise.js";
import { gather } from "../ops/indexing.js";
import { logSoftmax } from "../ops/composite.js";
import { sum } from "../ops/reduce.js";
import { permute, reshape } from "../ops/shape.js";

// Loss functions follow the formulas of PyTorch's documentation; each is composed of
// differentiable ops, so gradients of any order come for free.

export type Reduction = "mean" | "sum" | "none";

function reduce(l: Tensor, reduction: Reduction, op: string): Tensor {
  switch (reduction) {
    case "mean":
      return l.mean();
    case "sum":
      return sum(l);
    case "none":
      return l;
    default:
      throw new Error(`${op}: reduction must be 'mean', 'sum' or 'none', got '${String(reduction)}'`);
  }
}

function sameShape(input: Tensor, target: Tensor, op: string): void {
  if (!shapeEq(input.shape, target.shape)) {
    throw new Error(
      `${op}: input shape ${fmtShape(input.shape)} and target shape ${fmtShape(target.shape)} differ; ` +
        "reshape one so they match",
    );
  }
}

export const mseLoss = (input: Tensor, target: Tensor, opts: { reduction?: Reduction } = {}): Tensor => {
  sameShape(input, target, "mseLoss");
  const d = sub(input, target);
  return reduce(mul(d, d), opts.reduction ?? "mean", "mseLoss");
};

export const l1Loss = (input: Tensor, target: Tensor, opts: { reduction?: Reduction } = {}): Tensor => {
  sameShape(input, target, "l1Loss");
  return reduce(abs(sub(input, target)), opts.reduction ?? "mean", "l1Loss");
};

/** 0.5·d² where |d| < delta, else delta·(|d| - 0.5·delta). */
export const huberLoss = (
  input: Tensor,
  target: Tensor,
  opts: { reduction?: Reduction; delta?: number } = {},
): Tensor => {
  sameShape(input, target, "huberLoss");
  const delta = opts.delta ?? 1;
  if (!(delta > 0)) throw new Error(`huberLoss: delta must be > 0, got ${delta}`);
  const d = sub(input, target),
    a = abs(d);
  return reduce(
    where(a.lt(delta), mul(mul(d, d), 0.5), mul(sub(a, 0.5 * delta), delta)),
    opts.reduction ?? "mean",
    "huberLoss",
  );
};

/** 0.5·d²/beta where |d| < beta, else |d| - 0.5·beta. */
export const smoothL1Loss = (
  input: Tensor,
  target: Tensor,
  opts: { reduction?: Reduction; beta?: number } = {},
): Tensor => {
  sameShape(input, target, "smoothL1Loss");
  const beta = opts.beta ?? 1;
  if (beta < 0) throw new Error(`smoothL1Loss: beta must be >= 0, got ${beta}`);
  const d = sub(input, target),
    a = abs(d);
  if (beta === 0) return reduce(a, opts.reduction ?? "mean", "smoothL1Loss");
  return reduce(
    where(a.lt(beta), mul(mul(d, d), 0.5 / beta), sub(a, 0.5 * beta)),
    opts.reduction ?? "mean",
    "smoothL1Loss",
  );
};

/**
 * -w·[posWeight·y·log σ(x) + (1-y)·log(1-σ(x))], computed stably as
 * (1-y)·x + (1 + (posWeight-1)·y)·softplus(-x).
 */
export const binaryCrossEntropyWithLogits = (
  input: Tensor,
  target: Tensor,
  opts: { reduction?: Reduction; weight?: Tensor; posWeight?: Tensor } = {},
): Tensor => {
  sameShape(input, target, "binaryCrossEntropyWithLogits");
  const sp = softplus(neg(input));
  const coef = opts.posWeight ? mul(target, sub(opts.posWeight, 1)).add(1) : null;
  let l = mul(sub(1, target), input).add(coef ? mul(coef, sp) : sp);
  if (opts.weight) l = mul(l, opts.weight);
  return reduce(l, opts.reduction ?? "mean", "binaryCrossEntropyWithLogits");
};

export interface NllOptions {
  weight?: Tensor;
  ignoreIndex?: number;
  reduction?: Reduction;
}

/** Moves the class dim of [N, C, d1, ...] last and flattens: returns [M, C] and the target as [M]. */
function flattenClasses(
  input: Tensor,
  target: Tensor,
  op: string,
): { x: Tensor; t: Tensor; targetShape: readonly number[] } {
  if (input.ndim === 1)
    return { x: reshape(input, [1, input.shape[0]!]), t: reshape(target, [1]), targetShape: target.shape };
  if (input.ndim < 1)
    throw new Error(`${op}: input must have at least 1 dimension, got shape ${fmtShape(input.shape)}`);
  const c = input.shape[1]!;
  const expected = [input.shape[0]!, ...input.shape.slice(2)];
  if (target.dtype === "int32" && !shapeEq(target.shape, expected)) {
    throw new Error(
      `${op}: expected target of shape ${fmtShape(expected)} for input of shape ${fmtShape(input.shape)}, ` +
        `got ${fmtShape(target.shape)}`,
    );
  }
  if (input.ndim === 2) return { x: input, t: target, targetShape: target.shape };
  const dims = [0, ...input.shape.slice(2).map((_, i) => i + 2), 1];
  return { x: reshape(permute(input, dims), [-1, c]), t: reshape(target, [-1]), targetShape: target.shape };
}

/** Per-sample weights w[target] (0 where ignored) and a gather-safe copy of the targets. */
function sampleWeights(
  t: Tensor,
  classes: number,
  weight: Tensor | undefined,
  ignoreIndex: number,
  op: string,
  dtype: "float32" | "float64",
) {
  const safe = new Int32Array(t.numel);
  const w = dtype === "float64" ? new Float64Array(t.numel) : new Float32Array(t.numel);
  let ignored = 0;
  for (let i = 0; i < t.numel; i++) {
    const c = t.data[i]!;
    if (c === ignoreIndex) {
      ignored++;
      continue;
    }
    if (c < 0 || c >= classes || !Number.isInteger(c)) {
      throw new Error(`${op}: target ${c} at position ${i} is out of bounds for ${classes} classes`);
    }
    safe[i] = c;
    w[i] = weight ? Number(weight.data[c]) : 1;
  }
  // Every weight 1: the losses need no multiplication and the mean divides by the count.
  return { safe: new Tensor(safe, [t.numel, 1]), w: new Tensor(w, [t.numel]), unit: !weight && ignored === 0 };
}

function checkWeight(weight: Tensor | undefined, classes: number, op: string): void {
  if (weight && (weight.ndim !== 1 || weight.shape[0] !== classes)) {
    throw new Error(
      `${op}: weight should be a 1-D tensor of ${classes} class weights, got shape ${fmtShape(weight.shape)}`,
    );
  }
}

/** Negative log-likelihood of log-probabilities `input` [N, C, ...] at class indices `target`. */
export function nllLoss(input: Tensor, target: Tensor, opts: NllOptions = {}): Tensor {
  return nllCore(input, target, opts, "nllLoss").loss;
}

function nllCore(input: Tensor, target: Tensor, opts: NllOptions, op: string) {
  if (target.dtype !== "int32") throw new Error(`${op}: target must hold int32 class indices, got ${target.dtype}`);
  const { x, t, targetShape } = flattenClasses(input, target, op);
  const classes = x.shape[1]!;
  checkWeight(opts.weight, classes, op);
  const { safe, w, unit } = sampleWeights(
    t,
    classes,
    opts.weight,
    opts.ignoreIndex ?? -100,
    op,
    x.dtype === "float64" ? "float64" : "float32",
  );
  const picked = reshape(gather(x, 1, safe), [t.numel]);
  const l = neg(unit ? picked : mul(picked, w));
  const reduction = opts.reduction ?? "mean";
  const loss =
    reduction === "none"
      ? reshape(l, targetShape)
      : reduction === "sum"
        ? sum(l)
        : reduction === "mean"
          ? sum(l).div(unit ? t.numel : sum(w))
          : reduce(l, reduction, op);
  return { loss };
}

export interface CrossEntropyOptions extends NllOptions {
  labelSmoothing?: number;
}

/**
 * Cross-entropy from logits `input` [N, C, ...] with class indices (int32) or class probabilities
 * (float, same shape as input) as target; `weight`, `ignoreIndex`, `labelSmoothing` and
 * `reduction` as in PyTorch. With indices and reduction 'mean' it divides by the summed weights of
 * the non-ignored targets.
 */
export function crossEntropy(input: Tensor, target: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  const eps = opts.labelSmoothing ?? 0;
  if (!(eps >= 0 && eps <= 1)) throw new Error(`crossEntropy: labelSmoothing must be in [0, 1], got ${eps}`);
  const classDim = input.ndim === 1 ? 0 : 1;
  const logp = logSoftmax(input, classDim);
  const reduction = opts.reduction ?? "mean";
  const classes = input.shape[classDim]!;
  if (target.dtype !== "int32") return softTargets(logp, target, opts, eps, classes, classDim);
  const { loss: nll } = nllCore(logp, target, opts, "crossEntropy");
  if (eps === 0) return nll;
  // Smoothing term: -Σ_c w_c·log p_c per sample, zero where the target is ignored.
  const { x, t } = flattenClasses(logp, target, "crossEntropy");
  const perClass = opts.weight ? mul(x, reshape(opts.weight, [1, classes])) : x;
  const { w } = sampleWeights(
    t,
    classes,
    opts.weight,
    opts.ignoreIndex ?? -100,
    "crossEntropy",
    x.dtype === "float64" ? "float64" : "float32",
  );
  const valid = t.ne(opts.ignoreIndex ?? -100).to(x.dtype);
  const smooth = mul(neg(sum(perClass, 1)), valid);
  const ret =
    reduction === "none"
      ? reshape(smooth, target.shape)
      : reduction === "sum"
        ? sum(smooth)
        : sum(smooth).div(opts.weight ? sum(w) : sum(valid));
  return mul(nll, 1 - eps).add(mul(ret, eps / classes));
}

function softTargets(
  logp: Tensor,
  target: Tensor,
  opts: CrossEntropyOptions,
  eps: number,
  classes: number,
  classDim: number,
): Tensor {
  sameShape(logp, target, "crossEntropy");
  checkWeight(opts.weight, classes, "crossEntropy");
  const y = eps > 0 ? mul(target, 1 - eps).add(eps / classes) : target;
  let terms = mul(logp, y);
  if (opts.weight) {
    const shape = logp.shape.map((d, i) => (i === classDim ? d : 1));
    terms = mul(terms, reshape(opts.weight, shape));
  }
  const l = neg(sum(terms, classDim));
  const reduction = opts.reduction ?? "mean";
  if (reduction === "mean") return sum(l).div(l.numel === 0 ? 1 : l.numel);
  return reduce(l, reduction, "crossEntropy");
}
