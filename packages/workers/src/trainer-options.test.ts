import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { Generator, type Tensor, manualSeed, nn, tensor } from "@threadgrad/core";
import {
  type OptimizerName,
  type ScheduleConfig,
  clipGradNorm,
  combineNorms,
  lrAt,
  partialNorm,
  resolveFlatOptions,
  stateBuffers,
} from "@threadgrad/optim";
import { assertBuilt } from "./fixtures/harness.mjs";
import { shardRange } from "./shard.js";
import { buildMlp } from "./spec.js";
import { epochOrder } from "./step-math.js";
import { DataParallel, type StepInfo, type TrainerOptions } from "./trainer.js";
import { float32Step } from "./update-f32.js";

// DataParallel (2 workers) against a single-thread loop over the same shards, for the options the
// basic parity tests leave at their defaults: MSE with several targets, class weights, SGD with
// Nesterov momentum + clipping + a cosine schedule, a short last accumulation window, abort/resume.

const SEED = 7;
const RANKS = 2;
const open: DataParallel[] = [];
const dirs: string[] = [];

interface Data {
  x: Float32Array;
  y: Int32Array | Float32Array;
  length: number;
  features: number;
  targetDim: number;
}

function classification(n: number, features: number, classes: number, seed = 3): Data {
  const g = new Generator(seed);
  const x = new Float32Array(n * features).map(() => g.normal());
  const y = new Int32Array(n).map(() => g.integer(0, classes));
  return { x, y, length: n, features, targetDim: 1 };
}

function regression(n: number, features: number, seed = 4): Data {
  const g = new Generator(seed);
  const x = new Float32Array(n * features).map(() => g.normal());
  const y = new Float32Array(n * 2);
  for (let i = 0; i < n; i++) {
    y[2 * i] = x[i * features]! - 0.5 * x[i * features + 1]! + 0.1 * g.normal();
    y[2 * i + 1] = 2 * x[i * features + 2]! + 0.3;
  }
  return { x, y, length: n, features, targetDim: 2 };
}

/** What the reference loop needs to mirror one trainer configuration. */
interface Config {
  sizes: number[];
  /** the loss summed over a shard */
  loss: (out: Tensor, y: Tensor) => Tensor;
  /** the global denominator of a set of sample indices */
  denom: (ds: Data, idx: ArrayLike<number>) => number;
  optimizer: { name: OptimizerName; lr: number; [k: string]: unknown };
  schedule?: ScheduleConfig;
  clip?: number;
  accumulate?: number;
}

const forward = (m: nn.Module, x: Tensor): Tensor => (m.forward as (x: Tensor) => Tensor)(x);
type RefStep = Pick<StepInfo, "loss" | "lr" | "gradNorm" | "updated">;

function rows(ds: Data, idx: ArrayLike<number>, a: number, b: number): { x: Tensor; y: Tensor } {
  const f = ds.features,
    d = ds.targetDim;
  const x = new Float32Array((b - a) * f);
  const y = ds.y instanceof Int32Array ? new Int32Array((b - a) * d) : new Float32Array((b - a) * d);
  for (let i = a; i < b; i++) {
    x.set(ds.x.subarray(idx[i]! * f, (idx[i]! + 1) * f), (i - a) * f);
    y.set(ds.y.subarray(idx[i]! * d, (idx[i]! + 1) * d), (i - a) * d);
  }
  return {
    x: tensor(x, { shape: [b - a, f] }),
    y: tensor(y, { shape: ds.y instanceof Int32Array ? [b - a] : [b - a, d] }),
  };
}

/**
 * The loop the trainer must reproduce: per micro-batch, each rank's shard gives the gradient of
 * lossSum / (the window's global denominator); a rank's micro-batch gradients add up in its own
 * float32 slice, the slices add up in rank order, then (clip and) one float32 optimizer step.
 */
