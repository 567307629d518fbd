// What a run does to the data before the model sees it, fitted on the training split only and
// stored in every checkpoint so eval, predict and export apply the same: tabular features
// standardised per column, regression targets standardised, class labels mapped to 0..K-1 (the
// csv loader does that; the names are kept here). Image sets keep the loader's pixels / 255.
import type { DataSplit, Dataset } from "./types.js";

/** Per-feature affine map x -> (x - mean) / std. */
export interface Scaling {
  mean: number[];
  std: number[];
}

export interface Preprocess {
  /** Feature standardisation, or null: the loader's values as they are (images, --no-normalize). */
  features: Scaling | null;
  /** Regression target standardisation (training and outputs in these units); null for classification. */
  target: { mean: number; std: number } | null;
  /** Class names in index order; null for regression. */
  classes: string[] | null;
  /** csv: the feature columns by header name, in model input order; null for image sets. */
  featureNames: string[] | null;
  /** The name of the predicted column (csv: the target's header; images: "label"). */
  targetName: string;
}

/**
 * Mean and standard deviation (population) of each feature over the rows of a row-major table,
 * accumulated in float64; a constant column (std 0) gets std 1, so it maps to 0, not NaN.
 * @example fitScaling(Float32Array.of(1, 10, 3, 30), 2) // { mean: [2, 20], std: [1, 10] }
 */
export function fitScaling(x: Float32Array, features: number): Scaling {
  const rows = x.length / features;
  const mean = new Float64Array(features);
  const sq = new Float64Array(features);
  for (let r = 0; r < rows; r++) for (let j = 0; j < features; j++) mean[j]! += x[r * features + j]!;
  for (let j = 0; j < features; j++) mean[j]! /= Math.max(rows, 1);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < features; j++) {
      const d = x[r * features + j]! - mean[j]!;
      sq[j]! += d * d;
    }
  }
  const std = Array.from(sq, (s) => Math.sqrt(s / Math.max(rows, 1)));
  return { mean: Array.from(mean), std: std.map((s) => (s > 0 && Number.isFinite(s) ? s : 1)) };
}

/** Applies a scaling in place to a row-major table of `scaling.mean.length` features. */
export function applyScaling(x: Float32Array, s: Scaling): void {
  const features = s.mean.length;
  for (let i = 0; i < x.length; i++) x[i] = (x[i]! - s.mean[i % features]!) / s.std[i % features]!;
}

/**
 * The preprocessing a new run fits on its training split: features standardised when `normalize`
 * and the set is tabular (csv), regression targets always.
 */
export function fitPreprocess(train: Dataset, normalize: boolean): Preprocess {
  const isTabular = train.featureNames !== undefined;
  const target = train.task === "regression" ? fitScaling(train.y as Float32Array, 1) : null;
  return {
    features: normalize && isTabular ? fitScaling(train.x as Float32Array, train.features) : null,
    target: target && { mean: target.mean[0]!, std: target.std[0]! },
    classes:
      train.task === "classification"
        ? (train.classNames ?? Array.from({ length: train.numClasses }, (_, c) => String(c)))
        : null,
    featureNames: train.featureNames ?? null,
    targetName: train.targetName ?? "label",
  };
}

/** Applies `p` in place to a data set's features and, for regression, its targets. */
export function applyPreprocess(ds: Dataset, p: Preprocess): void {
  // Only tabular (float) features are ever scaled: token ids have no features preprocessing.
  if (p.features !== null) applyScaling(ds.x as Float32Array, p.features);
  if (p.target !== null && ds.task === "regression") {
    const { mean, std } = p.target;
    const y = ds.y as Float32Array;
    for (let i = 0; i < y.length; i++) y[i] = (y[i]! - mean) / std;
  }
}

/** Applies `p` to both halves of a split, in place. */
export function applyToSplit(split: DataSplit, p: Preprocess): void {
  applyPreprocess(split.train, p);
  applyPreprocess(split.test, p);
}

/** A model output in the target's original units (regression), from the standardised one. */
export function toTargetUnits(p: Preprocess, value: number): number {
  return p.target === null ? value : value * p.target.std + p.target.mean;
}

/** A mean squared error in the target's original units, from one in standardised units. */
export function mseInTargetUnits(p: Preprocess | null, mse: number): number {
  return p?.target ? mse * p.target.std * p.target.std : mse;
}
