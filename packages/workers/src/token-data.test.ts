// Token data in the trainer: int32 ids [N, T] and int32 next-token targets [N, T] are sharded by
// rows and reach the model as int32, the sequence loss is cross-entropy over every position
// (PyTorch's F.cross_entropy(logits.view(-1, V), y.view(-1))), and N workers match one.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Generator, type Tensor, gradcheck, gradgradcheck, nn, noGrad, tensor } from "@threadgrad/core";
import { FieldReader, readLossSpec } from "./checkpoint-schema.js";
import { toSharedDataset } from "./dataset.js";
import { assertBuilt } from "./fixtures/harness.mjs";
import { defaultLoss, sequenceCrossEntropy } from "./sequence-loss.js";
import { buildLoss } from "./spec.js";
import { DataParallel, type TrainerOptions } from "./trainer.js";

const MODEL = new URL("./fixtures/token-model.mjs", import.meta.url).href;
const V = 256,
  T = 8;
const open: DataParallel[] = [];
const dir = mkdtempSync(join(tmpdir(), "threadgrad-tokens-"));

beforeAll(() => assertBuilt());
afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close()));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** n windows of T byte ids from a repeating text, with y the same window shifted by one. */
function windows(n: number, seed = 5): { x: Tensor; y: Tensor } {
  const text = new TextEncoder().encode("the quick brown fox jumps over the lazy dog. ".repeat(8));
  const g = new Generator(seed);
  const x = new Int32Array(n * T),
    y = new Int32Array(n * T);
  for (let i = 0; i < n; i++) {
    const start = g.integer(0, text.length - T - 1);
    for (let j = 0; j < T; j++) {
      x[i * T + j] = text[start + j]!;
      y[i * T + j] = text[start + j + 1]!;
    }
  }
  return { x: tensor(x, { shape: [n, T] }), y: tensor(y, { shape: [n, T] }) };
}

async function trainer(workers: number, extra: Partial<TrainerOptions> = {}): Promise<DataParallel> {
  const t = await DataParallel.create({
    model: { module: MODEL, export: "createTokenModel" },
    loss: "sequenceCrossEntropy",
    optimizer: { name: "adam", lr: 1e-2 },
    seed: 3,
    workers,
    ...extra,
  });
  open.push(t);
  return t;
}

/** -log softmax(row)[target], one position at a time: the definition, in float64. */
function loopReference(logits: number[], targets: number[], n: number, t: number, v: number): number {
  let total = 0;
  for (let i = 0; i < n * t; i++) {
    const row = logits.slice(i * v, (i + 1) * v);
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((s, z) => s + Math.exp(z - max), 0));
    total += lse - row[targets[i]!]!;
  }
  return total / (n * t);
}

