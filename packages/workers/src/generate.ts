// Sampling from a token model, one token at a time: the model sees the last `context` ids, the
// logits at the last position become the next id. Each draw comes from a counter-based generator
// keyed by (seed, index of the generated token), so a seed gives the same text on any machine.
import { CounterGenerator, type Tensor, noGrad, type nn, tensor } from "@threadgrad/core";

export interface GenerateOptions {
  /** how many ids to generate */
  tokens: number;
  /** logits are divided by it before the softmax (default 1); 0 = greedy: always the most likely id */
  temperature?: number;
  /** sample among the k most likely ids only (default: all) */
  topK?: number;
  /** seed of the draws (default 0) */
  seed?: number;
  /** longest input the model takes (default: the model's own `context` field, as a built-in gpt has) */
  context?: number;
  /** when given, the model must give this many logits per position (256 for bytes) */
  vocab?: number;
}

/** The options checked, with their defaults; the context from the options or the model. */
function checkOptions(model: nn.Module, opts: GenerateOptions): Required<Omit<GenerateOptions, "topK" | "vocab">> {
  const { tokens, temperature = 1, seed = 0 } = opts;
  const own = (model as unknown as { context?: unknown }).context;
  const context = opts.context ?? (typeof own === "number" ? own : undefined);
  if (!Number.isInteger(tokens) || tokens < 0)
    throw new Error(`generate: tokens must be a non-negative integer, got ${tokens}`);
  if (!(Number.isFinite(temperature) && temperature >= 0))
    throw new Error(`generate: temperature must be a finite number >= 0, got ${temperature}`);
  if (opts.topK !== undefined && !(Number.isInteger(opts.topK) && opts.topK >= 1))
    throw new Error(`generate: topK must be a positive integer, got ${opts.topK}`);
  if (!Number.isSafeInteger(seed)) throw new Error(`generate: seed must be an integer, got ${seed}`);
  if (context === undefined)
    throw new Error(
      "generate: give context (the longest input the model takes); the model has no numeric context field",
    );
  if (!(Number.isInteger(context) && context >= 1))
    throw new Error(`generate: context must be a positive integer, got ${context}`);
  return { tokens, temperature, seed, context };
}

/**
 * Ids the model generates after `promptIds`, yielded one at a time as each is drawn. A prompt
 * longer than the context is cut to its last `context` ids, and so is the growing text after it.
 * The model runs in eval mode, without recording gradients.
 * @example for (const id of generate(model, [72, 105], { tokens: 20, temperature: 0.8, topK: 40 })) ...
 */
export function* generate(model: nn.Module, promptIds: ArrayLike<number>, opts: GenerateOptions): Generator<number> {
  const { tokens, temperature, seed, context } = checkOptions(model, opts);
  const ids = Array.from(promptIds);
  if (ids.length === 0) throw new Error("generate: the prompt must hold at least one id");
  const bad = ids.findIndex((id) => !Number.isInteger(id) || id < 0 || id > 0x7fffffff);
  if (bad >= 0) throw new Error(`generate: prompt id ${bad} must be a non-negative integer, got ${ids[bad]}`);
  const draws = new CounterGenerator(seed);
  const wasTraining = model.training;
  model.eval();
  try {
    for (let i = 0; i < tokens; i++) {
      const window = ids.slice(-context);
      const logits = lastLogits(model, window, opts.vocab);
      const next = pick(logits, temperature, opts.topK, draws.uniform(i, 0, 0, 0), i);
      ids.push(next);
      yield next;
    }
  } finally {
    model.train(wasTraining);
  }
}

/** The logits the model gives at the last position of `window`. */
function lastLogits(model: nn.Module, window: number[], vocab: number | undefined): ArrayLike<number> {
  const t = window.length;
  const out = noGrad(() => model.forward(tensor(Int32Array.from(window), { shape: [1, t] })) as Tensor);
  if (out.ndim !== 3 || out.shape[0] !== 1 || out.shape[1] !== t || out.shape[2]! < 1)
    throw new Error(`generate: the model must return logits [1, ${t}, vocab] for ids [1, ${t}], got [${out.shape}]`);
  const v = out.shape[2]!;
  if (vocab !== undefined && v !== vocab)
    throw new Error(`generate: the model gives ${v} logits per position, not ${vocab} (one per token id)`);
  return out.contiguous().data.subarray((t - 1) * v, t * v);
}

/**
 * The id drawn from softmax(logits / temperature) restricted to the topK largest logits (ties
 * broken toward the lower id), with `u` uniform in [0, 1); temperature 0 takes the largest.
 */
export function pick(
  logits: ArrayLike<number>,
  temperature: number,
  topK: number | undefined,
  u: number,
  at = 0,
): number {
  const v = logits.length;
  for (let j = 0; j < v; j++) {
    const l = logits[j]!;
    if (Number.isNaN(l) || l === Infinity)
      throw new Error(`generate: the model gave logit ${l} for id ${j} at token ${at}`);
  }
  const order = Array.from({ length: v }, (_, j) => j).sort((a, b) => logits[b]! - logits[a]! || a - b);
  const kept = order.slice(0, Math.min(topK ?? v, v));
  const top = logits[kept[0]!]!;
  if (top === -Infinity) throw new Error(`generate: the model gave every id a logit of -Infinity at token ${at}`);
  if (temperature === 0) return kept[0]!;
  // Shifted by the largest logit so no exp overflows; that one weighs exactly 1.
  const weights = kept.map((j) => Math.exp((logits[j]! - top) / temperature));
  const total = weights.reduce((a, b) => a + b, 0);
  let target = u * total;
  for (let r = 0; r < kept.length; r++) {
    target -= weights[r]!;
    if (target < 0) return kept[r]!;
  }
  // Rounding left a sliver past the last weight: the last id with any weight.
  let last = kept.length - 1;
  while (weights[last] === 0) last--;
  return kept[last]!;
}
