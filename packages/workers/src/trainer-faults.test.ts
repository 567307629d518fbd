import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { Generator } from "@threadgrad/core";
import { assertBuilt } from "./fixtures/harness.mjs";
import { epochOrder } from "./step-math.js";
import { DataParallel, type TrainerOptions } from "./trainer.js";

const open: DataParallel[] = [];
const FAULTY = new URL("./fixtures/faulty-model.mjs", import.meta.url).href;
// Samples whose first feature is MARK make this model output NaN: a non-finite loss from finite data.
const MARK = 999;
const NAN_MODEL = { module: FAULTY, export: "createModel", args: ["nan-marked", MARK] };

function data(n: number, features: number, classes: number, seed = 5) {
  const g = new Generator(seed);
  return {
    x: new Float32Array(n * features).map(() => g.normal()),
    y: new Int32Array(n).map(() => g.integer(0, classes)),
    length: n,
  };
}

async function create(opts: Partial<TrainerOptions>): Promise<DataParallel> {
  const t = await DataParallel.create({
    model: { kind: "mlp", sizes: [4, 8, 3] },
    workers: 2,
    barrierTimeoutMs: 10_000,
    ...opts,
  });
  open.push(t);
  return t;
}

beforeAll(() => assertBuilt());
afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close()));
});

