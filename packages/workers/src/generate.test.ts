// Sampling from a token model: deterministic per seed, greedy at temperature 0 (and top-k 1), the
// prompt cut to the context, and the draw itself against the softmax it samples.
import { describe, expect, it } from "vitest";
import { type Tensor, manualSeed, nn, noGrad, tensor } from "@threadgrad/core";
import { generate, pick } from "./generate.js";
import { Gpt } from "./gpt.js";

const SPEC = { vocab: 256, context: 8, dim: 16, heads: 2, layers: 1 };

function model(seed = 1): Gpt {
  manualSeed(seed);
  return new Gpt(SPEC);
}

const run = (m: nn.Module, prompt: number[], opts: Parameters<typeof generate>[2]) => [...generate(m, prompt, opts)];

/** The id the model scores highest after `ids` (the lowest one among equals). */
function argmaxNext(m: Gpt, ids: number[]): number {
  const window = ids.slice(-SPEC.context);
  const out = noGrad(() => m.forward(tensor([window], { dtype: "int32" })));
  const last = Array.from(out.data.subarray((window.length - 1) * 256, window.length * 256));
  return last.indexOf(Math.max(...last));
}

describe("generate", () => {
  it("gives the same ids for the same seed and different ids for another seed", () => {
    const m = model();
    const opts = { tokens: 40, temperature: 1, seed: 3 };
    const a = run(m, [72, 105], opts);
    expect(a).toHaveLength(40);
    expect(run(m, [72, 105], opts)).toEqual(a);
    expect(run(model(), [72, 105], opts)).toEqual(a);
    expect(run(m, [72, 105], { ...opts, seed: 4 })).not.toEqual(a);
    expect(a.every((id) => Number.isInteger(id) && id >= 0 && id < 256)).toBe(true);
  });

  it("at temperature 0 takes the model's most likely id at every step", () => {
    const m = model(2);
    const prompt = [10, 20, 30];
    const ids = run(m, prompt, { tokens: 12, temperature: 0 });
    const text = [...prompt];
    for (const id of ids) {
      expect(id).toBe(argmaxNext(m, text));
      text.push(id);
    }
  });

  it("with top-k 1 gives the greedy ids at any temperature and seed", () => {
    const m = model(5);
    const greedy = run(m, [1, 2, 3], { tokens: 15, temperature: 0 });
    for (const [temperature, seed] of [
      [0.5, 0],
      [1, 7],
      [3, 11],
    ] as const)
      expect(run(m, [1, 2, 3], { tokens: 15, temperature, topK: 1, seed })).toEqual(greedy);
  });

  it("keeps the last context ids of a longer prompt", () => {
    const m = model(6);
    const long = Array.from({ length: 20 }, (_, i) => (i * 37) % 256);
    const opts = { tokens: 10, temperature: 0.8, topK: 40, seed: 1 };
    expect(run(m, long, opts)).toEqual(run(m, long.slice(-SPEC.context), opts));
    expect(run(m, long, opts)).not.toEqual(run(m, long.slice(-SPEC.context + 1), opts));
  });

  it("runs the model in eval mode and restores its mode after", () => {
    const m = model();
    m.train();
    const seen: boolean[] = [];
    const spy = new (class extends nn.Module {
      readonly context = 4;
      inner = m;
      forward(x: Tensor) {
        seen.push(this.training);
        return this.inner.forward(x);
      }
    })();
    run(spy, [1], { tokens: 3 });
    expect(seen).toEqual([false, false, false]);
    expect(spy.training).toBe(true);
  });

  it("takes the context from the options for a model without one, and checks the logits' shape", () => {
    const m = model();
    const wrapped = new (class extends nn.Module {
      inner = m;
      forward(x: Tensor) {
        return this.inner.forward(x);
      }
    })();
    expect(() => run(wrapped, [1], { tokens: 1 })).toThrow(
      "generate: give context (the longest input the model takes)",
    );
    expect(run(wrapped, [1, 2], { tokens: 4, seed: 2, context: 8 })).toEqual(run(m, [1, 2], { tokens: 4, seed: 2 }));
    expect(() => run(m, [1], { tokens: 1, vocab: 10 })).toThrow(
      "generate: the model gives 256 logits per position, not 10 (one per token id)",
    );
    const flat = new (class extends nn.Module {
      readonly context = 4;
      forward(x: Tensor) {
        return x.to("float32");
      }
    })();
    expect(() => run(flat, [1, 2], { tokens: 1 })).toThrow(
      "generate: the model must return logits [1, 2, vocab] for ids [1, 2], got [1,2]",
    );
  });

  it("refuses bad options and prompts, naming the value", () => {
    const m = model();
    expect(() => run(m, [1], { tokens: -1 })).toThrow("generate: tokens must be a non-negative integer, got -1");
    expect(() => run(m, [1], { tokens: 1, temperature: -0.5 })).toThrow(
      "generate: temperature must be a finite number >= 0, got -0.5",
    );
    expect(() => run(m, [1], { tokens: 1, topK: 0 })).toThrow("generate: topK must be a positive integer, got 0");
    expect(() => run(m, [], { tokens: 1 })).toThrow("generate: the prompt must hold at least one id");
    expect(() => run(m, [1, 2.5], { tokens: 1 })).toThrow(
      "generate: prompt id 1 must be a non-negative integer, got 2.5",
    );
  });
});

describe("pick", () => {
  it("draws from the softmax of logits / temperature", () => {
    // softmax([0, ln 3]) = [1/4, 3/4], the larger first: u below 3/4 picks id 1, above it id 0.
    const logits = [0, Math.log(3)];
    expect(pick(logits, 1, undefined, 0.74)).toBe(1);
    expect(pick(logits, 1, undefined, 0.76)).toBe(0);
    // Temperature 2 flattens it to [1/(1+√3), √3/(1+√3)] ≈ [0.366, 0.634].
    expect(pick(logits, 2, undefined, 0.62)).toBe(1);
    expect(pick(logits, 2, undefined, 0.65)).toBe(0);
    expect(pick(logits, 0, undefined, 0.99)).toBe(1);
  });

  it("keeps only the top k, ties broken toward the lower id", () => {
    const logits = [1, 5, 5, 3, 2];
    expect(pick(logits, 0, undefined, 0)).toBe(1);
    expect(pick(logits, 1, 1, 0.999)).toBe(1);
    for (let u = 0; u < 1; u += 0.05) expect([1, 2]).toContain(pick(logits, 1, 2, u));
    expect(pick(logits, 1, 3, 0.9999)).toBe(3);
  });

  it("skips ids masked with -Infinity and refuses NaN or all -Infinity", () => {
    expect(pick([-Infinity, 0, -Infinity], 1, undefined, 0.999)).toBe(1);
    expect(() => pick([0, Number.NaN], 1, undefined, 0.5, 7)).toThrow(
      "generate: the model gave logit NaN for id 1 at token 7",
    );
    expect(() => pick([-Infinity, -Infinity], 1, undefined, 0.5)).toThrow("every id a logit of -Infinity");
  });
});
