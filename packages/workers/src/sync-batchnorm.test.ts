// Data-parallel CNNs: samples keep their shape ([N, 1, 8, 8] images), BatchNorm is synchronised
// across the ranks (N workers train the model one thread trains on the global batch), its running
// statistics live in shared memory, travel in checkpoints, and a failing rank releases the others
// from the in-step reduction.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Generator, type Tensor, manualSeed, nn, noGrad, tensor } from "@threadgrad/core";
import { flatStep, resolveFlatOptions } from "@threadgrad/optim";
import { readCheckpoint, writeCheckpoint } from "./checkpoint.js";
import { toSharedDataset } from "./dataset.js";
import { createCnn } from "./fixtures/cnn-model.mjs";
import { assertBuilt } from "./fixtures/harness.mjs";
import { epochOrder } from "./step-math.js";
import { DataParallel, type TrainerOptions } from "./trainer.js";

const CNN = new URL("./fixtures/cnn-model.mjs", import.meta.url).href;
const SEED = 7;
const LR = 0.1;
const open: DataParallel[] = [];
const dir = mkdtempSync(join(tmpdir(), "threadgrad-cnn-"));

beforeAll(() => assertBuilt());
afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close()));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** n random 1×8×8 images as an [n, 1, 8, 8] tensor, with labels 0..9. */
function images(n: number, seed = 3): { x: Tensor; y: Int32Array } {
  const g = new Generator(seed);
  const x = new Float32Array(n * 64).map(() => g.normal());
  return { x: tensor(x, { shape: [n, 1, 8, 8] }), y: new Int32Array(n).map(() => g.integer(0, 10)) };
}

async function trainer(workers: number, extra: Partial<TrainerOptions> = {}, batchNorm = true): Promise<DataParallel> {
  const t = await DataParallel.create({
    model: { module: CNN, export: "createCnn", args: [batchNorm] },
    optimizer: { name: "sgd", lr: LR },
    seed: SEED,
    workers,
    ...extra,
  });
  open.push(t);
  return t;
}

/**
 * One thread, the global batch, plain training mode: the loop every worker count must reproduce.
 * Returns the model after training and each step's mean loss.
 */
function reference(ds: { x: Tensor; y: Int32Array }, epochs: number, batchSize: number) {
  manualSeed(SEED);
  const model = createCnn(true);
  const ps = model.parameters();
  const opts = resolveFlatOptions("sgd", { lr: LR });
  const n = ds.y.length;
  const losses: number[] = [];
  for (let epoch = 0; epoch < epochs; epoch++) {
    const order = epochOrder(n, SEED, epoch);
    for (let s = 0; s * batchSize < n; s++) {
      const idx = order.subarray(s * batchSize, Math.min(n, (s + 1) * batchSize));
      const x = new Float32Array(idx.length * 64);
      idx.forEach((i, r) => {
        x.set((ds.x.data as Float32Array).subarray(i * 64, (i + 1) * 64), r * 64);
      });
      const y = Int32Array.from(idx, (i) => ds.y[i]!);
      model.train();
      model.zeroGrad();
      const out = model.forward(tensor(x, { shape: [idx.length, 1, 8, 8] }));
      const loss = nn.F.crossEntropy(out, tensor(y), { reduction: "sum" }).div(idx.length);
      losses.push(loss.item());
      loss.backward();
      for (const p of ps) {
        flatStep("sgd", opts, {
          params: p.data as Float32Array,
          grads: p.grad!.data as Float32Array,
          state: [],
          start: 0,
          end: p.numel,
          step: 1,
        });
      }
    }
  }
  return { model, losses };
}

/** The reference model's mean loss over the data set in evaluation mode (running statistics). */
function referenceEval(model: nn.Module, ds: { x: Tensor; y: Int32Array }): number {
  model.eval();
  return noGrad(() => nn.F.crossEntropy(model.forward(ds.x), tensor(ds.y)).item());
}

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol: number) => {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  expect(worst).toBeLessThanOrEqual(tol);
};