describe("sequenceCrossEntropy", () => {
  const g = new Generator(1);
  const [n, t, v] = [2, 3, 5];
  const logits = Array.from({ length: n * t * v }, () => g.normal() * 2);
  const targets = Array.from({ length: n * t }, () => g.integer(0, v));
  const f64 = () => tensor(logits, { shape: [n, t, v], dtype: "float64", requiresGrad: true });
  const ids = () => tensor(Int32Array.from(targets), { shape: [n, t] });

  it("is the mean over every position of -log softmax at the target", () => {
    const got = sequenceCrossEntropy(f64(), ids()).item();
    expect(got).toBeCloseTo(loopReference(logits, targets, n, t, v), 12);
  });

  it("equals crossEntropy on logits [N*T, V] and targets [N*T], in mean and sum", () => {
    const flat = tensor(logits, { shape: [n * t, v], dtype: "float64" });
    const flatIds = tensor(Int32Array.from(targets), { shape: [n * t] });
    expect(sequenceCrossEntropy(f64(), ids()).item()).toBe(nn.F.crossEntropy(flat, flatIds).item());
    expect(sequenceCrossEntropy(f64(), ids(), { reduction: "sum" }).item()).toBe(
      nn.F.crossEntropy(flat, flatIds, { reduction: "sum" }).item(),
    );
  });

  it("has the gradient (softmax - onehot) / (N*T), checked against finite differences", () => {
    const x = f64();
    sequenceCrossEntropy(x, ids()).backward();
    const grad = x.grad!.data;
    for (let i = 0; i < n * t; i++) {
      const row = logits.slice(i * v, (i + 1) * v);
      const z = row.reduce((s, a) => s + Math.exp(a), 0);
      for (let c = 0; c < v; c++) {
        const expected = (Math.exp(row[c]!) / z - (c === targets[i] ? 1 : 0)) / (n * t);
        expect(grad[i * v + c]).toBeCloseTo(expected, 12);
      }
    }
    expect(gradcheck((a) => sequenceCrossEntropy(a, ids()), [f64()])).toBe(true);
    expect(gradgradcheck((a) => sequenceCrossEntropy(a, ids()), [f64()])).toBe(true);
  });

  it("names the shapes it refuses", () => {
    expect(() => sequenceCrossEntropy(tensor([1, 2], { shape: [1, 2] }), ids())).toThrow(
      /sequenceCrossEntropy: the model's output must be logits \[N, T, vocab\], got \[1, 2\]/,
    );
    expect(() => sequenceCrossEntropy(f64(), tensor(new Int32Array(4), { shape: [2, 2] }))).toThrow(
      /targets \[2, 2\] do not match logits \[2, 3, 5\]; expected one target per position: \[2, 3\]/,
    );
  });

  it("is the built loss (a sum over the shard) and the default of a gpt-kind model", async () => {
    const fn = await buildLoss("sequenceCrossEntropy");
    expect(fn(f64(), ids()).item()).toBeCloseTo(loopReference(logits, targets, n, t, v) * n * t, 10);
    const gpt = { kind: "gpt", vocab: 256, context: 64, dim: 128, heads: 4, layers: 2 } as never;
    expect(defaultLoss(gpt)).toBe("sequenceCrossEntropy");
    expect(defaultLoss({ kind: "mlp", sizes: [4, 2] })).toBe("crossEntropy");
    expect(defaultLoss({ module: MODEL })).toBe("crossEntropy");
  });

  it("is a loss a checkpoint may name; an unknown name is refused with the field", () => {
    const r = new FieldReader("run.msgpack");
    expect(readLossSpec(r, "sequenceCrossEntropy", "config.loss")).toBe("sequenceCrossEntropy");
    expect(() => readLossSpec(r, "bleu", "config.loss")).toThrow(
      /checkpoint: run\.msgpack: field 'config\.loss' must be one of crossEntropy, sequenceCrossEntropy, mse, got "bleu"/,
    );
  });
});

