import type { AnyArray, FloatArray, ParamLike } from "./types.js";

/** 2 (Euclidean), Infinity (max abs) or any other p > 0. */
export type NormType = number;

function checkNormType(owner: string, normType: number): void {
  if (!(normType > 0)) throw new Error(`${owner}: normType must be > 0 or Infinity, got ${normType}`);
}

/**
 * This slice's contribution to a gradient norm: Σg² for 2, max|g| for Infinity, Σ|g|^p otherwise.
 * Combine the slices' results with `combineNorms`. NaN propagates, so a bad gradient is not hidden.
 * @example combineNorms([partialNorm(g, 0, k, 2), partialNorm(g, k, n, 2)], 2)
 */
export function partialNorm(grads: FloatArray, start: number, end: number, normType: NormType = 2): number {
  checkNormType("partialNorm", normType);
  checkRange("partialNorm", grads, start, end);
  let acc = 0;
  if (normType === Infinity) {
    for (let i = start; i < end; i++) {
      const a = Math.abs(grads[i]!);
      if (a > acc || Number.isNaN(a)) acc = a;
    }
  } else if (normType === 2) {
    for (let i = start; i < end; i++) acc += grads[i]! * grads[i]!;
  } else if (normType === 1) {
    for (let i = start; i < end; i++) acc += Math.abs(grads[i]!);
  } else {
    for (let i = start; i < end; i++) acc += Math.abs(grads[i]!) ** normType;
  }
  return acc;
}

/** The total norm from per-slice `partialNorm` results. */
export function combineNorms(partials: readonly number[], normType: NormType = 2): number {
  checkNormType("combineNorms", normType);
  if (normType === Infinity) {
    let max = 0;
    for (const a of partials) if (a > max || Number.isNaN(a)) max = a;
    return max;
  }
  let sum = 0;
  for (const a of partials) sum += a;
  return normType === 2 ? Math.sqrt(sum) : normType === 1 ? sum : sum ** (1 / normType);
}

/** PyTorch's scale factor: maxNorm / (totalNorm + 1e-6), clamped to at most 1. */
export function clipCoef(totalNorm: number, maxNorm: number): number {
  return Math.min(maxNorm / (totalNorm + 1e-6), 1);
}

/** Multiplies `grads[start, end)` by `coef` in place. */
export function scaleRange(grads: FloatArray, start: number, end: number, coef: number): void {
  checkRange("scaleRange", grads, start, end);
  for (let i = start; i < end; i++) grads[i]! *= coef;
}

function checkRange(owner: string, grads: FloatArray, start: number, end: number): void {
  if (!(Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start <= end && end <= grads.length)) {
    throw new Error(`${owner}: range [${start}, ${end}) is not inside grads of length ${grads.length}`);
  }
}

/** Options of `clipGradNorm`. */
export interface ClipGradNormOptions {
  normType?: NormType;
  errorIfNonfinite?: boolean;
}

/**
 * Scales all gradients together so their total norm is at most `maxNorm`; returns the norm before
 * clipping (torch.nn.utils.clip_grad_norm_). Parameters without a gradient are skipped.
 * @example const norm = clipGradNorm(params, 1.0);
 */
export function clipGradNorm(
  params: readonly ParamLike[],
  maxNorm: number,
  { normType = 2, errorIfNonfinite = false }: ClipGradNormOptions = {},
): number {
  if (!(maxNorm >= 0)) throw new Error(`clipGradNorm: maxNorm must be >= 0, got ${maxNorm}`);
  checkNormType("clipGradNorm", normType);
  const grads = params.flatMap((p) => (p.grad === null ? [] : [floatGrad(p.grad.data, "clipGradNorm")]));
  const total = combineNorms(
    grads.map((g) => partialNorm(g, 0, g.length, normType)),
    normType,
  );
  if (errorIfNonfinite && !Number.isFinite(total)) {
    throw new Error(
      `clipGradNorm: the total norm of order ${normType} of the gradients is ${total}, so it cannot be clipped; ` +
        "pass errorIfNonfinite: false to clip anyway",
    );
  }
  const coef = clipCoef(total, maxNorm);
  // Multiplying by exactly 1 changes nothing, so the common unclipped case skips the pass.
  if (coef !== 1) for (const g of grads) scaleRange(g, 0, g.length, coef);
  return total;
}

function floatGrad(a: AnyArray, owner: string): FloatArray {
  if (a instanceof Float32Array || a instanceof Float64Array) return a;
  throw new Error(`${owner}: a gradient holds ${a.constructor.name} values, not floats`);
}

/**
 * Clamps every gradient element to [-clipValue, clipValue] in place (torch.nn.utils.clip_grad_value_).
 * @example clipGradValue(params, 0.5);
 */
export function clipGradValue(params: readonly ParamLike[], clipValue: number): void {
  if (!(clipValue >= 0)) throw new Error(`clipGradValue: clipValue must be >= 0, got ${clipValue}`);
  for (const p of params) {
    if (p.grad === null) continue;
    const g = p.grad.data;
    for (let i = 0; i < g.length; i++) {
      const v = g[i]!;
      if (v > clipValue) g[i] = clipValue;
      else if (v < -clipValue) g[i] = -clipValue;
    }
  }
}