function stateOf(m: nn.Module): Map<string, Float32Array | Int32Array> {
  return new Map(Object.entries(m.stateDict()).map(([k, t]) => [k, t.data.slice() as Float32Array | Int32Array]));
}

describe("synchronised BatchNorm across workers", () => {
  // 41 samples in batches of 10: the last step has one sample, so 2 of 3 ranks hold empty shards.
  const ds = images(41);

  it.each([1, 2, 3])(
    "%i workers train the model one thread trains on the global batch (to 1e-5), running stats included",
    async (workers) => {
      const t = await trainer(workers);
      const losses: number[] = [];
      await t.fit(ds, { epochs: 2, batchSize: 10, onStep: (s) => void losses.push(s.loss) });
      const ref = reference(ds, 2, 10);
      close(losses, ref.losses, 1e-5);
      const got = stateOf(t.model),
        want = stateOf(ref.model);
      expect([...got.keys()]).toEqual([...want.keys()]);
      expect([...got.keys()]).toContain("bn.runningVar");
      for (const [name, values] of want) close(got.get(name)!, values, 1e-5);
      // 10 steps: counted once per step, not once per rank
      expect(got.get("bn.numBatchesTracked")![0]).toBe(10);
      // evaluation (every rank with its own copy of the running statistics) matches the reference's
      const evaluated = await t.evaluate({ x: ds.x, y: ds.y }, { batchSize: 16 });
      expect(Math.abs(evaluated.loss - referenceEval(ref.model, ds))).toBeLessThanOrEqual(1e-5);
    },
  );

  it("runs are bit-identical from run to run", async () => {
    const a = await trainer(3);
    await a.fit(ds, { epochs: 1, batchSize: 10 });
    const b = await trainer(3);
    await b.fit(ds, { epochs: 1, batchSize: 10 });
    const bits = (m: nn.Module) => [...stateOf(m).values()].map((v) => Array.from(new Uint32Array(v.buffer)));
    expect(bits(a.model)).toEqual(bits(b.model));
  });

  it("stepRegion (the step's tensors in a scratch region) gives the same bits", async () => {
    const a = await trainer(2);
    await a.fit(ds, { epochs: 1, batchSize: 10 });
    const b = await trainer(2, { stepRegion: true });
    await b.fit(ds, { epochs: 1, batchSize: 10 });
    for (const [name, values] of stateOf(a.model))
      expect([name, Array.from(stateOf(b.model).get(name)!)]).toEqual([name, Array.from(values)]);
  });

  it("a CNN without BatchNorm trains to the same losses on 1 and 2 workers (to 1e-5)", async () => {
    const losses: number[][] = [];
    for (const workers of [1, 2]) {
      const t = await trainer(workers, {}, false);
      const mine: number[] = [];
      await t.fit(ds, { epochs: 1, batchSize: 8, onStep: (s) => void mine.push(s.loss) });
      losses.push(mine);
    }
    expect(losses[0]!.length).toBe(6);
    close(losses[1]!, losses[0]!, 1e-5);
  });

  it("a CNN without BatchNorm and shards: 2 trains the same bits on 1 and 2 workers", async () => {
    const models: Map<string, Float32Array | Int32Array>[] = [];
    for (const workers of [1, 2]) {
      const t = await trainer(workers, { shards: 2 }, false);
      await t.fit(ds, { epochs: 1, batchSize: 8 }); // the last batch (1 row) leaves one part empty
      models.push(stateOf(t.model));
    }
    const bits = (m: Map<string, Float32Array | Int32Array>) =>
      [...m].map(([name, v]) => [name, Array.from(new Uint32Array(v.buffer, v.byteOffset, v.length))]);
    expect(bits(models[1]!)).toEqual(bits(models[0]!));
  });

  it("refuses shards beyond the worker count for a model with BatchNorm, saying why", async () => {
    await expect(trainer(1, { shards: 2 })).rejects.toThrow(
      "shards (2) cannot be used with a model that has BatchNorm layers",
    );
  });

  it("a rank that fails before the in-step reduction releases the others: fit rejects, nothing hangs", async () => {
    // 7 samples per step on 2 ranks: shards of 4 and 3 rows; the model refuses 3 rows.
    const t = await DataParallel.create({
      model: { module: CNN, export: "createCnn", args: [true, 3] },
      workers: 2,
      barrierTimeoutMs: 60_000,
    });
    open.push(t);
    await expect(t.fit(images(14), { epochs: 1, batchSize: 7 })).rejects.toThrow(
      /rank \d: shard of 3 rows refused on purpose/,
    );
  });
});