function reference(cfg: Config, ds: Data, epochs: number, batchSize: number) {
  manualSeed(SEED);
  const model = buildMlp(cfg.sizes, "tanh");
  const ps = model.parameters();
  const refs = ps.map((p) => ({
    data: p.data as Float32Array,
    shape: p.shape,
    grad: { data: new Float32Array(p.numel), shape: p.shape },
  }));
  const { name, ...raw } = cfg.optimizer;
  const options = resolveFlatOptions(name, raw as never) as unknown as Record<string, unknown>;
  const state = refs.map((r) =>
    stateBuffers(name, raw as never).map(({ init }) => new Float32Array(r.data.length).fill(init)),
  );
  const k = cfg.accumulate ?? 1;
  const steps: RefStep[] = [];
  let t = 0;
  for (let epoch = 0; epoch < epochs; epoch++) {
    const order = epochOrder(ds.length, SEED, epoch);
    const perEpoch = Math.ceil(ds.length / batchSize);
    const batchOf = (s: number) => order.subarray(s * batchSize, Math.min(ds.length, (s + 1) * batchSize));
    for (let w0 = 0; w0 < perEpoch; w0 += k) {
      const w1 = Math.min(perEpoch, w0 + k);
      const denom = cfg.denom(ds, order.subarray(w0 * batchSize, Math.min(ds.length, w1 * batchSize)));
      const acc = Array.from({ length: RANKS }, () => ps.map((p) => new Float32Array(p.numel)));
      const lr = cfg.schedule ? lrAt(cfg.schedule, cfg.optimizer.lr, t) : cfg.optimizer.lr;
      for (let s = w0; s < w1; s++) {
        const idx = batchOf(s);
        let lossSum = 0;
        for (let r = 0; r < RANKS; r++) {
          const [a, b] = shardRange(idx.length, RANKS, r);
          if (b <= a) continue;
          const { x, y } = rows(ds, idx, a, b);
          model.zeroGrad();
          const l = cfg.loss(forward(model, x), y);
          lossSum += l.item();
          l.div(denom).backward();
          ps.forEach((p, j) => {
            const g = p.grad!.data as Float32Array,
              dst = acc[r]![j]!;
            for (let i = 0; i < g.length; i++) dst[i]! += g[i]!;
          });
        }
        steps.push({ loss: lossSum / cfg.denom(ds, idx), lr, gradNorm: null, updated: s + 1 === w1 });
      }
      refs.forEach((ref, j) => {
        ref.grad.data.set(acc[0]![j]!);
        for (let r = 1; r < RANKS; r++)
          for (let i = 0; i < ref.grad.data.length; i++) ref.grad.data[i]! += acc[r]![j]![i]!;
      });
      const norm =
        cfg.clip !== undefined
          ? clipGradNorm(refs, cfg.clip)
          : combineNorms(refs.map((r) => partialNorm(r.grad.data, 0, r.grad.data.length)));
      steps[steps.length - 1]!.gradNorm = norm;
      t++;
      refs.forEach((r, j) => {
        const args = { params: r.data, grads: r.grad.data, state: state[j]!, start: 0, end: r.data.length };
        float32Step(null, name, options, { ...args, step: t, lr });
      });
    }
  }
  return { model, params: refs.map((r) => r.data.slice()), steps };
}

async function trainer(cfg: Config, opts: Partial<TrainerOptions>): Promise<DataParallel> {
  const t = await DataParallel.create({
    model: { kind: "mlp", sizes: cfg.sizes, activation: "tanh" },
    workers: RANKS,
    seed: SEED,
    optimizer: cfg.optimizer,
    schedule: cfg.schedule,
    clipGradNorm: cfg.clip,
    accumulateSteps: cfg.accumulate,
    ...opts,
  });
  open.push(t);
  return t;
}

async function fitRecording(
  t: DataParallel,
  ds: Data,
  epochs: number,
  batchSize: number,
  signal?: AbortSignal,
  onStep?: (s: StepInfo) => void,
) {
  const steps: StepInfo[] = [];
  await t.fit(
    { x: ds.x, y: ds.y, length: ds.length },
    {
      epochs,
      batchSize,
      signal,
      onStep: (s) => {
        steps.push(s);
        onStep?.(s);
      },
    },
  );
  return steps;
}

const bits = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);
const paramsOf = (t: DataParallel): Float32Array[] => t.model.parameters().map((p) => (p.data as Float32Array).slice());
const expectSameBits = (got: Float32Array[], want: Float32Array[]) =>
  got.forEach((g, j) => {
    expect(bits(g)).toEqual(bits(want[j]!));
  });
