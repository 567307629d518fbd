// The loss of sequence models (language models): logits [N, T, V] with the classes LAST, against
// int32 targets [N, T]. It is PyTorch's `F.cross_entropy(logits.view(-1, V), y.view(-1))`: every
// one of the N·T positions is a sample of its own, so the mean is over positions and the trainer's
// global denominator is the batch's token count.
import { type Tensor, nn } from "@threadgrad/core";
import type { LossSpec, ModelSpec } from "./spec.js";

/**
 * Cross-entropy of logits [N, T, V] against targets [N, T] (class indices), over all N·T positions.
 * @example sequenceCrossEntropy(model.forward(ids), nextIds) // mean nats per token
 */
export function sequenceCrossEntropy(
  logits: Tensor,
  targets: Tensor,
  opts: { reduction?: "mean" | "sum" } = {},
): Tensor {
  if (logits.ndim !== 3) {
    throw new Error(
      `sequenceCrossEntropy: the model's output must be logits [N, T, vocab], got [${logits.shape.join(", ")}]`,
    );
  }
  const [n, t, v] = logits.shape as [number, number, number];
  // [N, 1] targets arrive as [N] when every sample holds one token: the count is what must match.
  if (targets.numel !== n * t || targets.shape[0] !== n) {
    throw new Error(
      `sequenceCrossEntropy: targets [${targets.shape.join(", ")}] do not match logits [${n}, ${t}, ${v}]; ` +
        `expected one target per position: [${n}, ${t}]`,
    );
  }
  return nn.F.crossEntropy(logits.reshape([n * t, v]), targets.reshape([n * t]), {
    reduction: opts.reduction ?? "mean",
  });
}

/** Whether the loss takes one class index per token of each sample (targets [N, T]). */
export const isSequenceLoss = (loss: LossSpec): boolean => loss === "sequenceCrossEntropy";

/**
 * The loss a model gets when none is given: a language model's (`kind: "gpt"`, whose forward
 * returns logits [N, T, vocab]) is the sequence cross-entropy, any other's the cross-entropy.
 */
export function defaultLoss(model: ModelSpec): LossSpec {
  return tokenModel(model) === null ? "crossEntropy" : "sequenceCrossEntropy";
}

/** A built-in language model's sizes (vocabulary and context), or null for any other model. */
export function tokenModel(model: ModelSpec): { vocab: number; context: number } | null {
  const spec = model as { kind?: unknown; vocab?: unknown; context?: unknown };
  if (spec.kind !== "gpt") return null;
  return { vocab: Number(spec.vocab), context: Number(spec.context) };
}