describe("module buffers in checkpoints", () => {
  it("a checkpoint keeps the running statistics; a load on another worker count evaluates the same", async () => {
    const ds = images(30, 5);
    const t = await trainer(2);
    await t.fit(ds, { epochs: 1, batchSize: 10 });
    const file = join(dir, "cnn.msgpack");
    await t.save(file);
    const before = await t.evaluate(ds);
    const stored = readCheckpoint(file) as { buffers: Record<string, { dtype: string; shape: number[] }> };
    expect(Object.keys(stored.buffers)).toEqual(["bn.runningMean", "bn.runningVar", "bn.numBatchesTracked"]);
    expect(stored.buffers["bn.numBatchesTracked"]!.dtype).toBe("int32");
    const back = await DataParallel.load(file, {
      model: { module: CNN, export: "createCnn", args: [true] },
      workers: 3,
    });
    open.push(back);
    const want = stateOf(t.model);
    for (const [name, values] of stateOf(back.model)) expect(Array.from(values)).toEqual(Array.from(want.get(name)!));
    // ranks 1 and 2 evaluate with the restored statistics too (they keep copies of rank 0's)
    const after = await back.evaluate(ds);
    expect(Math.abs(after.loss - before.loss)).toBeLessThanOrEqual(1e-6);
    expect(Array.from(after.predictions!)).toEqual(Array.from(before.predictions!));
  });

  it("a checkpoint from before buffers were saved is refused for a model with buffers, saying why", async () => {
    const t = await trainer(1);
    await t.fit(images(10), { epochs: 1, batchSize: 10 });
    const file = join(dir, "old-cnn.msgpack");
    await t.save(file);
    const payload = readCheckpoint(file) as Record<string, unknown>;
    delete payload.buffers;
    writeCheckpoint(file, payload);
    await expect(
      DataParallel.load(file, { model: { module: CNN, export: "createCnn", args: [true] } }),
    ).rejects.toThrow(/old-cnn\.msgpack was written before checkpoints kept module buffers.*bn\.runningMean/);
  });

  it("a checkpoint from before buffers were saved still loads a model without buffers", async () => {
    const t = await trainer(1, {}, false);
    await t.fit(images(10), { epochs: 1, batchSize: 10 });
    const file = join(dir, "old-plain.msgpack");
    await t.save(file);
    const payload = readCheckpoint(file) as Record<string, unknown>;
    delete payload.buffers;
    writeCheckpoint(file, payload);
    const back = await DataParallel.load(file, { model: { module: CNN, export: "createCnn", args: [false] } });
    open.push(back);
    expect(Array.from(back.arena.params)).toEqual(Array.from(t.arena.params));
  });

  it("a stored buffer of the wrong shape or an unknown one is refused, naming it", async () => {
    const t = await trainer(1);
    await t.fit(images(10), { epochs: 1, batchSize: 10 });
    const file = join(dir, "bad-buffers.msgpack");
    await t.save(file);
    const good = readCheckpoint(file) as { buffers: Record<string, unknown> };
    const spec = { model: { module: CNN, export: "createCnn", args: [true] } };
    const wrong = structuredClone(good);
    wrong.buffers["bn.runningMean"] = { dtype: "float32", shape: [3], bytes: new Uint8Array(12) };
    writeCheckpoint(file, wrong);
    await expect(DataParallel.load(file, spec)).rejects.toThrow(
      /buffer 'bn\.runningMean' is float32 \[3\] in .*bad-buffers\.msgpack, the model has float32 \[4\]/,
    );
    const extra = structuredClone(good);
    extra.buffers["bn.ghost"] = { dtype: "float32", shape: [1], bytes: new Uint8Array(4) };
    writeCheckpoint(file, extra);
    await expect(DataParallel.load(file, spec)).rejects.toThrow(/holds buffers the model does not have: bn\.ghost/);
    const torn = structuredClone(good);
    torn.buffers["bn.runningVar"] = { dtype: "float32", shape: [4], bytes: new Uint8Array(5) };
    writeCheckpoint(file, torn);
    await expect(DataParallel.load(file, spec)).rejects.toThrow(
      /field 'buffers\.bn\.runningVar\.bytes' must be 16 bytes of float32 for shape \[4\]/,
    );
  });
});