const relErr = (got: number, want: number) => Math.abs(got - want) / Math.max(Math.abs(want), 1e-30);
function relDiff(got: Float32Array[], want: Float32Array[]): number {
  let diff = 0,
    norm = 0;
  got.forEach((g, j) => {
    g.forEach((v, i) => {
      diff += (v - want[j]![i]!) ** 2;
      norm += want[j]![i]! ** 2;
    });
  });
  return Math.sqrt(diff / norm);
}

const sumLoss = {
  mse: (out: Tensor, y: Tensor) => nn.F.mseLoss(out, y, { reduction: "sum" }),
  ce: (out: Tensor, y: Tensor) => nn.F.crossEntropy(out, y, { reduction: "sum" }),
};
const countDenom = (_: Data, idx: ArrayLike<number>) => idx.length;

beforeAll(() => assertBuilt());
afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close()));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("DataParallel options against the single-thread loop (2 workers)", () => {
  it(
    "mse with 2 targets per sample divides by batch × " + "targetDim; step and evaluate losses are the true means",
    async () => {
      const ds = regression(60, 6);
      const cfg: Config = {
        sizes: [6, 12, 2],
        loss: sumLoss.mse,
        denom: (d, idx) => idx.length * d.targetDim,
        optimizer: { name: "sgd", lr: 0.05 },
      };
      const t = await trainer(cfg, { loss: "mse" });
      const got = await fitRecording(t, ds, 2, 16); // 4 steps per epoch, the last batch has 12 samples
      const ref = reference(cfg, ds, 2, 16);
      expectSameBits(paramsOf(t), ref.params);
      expect(got.map((s) => s.loss)).toEqual(ref.steps.map((s) => s.loss));
      expect(got.every((s) => s.accuracy === null)).toBe(true);
      // evaluate: the mean of (out - y)² over all n·2 values, computed here from the reference model
      ref.model.eval();
      const out = forward(ref.model, tensor(ds.x, { shape: [ds.length, ds.features] })).data as Float32Array;
      let sq = 0;
      out.forEach((v, i) => {
        sq += (v - ds.y[i]!) ** 2;
      });
      const ev = await t.evaluate({ x: ds.x, y: ds.y, length: ds.length });
      expect(ev.samples).toBe(60);
      expect(relErr(ev.loss, sq / (ds.length * 2))).toBeLessThan(1e-6);
    },
  );

  it(
    "class-weighted crossEntropy divides by the batch's summed " +
      "target weights; step and evaluate losses are weighted means",
    async () => {
      const weight = [0.5, 2, 1.25];
      const ds = classification(60, 6, 3);
      const wsum = (d: Data, idx: ArrayLike<number>) => {
        let s = 0;
        for (let i = 0; i < idx.length; i++) s += weight[d.y[idx[i]!]!]!;
        return s;
      };
      const w = tensor(weight, { dtype: "float32" });
      const cfg: Config = {
        sizes: [6, 12, 3],
        loss: (o, y) => nn.F.crossEntropy(o, y, { reduction: "sum", weight: w }),
        denom: wsum,
        optimizer: { name: "sgd", lr: 0.1 },
      };
      const t = await trainer(cfg, { loss: { name: "crossEntropy", weight } });
      const got = await fitRecording(t, ds, 2, 16);
      const ref = reference(cfg, ds, 2, 16);
      expectSameBits(paramsOf(t), ref.params);
      expect(got.map((s) => s.loss)).toEqual(ref.steps.map((s) => s.loss));
      // evaluate: Σ w[y]·(-log softmax(out)[y]) / Σ w[y] over the whole set, in float64 here
      ref.model.eval();
      const out = forward(ref.model, tensor(ds.x, { shape: [ds.length, ds.features] })).data as Float32Array;
      let num = 0,
        den = 0;
      for (let i = 0; i < ds.length; i++) {
        const logits = [...out.subarray(i * 3, i * 3 + 3)];
        const m = Math.max(...logits);
        const lse = m + Math.log(logits.reduce((a, v) => a + Math.exp(v - m), 0));
        const wi = weight[ds.y[i]!]!;
        num += wi * (lse - logits[ds.y[i]!]!);
        den += wi;
      }
      const ev = await t.evaluate({ x: ds.x, y: ds.y, length: ds.length });
      expect(den).not.toBe(ds.length); // the weights really change the denominator
      expect(relErr(ev.loss, num / den)).toBeLessThan(1e-6);
    },
  );

  it(
    "SGD, Nesterov, clipGradNorm 0.5 and a cosine schedule " +
      "follow the reference; lr and pre-clip gradNorm reported",
    async () => {
      const ds = classification(64, 6, 5, 9);
      const schedule: ScheduleConfig = { kind: "cosine", tMax: 10 };
      const cfg: Config = {
        sizes: [6, 12, 5],
        loss: sumLoss.ce,
        denom: countDenom,
        optimizer: { name: "sgd", lr: 0.1, momentum: 0.9, nesterov: true },
        schedule,
        clip: 0.5,
      };
      const t = await trainer(cfg, {});
      const got = await fitRecording(t, ds, 3, 16); // 12 optimizer steps, past tMax
      const ref = reference(cfg, ds, 3, 16);
      expect(got.map((s) => s.lr)).toEqual(Array.from({ length: 12 }, (_, i) => lrAt(schedule, 0.1, i)));
      expect(got.map((s) => s.lr)).toEqual(ref.steps.map((s) => s.lr));
      const norms = ref.steps.map((s) => s.gradNorm!);
      expect(norms.filter((n) => n > 0.5).length).toBeGreaterThan(3); // clipping really happens
      got.forEach((s, i) => {
        expect(relErr(s.gradNorm!, norms[i]!)).toBeLessThan(1e-6);
      });
      expect(relDiff(paramsOf(t), ref.params)).toBeLessThan(1e-6);
      // without the clip the run is measurably different, so the comparison above sees clipping
      expect(relDiff(reference({ ...cfg, clip: undefined }, ds, 3, 16).params, ref.params)).toBeGreaterThan(1e-3);
    },
  );

  it(
    "a short last accumulation window (3 + 2 micro-batches) " +
      "updates with its 2 batches' gradient over their samples",
    async () => {
      const ds = classification(47, 6, 3, 5); // batches of 10: 5 per epoch, the last has 7 samples
      const cfg: Config = {
        sizes: [6, 12, 3],
        loss: sumLoss.ce,
        denom: countDenom,
        optimizer: { name: "sgd", lr: 0.1, momentum: 0.9 },
        accumulate: 3,
      };
      const t = await trainer(cfg, {});
      const got = await fitRecording(t, ds, 2, 10);
      const pattern = [false, false, true, false, true];
      expect(got.map((s) => s.updated)).toEqual([...pattern, ...pattern]);
      expect(got.map((s) => s.gradNorm !== null)).toEqual([...pattern, ...pattern]);
      expect(got.map((s) => s.samples)).toEqual([10, 10, 10, 10, 7, 10, 10, 10, 10, 7]);
      expect(t.progress.optimizerStep).toBe(4);
      const ref = reference(cfg, ds, 2, 10);
      expectSameBits(paramsOf(t), ref.params);
      expect(got.map((s) => s.loss)).toEqual(ref.steps.map((s) => s.loss));
      got.forEach((s, i) => {
        if (s.updated) expect(relErr(s.gradNorm!, ref.steps[i]!.gradNorm!)).toBeLessThan(1e-6);
      });
    },
  );

  // Epochs of 47 samples in batches of 10 are 5 steps; windows of 3 micro-steps: [1, 3], [4, 5],
  // [6, 8], [9, 10], ... Step 7 is epoch 1's second micro-batch.
  const abortCases = [
    // one step in flight: the abort lands while step 7 is the only one handed out; window [6, 8] must finish
    { name: "one step in flight", inFlight: 1, stopAt: { epoch: 1, stepInEpoch: 3, globalStep: 8, optimizerStep: 3 } },
    // four in flight: epoch 1 is handed out as [6, 9] then [10]; the abort lands in the first
    // batch, which finishes at step 9, inside the window [9, 10]: that window finishes too
    {
      name: "four steps in flight",
      inFlight: 4,
      stopAt: { epoch: 2, stepInEpoch: 0, globalStep: 10, optimizerStep: 4 },
    },
  ];
  it.each(abortCases)(
    "an abort mid-window with $name stops at a window's end, and save + load + fit continues bit for bit",
    async ({ inFlight, stopAt }) => {
      const ds = classification(47, 6, 3, 6);
      const cfg: Config = {
        sizes: [6, 12, 3],
        loss: sumLoss.ce,
        denom: countDenom,
        optimizer: { name: "sgd", lr: 0.1, momentum: 0.9 },
        accumulate: 3,
        schedule: { kind: "cosine", tMax: 8 },
      };
      const straight = await trainer(cfg, {});
      const all = await fitRecording(straight, ds, 3, 10);
      const first = await trainer(cfg, { stepsInFlight: inFlight });
      const ac = new AbortController();
      const before = await fitRecording(first, ds, 3, 10, ac.signal, (s) => s.step === 7 && ac.abort());
      expect(before.map((s) => s.step)).toEqual(Array.from({ length: stopAt.globalStep }, (_, i) => i + 1));
      expect(first.progress).toMatchObject({ ...stopAt, batchSize: 10 });
      const dir = mkdtempSync(join(tmpdir(), "threadgrad-options-"));
      dirs.push(dir);
      await first.save(join(dir, "mid.msgpack"));
      await first.close();
      const resumed = await DataParallel.load(join(dir, "mid.msgpack"), { workers: RANKS });
      open.push(resumed);
      const after = await fitRecording(resumed, ds, 3, 10);
      expect(after[0]).toMatchObject({ step: stopAt.globalStep + 1 });
      expectSameBits(paramsOf(resumed), paramsOf(straight));
      const pick = (s: StepInfo) => [s.step, s.loss, s.lr, s.gradNorm, s.updated];
      expect([...before, ...after].map(pick)).toEqual(all.map(pick));
      expect(resumed.progress).toMatchObject({ epoch: 3, stepInEpoch: 0, globalStep: 15, optimizerStep: 6 });
      expectSameBits(paramsOf(straight), reference(cfg, ds, 3, 10).params);
    },
  );

  it(
    "untilStep stops at the first window boundary from it, whatever " +
      "is in flight, and 1 or 4 in flight give the same bits",
    async () => {
      const ds = classification(47, 6, 3, 7);
      const cfg: Config = {
        sizes: [6, 12, 3],
        loss: sumLoss.ce,
        denom: countDenom,
        optimizer: { name: "adam", lr: 0.02 },
        accumulate: 3,
        schedule: { kind: "step", stepSize: 2, gamma: 0.5 },
      };
      const data = { x: ds.x, y: ds.y, length: ds.length };
      const deep = await trainer(cfg, { stepsInFlight: 4 });
      const one = await trainer(cfg, { stepsInFlight: 1 });
      const stepsOf = async (t: DataParallel, untilStep: number) => {
        const seen: StepInfo[] = [];
        await t.fit(data, { epochs: 3, batchSize: 10, untilStep, onStep: (s) => void seen.push(s) });
        return seen;
      };
      // step 5 ends epoch 0 and its window [4, 5]: exactly there
      expect((await stepsOf(deep, 5)).map((s) => s.step)).toEqual([1, 2, 3, 4, 5]);
      expect(deep.progress).toMatchObject({ epoch: 1, stepInEpoch: 0, globalStep: 5, optimizerStep: 2 });
      // step 7 is inside the window [6, 8]: the window finishes
      expect((await stepsOf(deep, 7)).map((s) => s.step)).toEqual([6, 7, 8]);
      expect(deep.progress).toMatchObject({ epoch: 1, stepInEpoch: 3, globalStep: 8, optimizerStep: 3 });
      const rest = await stepsOf(deep, Infinity);
      const straight = await stepsOf(one, Infinity);
      expect(rest.map((s) => s.step)).toEqual(straight.slice(8).map((s) => s.step));
      expect(rest.map((s) => [s.loss, s.lr, s.gradNorm])).toEqual(
        straight.slice(8).map((s) => [s.loss, s.lr, s.gradNorm]),
      );
      expectSameBits(paramsOf(deep), paramsOf(one));
      expectSameBits(paramsOf(one), reference(cfg, ds, 3, 10).params);
    },
  );
});