describe("DataParallel faults", () => {
  it("a worker that throws fails fit with its rank and error, releases the others and shuts down", async () => {
    const t = await create({ model: { module: FAULTY, export: "createModel", args: ["throw", 2] } });
    const started = Date.now();
    await expect(t.fit(data(64, 4, 3), { epochs: 1, batchSize: 16 })).rejects.toThrow(
      /rank \d: model exploded on purpose/,
    );
    expect(Date.now() - started).toBeLessThan(5000);
    expect(t.isClosed).toBe(true);
  });

  it("when one rank fails, fit reports that rank's error, not the peers' released waits", async () => {
    // 33 samples over 2 ranks: rank 0 gets 17 rows, rank 1 gets 16; only rank 0's shard fails.
    const t = await create({ model: { module: FAULTY, export: "createModel", args: ["throw-rows", 17] } });
    for (let attempt = 0; attempt < 3; attempt++) {
      const again =
        attempt === 0
          ? t
          : await create({ model: { module: FAULTY, export: "createModel", args: ["throw-rows", 17] } });
      await expect(again.fit(data(33, 4, 3), { epochs: 1, batchSize: 33 })).rejects.toThrow(
        /^worker rank 0: shard of 17 rows refused on purpose/,
      );
    }
  });

  it("evaluate refuses a batch size below 1 instead of looping", async () => {
    const t = await create({});
    await expect(t.evaluate(data(8, 4, 3), { batchSize: 0 })).rejects.toThrow(
      /evaluate: batchSize must be a positive integer, got 0/,
    );
  });

  it("a worker that exits fails fit with its rank instead of hanging", async () => {
    const t = await create({ model: { module: FAULTY, export: "createModel", args: ["exit", 1] } });
    const started = Date.now();
    await expect(t.fit(data(64, 4, 3), { epochs: 1, batchSize: 16 })).rejects.toThrow(/rank \d/);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it(
    "a label out of range for the mlp's outputs is refused " +
      "in main with its sample index; the trainer stays usable",
    async () => {
      const t = await create({});
      const ds = data(32, 4, 3);
      ds.y[7] = 12;
      await expect(t.fit(ds, { epochs: 1, batchSize: 32 })).rejects.toThrow(
        "dataset: the label of sample 7 is 12; with 3 classes each must be a whole number from 0 to 2",
      );
      ds.y[7] = -1;
      await expect(t.evaluate(ds)).rejects.toThrow("dataset: the label of sample 7 is -1;");
      ds.y[7] = 2;
      await t.fit(ds, { epochs: 1, batchSize: 32 });
      expect(t.progress.globalStep).toBe(1);
    },
  );

  it(
    "a module model's ranks name a bad label's sample " + "index; later calls say the trainer is closed and why",
    async () => {
      const t = await create({ model: { module: FAULTY, export: "createModel", args: ["none", 0] } });
      const ds = data(32, 4, 3);
      ds.y[5] = 12;
      // The epoch's shuffle puts sample 5 elsewhere in its rank's shard of 16: the message names the sample.
      expect(epochOrder(32, 0, 0).indexOf(5) % 16).not.toBe(5);
      await expect(t.fit(ds, { epochs: 1, batchSize: 32 })).rejects.toThrow(
        /^worker rank \d: the label of sample 5 is 12, but the model has 3 outputs \(classes\)$/,
      );
      const later = await t.evaluate(data(8, 4, 3)).then(
        () => null,
        (e: Error) => e.message,
      );
      expect(later).toMatch(
        /^DataParallel: the trainer is closed \(it stopped after an error: worker rank \d: the label of sample 5 is 12/,
      );
    },
  );

  it(
    "data sets are checked in main: non-finite values and " + "x/y mismatches name the sample and the model's sizes",
    async () => {
      const t = await create({});
      const ds = data(16, 4, 3);
      ds.x[4 * 9 + 2] = Number.POSITIVE_INFINITY;
      await expect(t.fit(ds, { epochs: 1, batchSize: 8 })).rejects.toThrow(
        "dataset: x of sample 9 holds Infinity (feature 2); every value must be finite",
      );
      ds.x[4 * 9 + 2] = Number.NaN;
      await expect(t.evaluate(ds)).rejects.toThrow("dataset: x of sample 9 holds NaN (feature 2)");
      // 16 samples of 4 features with 8 labels: 8 "features" per sample for a model that takes 4.
      await expect(t.evaluate({ x: data(16, 4, 3).x, y: new Int32Array(8) })).rejects.toThrow(
        "dataset: x holds 64 values for 8 samples, but the model takes 4 inputs per sample (32 values): " +
          "do x and y hold the same number of samples?",
      );
      await expect(t.evaluate({ x: data(2, 4, 3).x, y: new Float32Array(2), length: 2 })).rejects.toThrow(
        "dataset: class labels in y must be int32, got Float32Array",
      );
      const mse = await create({ loss: "mse" });
      await expect(
        mse.evaluate({ x: data(2, 4, 3).x, y: new Float32Array([1, 2, 3, Number.NaN, 5, 6]), length: 2 }),
      ).rejects.toThrow("dataset: y of sample 1 holds NaN; every target must be finite");
      await expect(mse.evaluate({ x: data(2, 4, 3).x, y: new Float32Array(4), length: 2 })).rejects.toThrow(
        "dataset: y holds 2 targets per sample, but the model has 3 outputs",
      );
      await t.fit(data(16, 4, 3), { epochs: 1, batchSize: 8 }); // none of it reached the workers
      expect(t.progress.globalStep).toBe(2);
    },
  );

  it("workers that do not start in startTimeoutMs fail create with that option's name", async () => {
    const started = performance.now();
    await expect(
      create({ model: { module: FAULTY, export: "createModel", args: ["hang-start"] }, startTimeoutMs: 300 }),
    ).rejects.toThrow(/^DataParallel: starting workers did not finish within 300 ms \(startTimeoutMs\)/);
    expect(performance.now() - started).toBeLessThan(10_000);
    await expect(create({ startTimeoutMs: 0 })).rejects.toThrow("DataParallel: startTimeoutMs must be > 0 ms, got 0");
  });

  it("a non-finite loss stops with the step number and leaves the parameters untouched", async () => {
    const t = await create({ model: NAN_MODEL });
    const ds = data(64, 4, 3);
    await t.fit(ds, { epochs: 1, batchSize: 32 });
    const before = t.arena.params.slice();
    const bad = { ...ds, x: ds.x.slice() };
    for (let i = 0; i < 64; i++) bad.x[4 * i] = MARK;
    await expect(t.fit(bad, { epochs: 2, batchSize: 32 })).rejects.toThrow(/non-finite loss \(NaN\) at step 3/);
    expect(t.arena.params).toEqual(before);
  });

  it(
    "steps already in flight when a loss turns non-finite " + "change nothing, and the next fit goes on from there",
    async () => {
      const clean = data(128, 4, 3);
      const bad = { ...clean, x: clean.x.slice() };
      bad.x[4 * 77] = MARK; // one sample: one of epoch 0's four steps fails, the ones after it are fine
      const deep = await create({ model: NAN_MODEL, stepsInFlight: 4 });
      const one = await create({ model: NAN_MODEL, stepsInFlight: 1 });
      const errors = await Promise.all(
        [deep, one].map((t) =>
          t.fit(bad, { epochs: 1, batchSize: 32 }).then(
            () => "no error",
            (e: Error) => e.message,
          ),
        ),
      );
      expect(errors[0]).toMatch(/non-finite loss \(NaN\) at step \d/);
      expect(errors[0]).toBe(errors[1]);
      expect(deep.progress).toEqual(one.progress);
      const u32 = (t: DataParallel) =>
        new Uint32Array(t.arena.params.buffer, t.arena.params.byteOffset, t.arena.params.length).slice();
      expect(u32(deep)).toEqual(u32(one)); // with one step in flight nothing ran after the bad step
      await Promise.all([deep, one].map((t) => t.fit(clean, { epochs: 2, batchSize: 32 })));
      expect(deep.progress).toEqual(one.progress);
      expect(u32(deep)).toEqual(u32(one));
    },
  );

  it(
    "an onStep that throws mid-batch fails fit; the steps " + "handed out count; a later fit ends as a straight run",
    async () => {
      const ds = data(160, 4, 3); // 10 steps of 16 per epoch, handed out 8 at a time
      const straight = await create({});
      await straight.fit(ds, { epochs: 2, batchSize: 16 });
      const broken = await create({});
      await expect(
        broken.fit(ds, {
          epochs: 2,
          batchSize: 16,
          onStep: (s) => {
            if (s.step === 3) throw new Error("callback failed on purpose");
          },
        }),
      ).rejects.toThrow(/callback failed on purpose/);
      expect(broken.progress).toMatchObject({ epoch: 0, stepInEpoch: 8, globalStep: 8, optimizerStep: 8 }); // steps 4-8 had run
      await broken.fit(ds, { epochs: 2, batchSize: 16 });
      expect(broken.progress).toEqual(straight.progress);
      const u32 = (t: DataParallel) =>
        new Uint32Array(t.arena.params.buffer, t.arena.params.byteOffset, t.arena.params.length).slice();
      expect(u32(broken)).toEqual(u32(straight));
    },
  );

  // 128 samples in steps of 16 with windows of 3 micro-steps: [1, 3], [4, 6], [7, 8] per epoch.
  it.each([
    { inFlight: 1, bad: 4 },
    { inFlight: 1, bad: 5 },
    { inFlight: 4, bad: 4 },
    { inFlight: 4, bad: 5 },
    { inFlight: 8, bad: 6 },
  ])(
    "a non-finite loss at step $bad inside an accumulation window ($inFlight in flight) rolls back " +
      "to the window's start; the next fit recomputes it",
    async ({ inFlight, bad }) => {
      const clean = data(128, 4, 3);
      const poisoned = { ...clean, x: clean.x.slice() };
      const sample = epochOrder(128, 0, 0)[(bad - 1) * 16 + 5]!; // a sample of step `bad` in epoch 0
      poisoned.x[4 * sample] = MARK;
      const straight = await create({ model: NAN_MODEL, accumulateSteps: 3 });
      await straight.fit(clean, { epochs: 2, batchSize: 16 });
      const t = await create({ model: NAN_MODEL, accumulateSteps: 3, stepsInFlight: inFlight });
      await expect(t.fit(poisoned, { epochs: 2, batchSize: 16 })).rejects.toThrow(
        new RegExp(
          `non-finite loss \\(NaN\\) at step ${bad}; the update was not applied ` +
            "\\(the next fit recomputes its accumulation window from step 4\\)",
        ),
      );
      expect(t.progress).toMatchObject({ epoch: 0, stepInEpoch: 3, globalStep: 3, optimizerStep: 1 });
      await t.fit(clean, { epochs: 2, batchSize: 16 });
      expect(t.progress).toEqual(straight.progress);
      const u32 = (x: DataParallel) =>
        new Uint32Array(x.arena.params.buffer, x.arena.params.byteOffset, x.arena.params.length).slice();
      expect(u32(t)).toEqual(u32(straight));
    },
  );

  it(
    "an onStep that throws while a non-finite step is in " + "flight stops counting there and rolls back to its window",
    async () => {
      const clean = data(128, 4, 3);
      const poisoned = { ...clean, x: clean.x.slice() };
      poisoned.x[4 * epochOrder(128, 0, 0)[16 + 3]!] = MARK; // a sample of step 2
      const straight = await create({ model: NAN_MODEL });
      await straight.fit(clean, { epochs: 2, batchSize: 16 });
      const t = await create({ model: NAN_MODEL, stepsInFlight: 4 });
      await expect(
        t.fit(poisoned, {
          epochs: 2,
          batchSize: 16,
          onStep: () => {
            throw new Error("callback failed on purpose");
          },
        }),
      ).rejects.toThrow(/callback failed on purpose/);
      expect(t.progress).toMatchObject({ globalStep: 1, stepInEpoch: 1, optimizerStep: 1 }); // step 2 was bad, 3 and 4 halted
      await t.fit(clean, { epochs: 2, batchSize: 16 });
      const u32 = (x: DataParallel) =>
        new Uint32Array(x.arena.params.buffer, x.arena.params.byteOffset, x.arena.params.length).slice();
      expect(t.progress).toEqual(straight.progress);
      expect(u32(t)).toEqual(u32(straight));
    },
  );

  it(
    "a rank stuck in its own code fails fit with the time-out, " +
      "not with the barrier errors of the ranks it held up",
    async () => {
      const t = await create({
        model: { module: FAULTY, export: "createModel", args: ["hang-rows", 17] },
        stepTimeoutMs: 500,
      });
      const started = performance.now();
      await expect(t.fit(data(33, 4, 3), { epochs: 1, batchSize: 33 })).rejects.toThrow(
        /^DataParallel: step 1 did not finish within 500 ms \(stepTimeoutMs\); a rank is stuck/,
      );
      expect(performance.now() - started).toBeLessThan(8000);
      expect(t.isClosed).toBe(true);
    },
  );

  it("with skipNonFinite the bad step is skipped and training goes on", async () => {
    const t = await create({ model: NAN_MODEL, skipNonFinite: true });
    const ds = data(64, 4, 3);
    ds.x[0] = MARK; // one sample makes NaN: every step containing it is skipped
    const skipped: boolean[] = [];
    await t.fit(ds, { epochs: 2, batchSize: 32, onStep: (s) => void skipped.push(s.skipped) });
    expect(skipped.filter(Boolean).length).toBe(2);
    expect(t.progress.optimizerStep).toBe(2);
    expect([...t.arena.params].every(Number.isFinite)).toBe(true);
  });

  it("the last checkpoint on disk survives a failed run intact", async () => {
    const dir = mkdtempSync(join(tmpdir(), "threadgrad-fault-"));
    try {
      const t = await create({ model: { module: FAULTY, export: "createModel", args: ["throw", 2] } });
      const ds = data(64, 4, 3);
      await t.fit(ds, { epochs: 1, batchSize: 32 }); // 2 steps: 2 forward calls per rank, the limit
      await t.save(join(dir, "latest.msgpack"));
      await expect(t.fit(ds, { epochs: 2, batchSize: 32 })).rejects.toThrow(/model exploded/);
      const back = await DataParallel.load(join(dir, "latest.msgpack"), {
        workers: 1,
        model: { module: FAULTY, export: "createModel", args: ["none", 0] },
      });
      open.push(back);
      expect(back.progress.globalStep).toBe(2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("bad options are refused with a clear message before any worker starts", async () => {
    await expect(create({ workers: 0 })).rejects.toThrow(/workers: must be 'auto' or an integer/);
    await expect(create({ accumulateSteps: 0 })).rejects.toThrow(/accumulateSteps must be a positive integer/);
    await expect(create({ stepsInFlight: 0 })).rejects.toThrow(/stepsInFlight must be an integer from 1 to 16, got 0/);
    await expect(create({ optimizer: { name: "adam", lr: -1 } })).rejects.toThrow(/Adam: lr must be >= 0, got -1/);
    const t = await create({});
    await expect(t.fit(data(8, 4, 3), { epochs: 1, batchSize: 0 })).rejects.toThrow(/batchSize must be an integer/);
    await expect(t.fit({ x: new Float32Array(10), y: new Int32Array(3) }, { epochs: 1, batchSize: 2 })).rejects.toThrow(
      /dataset: x holds 10 values/,
    );
  });
});