describe("data sets with a sample shape", () => {
  const x = new Float32Array(6 * 4).fill(1);
  const y = new Int32Array(6);

  it("keeps the shape of a tensor's samples, or the one given, and flat rows otherwise", () => {
    expect(toSharedDataset({ x: tensor(x, { shape: [6, 1, 2, 2] }), y }).sampleShape).toEqual([1, 2, 2]);
    expect(toSharedDataset({ x, y, sampleShape: [2, 2] }).sampleShape).toEqual([2, 2]);
    expect(toSharedDataset({ x, y }).sampleShape).toBeNull();
    expect(toSharedDataset({ x: tensor(x, { shape: [6, 4] }), y }).sampleShape).toBeNull();
  });

  it("refuses a sample shape that does not hold each sample's values, naming both", () => {
    expect(() => toSharedDataset({ x, y, sampleShape: [3, 2] })).toThrow(
      "dataset: sampleShape [3, 2] holds 6 values, but each sample of x has 4",
    );
    expect(() => toSharedDataset({ x, y, sampleShape: [0, 4] })).toThrow(
      "dataset: sampleShape must be a list of 1 to 8 positive integers, got [0,4]",
    );
    expect(() => toSharedDataset({ x: tensor(x, { shape: [6, 1, 2, 2] }), y, sampleShape: [2, 2, 1] })).toThrow(
      "dataset: sampleShape [2, 2, 1] differs from x's sample shape [1, 2, 2]",
    );
  });

  it("the built-in mlp gets images as flat rows, and trains as on the rows themselves", async () => {
    const g = new Generator(4);
    const x = new Float32Array(12 * 4).map(() => g.normal());
    const y = new Int32Array(12).map(() => g.integer(0, 3));
    const run = async (data: Parameters<DataParallel["fit"]>[0]) => {
      const t = await DataParallel.create({ model: { kind: "mlp", sizes: [4, 8, 3] }, workers: 2, seed: 1 });
      open.push(t);
      await t.fit(data, { epochs: 1, batchSize: 6 });
      return Array.from(t.arena.params);
    };
    expect(await run({ x: tensor(x, { shape: [12, 1, 2, 2] }), y })).toEqual(await run({ x, y }));
  });

  it("a flat data set with sampleShape trains like the tensor of that shape", async () => {
    const ds = images(20, 9);
    const flat = { x: ds.x.data as Float32Array, y: ds.y, sampleShape: [1, 8, 8] };
    const a = await trainer(2);
    await a.fit(ds, { epochs: 1, batchSize: 10 });
    const b = await trainer(2);
    await b.fit(flat, { epochs: 1, batchSize: 10 });
    expect(Array.from(b.arena.params)).toEqual(Array.from(a.arena.params));
  });
});
