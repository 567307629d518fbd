import { normDims } from "../tensor/shape.js";
import type { Tensor } from "../tensor/tensor.js";
import { abs, div, mul, pow, sqrt, sub, where } from "./elementwise.js";
import { defineOp, record } from "./op.js";
import { noGrad } from "../autograd/grad-mode.js";
import { reshape } from "./shape.js";
import { type Dims, max, mean, sum } from "./reduce.js";

// Composites are built from primitives, so their gradients (of any order) come for free.

// GELU is a fused op with fused backward and double backward (gelu.ts).
export { gelu } from "./gelu.js";
export { logSoftmax, softmax } from "./softmax.js";

/** Variance with Bessel's `correction` (1 by default, as in PyTorch). */
export const variance = defineOp(
  "var",
  (x: Tensor, dims?: Dims, opts: { correction?: number; keepdim?: boolean } = {}): Tensor => {
    const d = normDims(dims, x.ndim, "var");
    const n = d.reduce((a, i) => a * x.shape[i]!, 1);
    const centred = sub(x, mean(x, d, true));
    return div(sum(mul(centred, centred), d, opts.keepdim ?? false), Math.max(0, n - (opts.correction ?? 1)));
  },
);

export const std = defineOp(
  "std",
  (x: Tensor, dims?: Dims, opts: { correction?: number; keepdim?: boolean } = {}): Tensor =>
    sqrt(variance(x, dims, opts)),
);

/** Vector p-norm over `dims` (all by default): p = 2, 1, Infinity or any positive number. */
export const norm = defineOp("norm", (x: Tensor, p = 2, dims?: Dims, keepdim = false): Tensor => {
  if (p === Infinity) return max(abs(x), dims, keepdim);
  if (p === 2) return norm2(x, dims, keepdim);
  if (p === 1) return sum(abs(x), dims, keepdim);
  if (!(p > 0)) throw new Error(`norm: p must be positive, got ${p}`);
  return pow(sum(pow(abs(x), p), dims, keepdim), 1 / p);
});

/**
 * The 2-norm with its own backward, g·x/‖x‖, taken as 0 where ‖x‖ = 0 (as PyTorch does; through
 * sqrt it would be ∞·0 = NaN, exactly where gradient penalties push the gradient).
 */
const norm2 = defineOp("norm2", (x: Tensor, dims?: Dims, keepdim = false): Tensor => {
  const d = normDims(dims, x.ndim, "norm");
  const out = noGrad(() => sqrt(sum(mul(x, x), d, keepdim)));
  return record(
    out,
    "norm2",
    [x],
    (g) => {
      const kept = x.shape.map((s, i) => (d.includes(i) ? 1 : s));
      const n = reshape(out, kept);
      const safe = where(n.eq(0), 1, n);
      return [where(n.eq(0), 0, mul(reshape(g, kept), div(x, safe)))];
    },
    [x, out],
  );
});