describe("token data sets", () => {
  const gpt = { vocab: 100, context: 8 };
  const tokenChecks = { tokens: true, inputDtype: "int32" as const, outputs: gpt.vocab, ...gpt };

  it("keep int32 ids in shared memory, sharded by rows of T tokens", () => {
    const { x, y } = windows(4);
    const shared = toSharedDataset({ x, y }, { tokens: true });
    expect(shared.x).toBeInstanceOf(Int32Array);
    expect(shared.y).toBeInstanceOf(Int32Array);
    expect(shared.x.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect([shared.length, shared.features, shared.targetDim]).toEqual([4, T, T]);
    expect(Array.from(shared.x)).toEqual(Array.from(x.data));
  });

  it("refuse an id outside the model's vocabulary, naming the sample and the token", () => {
    const x = new Int32Array(16).fill(3);
    x[10] = 100;
    const y = new Int32Array(16);
    expect(() => toSharedDataset({ x, y, length: 2 }, tokenChecks)).toThrow(
      /dataset: token 2 of sample 1 in x is 100; token ids must be from 0 to 99 \(the model's vocabulary is 100\)/,
    );
    y[5] = -1;
    expect(() => toSharedDataset({ x: new Int32Array(16), y, length: 2 }, tokenChecks)).toThrow(
      /dataset: target 5 of sample 0 in y is -1; each must be a token id from 0 to 99/,
    );
    expect(() => toSharedDataset({ x: Int32Array.of(-4), y: Int32Array.of(0), length: 1 })).toThrow(
      /token 0 of sample 0 in x is -4; token ids must be from 0/,
    );
  });

  it("refuse a wrong dtype, mismatched shapes and samples longer than the context", () => {
    const floats = { x: new Float32Array(16), y: new Int32Array(16), length: 2 };
    expect(() => toSharedDataset(floats, tokenChecks)).toThrow(
      /dataset: the model takes int32 token ids, but x holds float32 values/,
    );
    expect(() =>
      toSharedDataset({ x: new Int32Array(8), y: new Int32Array(2) }, { inputDtype: "float32", flatRows: true }),
    ).toThrow(/the model takes float32 features, but x holds int32 values/);
    expect(() => toSharedDataset({ x: new Int32Array(16), y: new Float32Array(16), length: 2 }, tokenChecks)).toThrow(
      /a sequence loss takes int32 targets \(token ids\) in y, got Float32Array/,
    );
    expect(() => toSharedDataset({ x: new Int32Array(16), y: new Int32Array(14), length: 2 }, tokenChecks)).toThrow(
      /y holds 7 targets per sample but x holds 8 tokens; a sequence loss takes one target per token \(x and y both \[2, 8\]\)/,
    );
    expect(() => toSharedDataset({ x: new Int32Array(18), y: new Int32Array(18), length: 2 }, tokenChecks)).toThrow(
      /each sample of x holds 9 tokens, but the model's context is 8/,
    );
    expect(() => toSharedDataset({ x: new Int32Array(16), y: new Int32Array(16) }, { tokens: true })).toThrow(
      /pass `length` \(the number of samples\) with typed-array token ids, or x as an \[N, T\] tensor/,
    );
  });
});

describe("training on token data", () => {
  it("gives the same losses on 1 and 2 workers, and evaluates per token", async () => {
    const train = windows(24, 5),
      val = windows(10, 9);
    const runs = [];
    for (const workers of [1, 2]) {
      const t = await trainer(workers);
      const steps: number[] = [];
      await t.fit(train, { epochs: 2, batchSize: 6, onStep: (s) => void steps.push(s.loss) });
      const ev = await t.evaluate(val, { batchSize: 4 });
      // The reference: main's model (its parameters are the shared ones) over the whole set.
      const out = noGrad(() => t.model.forward(val.x) as Tensor);
      const ref = sequenceCrossEntropy(out, val.y).item();
      const pred = out.argmax(-1).data,
        labels = val.y.data;
      let right = 0;
      for (let i = 0; i < labels.length; i++) if (pred[i] === labels[i]) right++;
      expect(ev.loss).toBeCloseTo(ref, 5);
      expect(ev.accuracy).toBe(right / (10 * T));
      expect(ev.predictions).toBeNull();
      runs.push({ steps, ev: ev.loss, acc: ev.accuracy });
      await t.close();
    }
    const [one, two] = runs as [(typeof runs)[0], (typeof runs)[0]];
    expect(one.steps).toHaveLength(8);
    expect(Math.max(...two.steps.map((loss, i) => Math.abs(loss - one.steps[i]!)))).toBeLessThan(1e-6);
    expect(Math.abs(two.ev - one.ev)).toBeLessThan(1e-6);
    expect(two.acc).toBe(one.acc);
    // It learned: the first step starts near ln 256, the training lowers the loss well below.
    expect(one.steps[0]).toBeGreaterThan(5);
    expect(one.ev).toBeLessThan(one.steps[0]! - 0.5);
  });

  it("names the sample whose target is outside a module model's outputs", async () => {
    const t = await trainer(1);
    const { x, y } = windows(2);
    const bad = Int32Array.from(y.data);
    bad[T + 3] = V + 4;
    await expect(t.evaluate({ x, y: tensor(bad, { shape: [2, T] }) })).rejects.toThrow(
      /target 3 of sample 1 is 260, but the model has 256 outputs \(its vocabulary\)/,
    );
  });

  it("keeps the sequence loss through a checkpoint", async () => {
    const t = await trainer(1);
    await t.fit(windows(6), { epochs: 1, batchSize: 3 });
    const path = join(dir, "tokens.msgpack");
    await t.save(path);
    const back = await DataParallel.load(path, { model: { module: MODEL, export: "createTokenModel" } });
    open.push(back);
    expect(back.options.loss).toBe("sequenceCrossEntropy");
    expect((await back.evaluate(windows(4, 2))).loss).toBe((await t.evaluate(windows(4, 2))).loss);
  });
});
