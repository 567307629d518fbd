import type { Tensor } from "../tensor/tensor.js";
import { fmtShape } from "../tensor/shape.js";
import { add, mul, relu, sigmoid, tanh, softplus, where } from "../ops/elementwise.js";
import { gelu, softmax, logSoftmax } from "../ops/composite.js";
import { linear as fusedLinear, mm } from "../ops/linalg.js";
import { indexSelect } from "../ops/indexing.js";
import { reshape } from "../ops/shape.js";
import { dropoutMask } from "../ops/dropout.js";
import { layerNormalize } from "../ops/layer-norm.js";

export * from "../losses/losses.js";
export { conv1d, conv2d, type Conv1dOptions, type Conv2dOptions, type ConvPadding } from "../ops/conv.js";
export {
  maxPool2d,
  avgPool2d,
  adaptiveAvgPool2d,
  type MaxPool2dOptions,
  type AvgPool2dOptions,
} from "../ops/pool.js";
export { batchNorm, groupNorm, type BatchNormOptions } from "../ops/norm.js";
export { relu, sigmoid, tanh, softplus, gelu, softmax, logSoftmax };
export { scaledDotProductAttention, type AttentionOptions } from "../ops/attention.js";
export { packedSelfAttention, type PackedAttentionOptions } from "../ops/packed-attention.js";

/** x·Wᵀ + b for x of shape [..., in]; W is [out, in]. Uses a transposed matmul, never a copy of W. */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  const inF = weight.shape[1]!;
  if (x.shape[x.ndim - 1] !== inF) {
    throw new Error(
      `linear: input has ${x.shape[x.ndim - 1]} features but the weight ${fmtShape(weight.shape)} expects ${inF} ` +
        `(input shape ${fmtShape(x.shape)})`,
    );
  }
  const flat = x.ndim === 2 ? x : reshape(x, [-1, inF]);
  const y = bias ? fusedLinear(flat, weight, bias) : mm(flat, weight, false, true);
  return x.ndim === 2 ? y : reshape(y, [...x.shape.slice(0, -1), weight.shape[0]!]);
}

/** Inverted dropout: zeroes elements with probability p and scales the rest by 1/(1-p) (see dropoutMask). */
export function dropout(x: Tensor, p = 0.5, training = true): Tensor {
  if (!(p >= 0 && p <= 1)) throw new Error(`dropout: probability has to be between 0 and 1, but got ${p}`);
  if (!training || p === 0) return x;
  return mul(x, dropoutMask(x.shape, x.dtype === "float64" ? "float64" : "float32", p));
}

/**
 * Rows of `weight` at `indices`. As in PyTorch, rows looked up at `paddingIdx` (which may be
 * negative, counted from the end) are returned as they are but pass no gradient to the weight.
 */
export function embedding(indices: Tensor, weight: Tensor, paddingIdx: number | null = null): Tensor {
  if (indices.dtype !== "int32") throw new Error(`embedding: indices must be int32, got ${indices.dtype}`);
  const flat = reshape(indices, [-1]);
  let out = indexSelect(weight, 0, flat);
  if (paddingIdx !== null) {
    const pad = paddingIdx < 0 ? paddingIdx + weight.shape[0]! : paddingIdx;
    out = where(reshape(flat.ne(pad), [-1, 1]), out, out.detach());
  }
  return reshape(out, [...indices.shape, weight.shape[1]!]);
}

export function layerNorm(
  x: Tensor,
  normalizedShape: readonly number[],
  weight: Tensor | null = null,
  bias: Tensor | null = null,
  eps = 1e-5,
): Tensor {
  const k = normalizedShape.length;
  const tail = x.shape.slice(x.ndim - k);
  if (tail.join() !== normalizedShape.join()) {
    throw new Error(
      `layerNorm: input shape ${fmtShape(x.shape)} does not end with normalizedShape ${fmtShape(normalizedShape)}`,
    );
  }
  let y = layerNormalize(x, k, eps);
  if (weight) y = mul(y, weight);
  if (bias) y = add(y, bias);
  return y;
}
