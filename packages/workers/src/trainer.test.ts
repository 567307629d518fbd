import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { createHook } from "node:async_hooks";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { Worker } from "node:worker_threads";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { Generator, adamScalarsF32, adamUpdateF32, manualSeed, nn, noGrad, tensor } from "@threadgrad/core";
import { resolveFlatOptions } from "@threadgrad/optim";
import { assertBuilt } from "./fixtures/harness.mjs";
import { shardRange } from "./shard.js";
import { buildMlp } from "./spec.js";
import { epochOrder } from "./step-math.js";
import { availableWorkers } from "./threads.js";
import { DataParallel, type TrainerOptions } from "./trainer.js";

const SIZES = [20, 16, 5];
const open: DataParallel[] = [];
const dirs: string[] = [];

function data(n: number, seed = 3, classes = 5) {
  const g = new Generator(seed);
  const x = new Float32Array(n * SIZES[0]!).map(() => g.normal());
  const y = new Int32Array(n).map(() => g.integer(0, classes));
  return { x, y, length: n };
}

async function trainer(opts: Partial<TrainerOptions> & { workers: number }): Promise<DataParallel> {
  const t = await DataParallel.create({ model: { kind: "mlp", sizes: SIZES }, seed: 11, ...opts });
  open.push(t);
  return t;
}

/** `global.gc` of this process, exposed without restarting it. */
function exposeGc(): () => void {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}

/** Threads of this process as the kernel counts them, so a thread that outlives its Worker shows (Linux; else 0). */
const osThreadCount = (): number =>
  existsSync("/proc/self/status")
    ? Number(/^Threads:\s+(\d+)$/m.exec(readFileSync("/proc/self/status", "utf8"))![1])
    : 0;
/** Kinds of the process's open handles, timers aside (the test runner's own come and go). */
const handleKinds = (): string[] =>
  process
    .getActiveResourcesInfo()
    .filter((kind) => kind !== "Timeout")
    .sort();
const params = (t: DataParallel): Float32Array => t.arena.params.slice();
const bits = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), "threadgrad-trainer-"));
  dirs.push(d);
  return d;
};

/**
 * The single-thread loop the trainer must reproduce bit for bit: the same shards' gradients of
 * lossSum/batch, summed in rank order in float32, then one float32 Adam update (the trainer's: in
 * JavaScript here, the same bits as its SIMD kernel) over every element.
 */
function referenceRun(ranks: number, ds: ReturnType<typeof data>, epochs: number, batchSize: number): Float32Array[] {
  manualSeed(11);
  const model = buildMlp(SIZES);
  const ps = model.parameters();
  const opts = resolveFlatOptions("adam", { lr: 1e-3 });
  const state = ps.map((p) => [new Float32Array(p.numel), new Float32Array(p.numel)]);
  let t = 0;
  for (let epoch = 0; epoch < epochs; epoch++) {
    const order = epochOrder(ds.length, 11, epoch);
    for (let s = 0; s * batchSize < ds.length; s++) {
      const idx = order.subarray(s * batchSize, Math.min(ds.length, (s + 1) * batchSize));
      const sums = ps.map((p) => new Float32Array(p.numel));
      for (let r = 0; r < ranks; r++) {
        const [a, b] = shardRange(idx.length, ranks, r);
        if (b <= a) continue;
        const x = new Float32Array((b - a) * SIZES[0]!);
        const y = new Int32Array(b - a);
        for (let i = a; i < b; i++) {
          x.set(ds.x.subarray(idx[i]! * SIZES[0]!, (idx[i]! + 1) * SIZES[0]!), (i - a) * SIZES[0]!);
          y[i - a] = ds.y[idx[i]!]!;
        }
        model.zeroGrad();
        const out = model.forward(tensor(x, { shape: [b - a, SIZES[0]!] }));
        nn.F.crossEntropy(out, tensor(y), { reduction: "sum" }).div(idx.length).backward();
        ps.forEach((p, k) => {
          const g = p.grad!.data as Float32Array;
          // rank 0's slice starts as its own gradient; later ranks add on in order (float32 stores)
          if (r === 0) sums[k]!.set(g);
          else for (let i = 0; i < g.length; i++) sums[k]![i]! += g[i]!;
        });
      }
      t++;
      const [beta1, beta2] = opts.betas;
      const scalars = adamScalarsF32(t, { ...opts, beta1, beta2, decoupledWeightDecay: false });
      ps.forEach((p, k) => {
        const [m, v] = state[k]!;
        adamUpdateF32(null, p.data as Float32Array, sums[k]!, m!, v!, null, 0, p.numel, scalars);
      });
    }
  }
  return ps.map((p) => (p.data as Float32Array).slice());
}

beforeAll(() => assertBuilt());

afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close()));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("DataParallel", () => {
  it.each([1, 2, 3])(
    "%i workers reproduce the single-thread loop over the same shards bit for bit",
    async (workers) => {
      const ds = data(100);
      const t = await trainer({ workers });
      await t.fit(ds, { epochs: 2, batchSize: 32 }); // 4 steps per epoch; the last batch (4) splits unevenly
      const expected = referenceRun(workers, ds, 2, 32);
      const named = [...t.model.namedParameters()];
      named.forEach(([, p], k) => {
        expect(bits(p.data as Float32Array)).toEqual(bits(expected[k]!));
      });
    },
  );

  it.each([
    [1, 2],
    [2, 2],
    [1, 3],
    [3, 3],
    [2, 4],
  ])(
    "%i worker(s) with shards: %i reproduce the single-thread loop over that many shards bit for bit",
    async (workers, shards) => {
      const ds = data(100);
      const t = await trainer({ workers, shards });
      await t.fit(ds, { epochs: 2, batchSize: 32 }); // the last batch (4) leaves parts of 1 or 0 rows
      const expected = referenceRun(shards, ds, 2, 32);
      [...t.model.namedParameters()].forEach(([, p], k) => {
        expect(bits(p.data as Float32Array)).toEqual(bits(expected[k]!));
      });
    },
  );

  it("with shards: 2, evaluation gives the same loss bits on 1 and 2 workers (not so without)", async () => {
    const ds = data(100);
    const losses = async (shards?: number) => {
      const out: number[] = [];
      for (const workers of [1, 2]) {
        const t = await trainer({ workers, shards });
        await t.fit(ds, { epochs: 1, batchSize: 32 });
        out.push((await t.evaluate(ds, { batchSize: 25 })).loss);
      }
      return out;
    };
    const [one, two] = await losses(2);
    expect(two).toBe(one);
    // Without them the two runs sum in other orders: the test above would see it.
    const [a, b] = await losses();
    expect(b).not.toBe(a);
  });

  it("virtual shards: the step reports the whole batch's loss and accuracy, as without them", async () => {
    const ds = data(64);
    const plain = await trainer({ workers: 1 });
    const split = await trainer({ workers: 1, shards: 4 });
    const a = await plain.fit(ds, { epochs: 1, batchSize: 64 });
    const b = await split.fit(ds, { epochs: 1, batchSize: 64 });
    // One step from the same weights: the same rows, the loss summed in another order.
    expect(b.history[0]!.loss).toBeCloseTo(a.history[0]!.loss, 5);
    expect(b.history[0]!.accuracy).toBe(a.history[0]!.accuracy);
  });

  it.each([1, 3, 4])(
    "workers 'auto' with shards: %i runs the largest divisor of it within the usable cores",
    async (shards) => {
      const t = await DataParallel.create({ model: { kind: "mlp", sizes: SIZES }, workers: "auto", shards });
      open.push(t);
      let want = Math.min(shards, availableWorkers());
      while (shards % want !== 0) want--;
      expect(t.numWorkers).toBe(want);
    },
  );

  it.each([
    [{ workers: 2, shards: 3 }, "shards (3) must be a multiple of the number of workers (2)"],
    [{ workers: 1, shards: 0 }, "shards must be a positive integer, got 0"],
    [{ workers: 1, shards: 1.5 }, "shards must be a positive integer, got 1.5"],
  ])("refuses %o", async (opts, message) => {
    await expect(trainer(opts)).rejects.toThrow(message);
  });

  it("a batch smaller than the worker count (empty shards) still gives the global mean gradient", async () => {
    const ds = data(8);
    const t = await trainer({ workers: 3 });
    await t.fit(ds, { epochs: 1, batchSize: 2 });
    const expected = referenceRun(3, ds, 1, 2);
    [...t.model.namedParameters()].forEach(([, p], k) => {
      expect(bits(p.data as Float32Array)).toEqual(bits(expected[k]!));
    });
  });

  it(
    "2 workers match the plain full-batch loop to 1e-5 relative " +
      "after 20 Adam steps, and repeat runs are identical",
    async () => {
      const ds = data(640);
      const a = await trainer({ workers: 2 });
      await a.fit(ds, { epochs: 2, batchSize: 64 });
      const b = await trainer({ workers: 2 });
      await b.fit(ds, { epochs: 2, batchSize: 64 });
      expect(bits(params(a))).toEqual(bits(params(b)));
      const full = referenceRun(1, ds, 2, 64);
      const got = [...a.model.parameters()].map((p) => p.data as Float32Array);
      let diff = 0,
        norm = 0;
      got.forEach((g, k) => {
        g.forEach((v, i) => {
          diff += (v - full[k]![i]!) ** 2;
          norm += v * v;
        });
      });
      expect(Math.sqrt(diff / norm)).toBeLessThan(1e-5);
    },
  );

  it("dropout masks depend on the sample, not the worker: 1 and 2 workers agree", async () => {
    const ds = data(128);
    const model = { kind: "mlp" as const, sizes: SIZES, dropout: 0.5 };
    const one = await trainer({ workers: 1, model });
    await one.fit(ds, { epochs: 1, batchSize: 64 });
    const two = await trainer({ workers: 2, model });
    await two.fit(ds, { epochs: 1, batchSize: 64 });
    const p1 = params(one),
      p2 = params(two);
    let maxDiff = 0;
    p1.forEach((v, i) => {
      maxDiff = Math.max(maxDiff, Math.abs(v - p2[i]!));
    });
    expect(maxDiff).toBeLessThan(1e-6);
    const noDrop = await trainer({ workers: 1 });
    await noDrop.fit(ds, { epochs: 1, batchSize: 64 });
    expect(bits(params(noDrop))).not.toEqual(bits(p1)); // dropout really was applied
  });

  it("accumulating 2 micro-batches of 32 equals one batch of 64", async () => {
    const ds = data(128);
    const acc = await trainer({ workers: 2, accumulateSteps: 2 });
    const steps: boolean[] = [];
    await acc.fit(ds, { epochs: 1, batchSize: 32, onStep: (s) => void steps.push(s.updated) });
    expect(steps).toEqual([false, true, false, true]);
    const plain = await trainer({ workers: 2 });
    await plain.fit(ds, { epochs: 1, batchSize: 64 });
    const a = params(acc),
      b = params(plain);
    a.forEach((v, i) => {
      expect(Math.abs(v - b[i]!)).toBeLessThan(1e-6);
    });
    expect(acc.progress.optimizerStep).toBe(2);
  });

  it(
    "forget lets the workers drop a data set; one used " + "again is sent again; other targets replace the old copy",
    async () => {
      const t = await trainer({ workers: 2 });
      const a = data(64),
        b = data(32, 4);
      await t.fit(a, { epochs: 1, batchSize: 32 });
      const before = await t.evaluate(b);
      expect(await t.forget(a)).toBe(1); // b is still held
      expect(await t.forget({ ...b })).toBe(0); // a fresh wrapper around the same arrays finds it
      expect(await t.forget(b)).toBe(0); // already forgotten: nothing to do
      expect(await t.evaluate(b)).toEqual(before); // sent again
      const relabelled = { ...b, y: b.y.map((v) => (v + 1) % 5) };
      await t.evaluate(relabelled); // same features, other targets: a new copy, and the old one goes
      expect(await t.forget(a)).toBe(1);
    },
  );

  it(
    "fresh 2 MB data sets evaluated one after another reuse " + "the storage of those let go: memory stays bounded",
    async () => {
      // V8 collects a SharedArrayBuffer in a rank only when that rank's own collector runs, and a
      // shared buffer puts no pressure on it: without reuse each fresh copy stayed until close.
      const gc = exposeGc();
      const t = await trainer({ workers: 2 });
      const n = 26_214; // 20 float32 features: 2 MB of x per data set
      const bytes = n * SIZES[0]! * 4;
      const [a, b] = [data(n, 7), data(n, 8)];
      const fresh = (d: typeof a) => ({ x: d.x.slice(), y: d.y.slice(), length: n });
      const expected = [(await t.evaluate(fresh(a))).loss, (await t.evaluate(fresh(b))).loss];
      const arrayBuffers = () => {
        gc();
        return process.memoryUsage().arrayBuffers;
      };
      const base = arrayBuffers();
      let peak = base;
      for (let i = 0; i < 100; i++) {
        const ds = fresh(i % 2 === 0 ? a : b);
        // Half are forgotten explicitly, half left to main's collector (the FinalizationRegistry).
        const ev = await t.evaluate(ds);
        expect(ev.loss).toBe(expected[i % 2]); // reused storage holds this data set, not an earlier one
        if (i % 4 < 2) expect(await t.forget(ds)).toBeLessThanOrEqual(3);
        peak = Math.max(peak, arrayBuffers());
      }
      expect(peak - base).toBeLessThan(4 * bytes);
      expect(await t.forget(a)).toBeLessThanOrEqual(2);
    },
  );

  it("fit reports each epoch to onEpochEnd and resolves with that history", async () => {
    const ds = data(96);
    const t = await trainer({ workers: 2, schedule: { kind: "step", stepSize: 3, gamma: 0.5 } });
    const steps: { loss: number; accuracy: number | null; lr: number; samples: number }[] = [];
    const seen: unknown[] = [];
    const result = await t.fit(ds, {
      epochs: 2,
      batchSize: 40,
      onStep: (s) => void steps.push(s),
      onEpochEnd: (log) => void seen.push(log),
    });
    expect(result.history).toEqual(seen);
    expect(result).toMatchObject({ epoch: 2, globalStep: 6 });
    // Epoch e holds steps 3e..3e+2 of 40, 40 and 16 samples: its loss is their sample-weighted mean.
    result.history.forEach((log, e) => {
      const own = steps.slice(3 * e, 3 * e + 3);
      const loss = own.reduce((a, s) => a + s.loss * s.samples, 0) / 96;
      const accuracy = own.reduce((a, s) => a + s.accuracy! * s.samples, 0) / 96;
      expect(log).toMatchObject({ epoch: e + 1, step: 3 * e + 3, steps: 3, samples: 96, lr: own[2]!.lr });
      expect(log.loss).toBeCloseTo(loss, 12);
      expect(log.accuracy).toBeCloseTo(accuracy, 12);
      expect(log.durationMs).toBeGreaterThanOrEqual(0);
    });
    // The lr of step n uses the n-1 updates before it: steps 3 and 6 follow 2 and 5 (one decay).
    expect(result.history.map((l) => l.lr)).toEqual([1e-3, 1e-3 * 0.5]);
  });

  it("setLrScale scales the lr from the next step, is saved with the progress and resumes bit for bit", async () => {
    const ds = data(96);
    const dir = tmp();
    const straight = await trainer({ workers: 2 });
    await straight.fit(ds, { epochs: 1, batchSize: 32 });
    straight.setLrScale(0.25);
    const lrs: number[] = [];
    await straight.fit(ds, { epochs: 3, batchSize: 32, onStep: (s) => void lrs.push(s.lr) });
    expect(lrs).toEqual(Array(6).fill(1e-3 * 0.25));
    expect(() => straight.setLrScale(0)).toThrow("DataParallel.setLrScale: factor must be a finite number > 0, got 0");

    const first = await trainer({ workers: 2 });
    await first.fit(ds, { epochs: 1, batchSize: 32 });
    first.setLrScale(0.25);
    await first.fit(ds, { epochs: 2, batchSize: 32 });
    await first.save(join(dir, "scaled.msgpack"));
    const resumed = await DataParallel.load(join(dir, "scaled.msgpack"));
    open.push(resumed);
    expect(resumed.progress.lrScale).toBe(0.25);
    await resumed.fit(ds, { epochs: 3, batchSize: 32 });
    expect(bits(params(resumed))).toEqual(bits(params(straight)));
    // A scale of 1 is the plain schedule again.
    resumed.setLrScale(1);
    expect(resumed.progress.lrScale).toBeUndefined();
  });

  it("a checkpoint of a shards: 2 run keeps them: resumed on 1 worker it continues 2 workers' run bit for bit", async () => {
    const ds = data(96);
    const dir = tmp();
    const straight = await trainer({ workers: 2, shards: 2 });
    await straight.fit(ds, { epochs: 3, batchSize: 32 });
    const first = await trainer({ workers: 2, shards: 2 });
    await first.fit(ds, { epochs: 3, batchSize: 32, untilStep: 4 });
    await first.save(join(dir, "ckpt.msgpack"));
    await first.close();
    const resumed = await DataParallel.load(join(dir, "ckpt.msgpack"), { workers: 1 });
    open.push(resumed);
    expect(resumed.arena.layout.gradSlices).toBe(2);
    await resumed.fit(ds, { epochs: 3, batchSize: 32 });
    expect(bits(params(resumed))).toEqual(bits(params(straight)));
  });

  it("a checkpoint resumed mid-training continues bit for bit", async () => {
    const ds = data(96);
    const dir = tmp();
    const straight = await trainer({ workers: 2 });
    await straight.fit(ds, { epochs: 3, batchSize: 32 });
    const first = await trainer({ workers: 2 });
    await first.fit(ds, { epochs: 3, batchSize: 32, untilStep: 4 });
    expect(first.progress).toMatchObject({ epoch: 1, stepInEpoch: 1, globalStep: 4 });
    await first.save(join(dir, "ckpt.msgpack"));
    await first.close();
    const resumed = await DataParallel.load(join(dir, "ckpt.msgpack"), { workers: 1 });
    open.push(resumed);
    await resumed.fit(ds, { epochs: 3, batchSize: 32 });
    expect(bits(params(resumed))).not.toEqual(bits(new Float32Array(params(resumed).length)));
    // 1 worker after 2 differs only by summation order inside a step, so compare loosely here ...
    params(resumed).forEach((v, i) => {
      expect(Math.abs(v - params(straight)[i]!)).toBeLessThan(1e-6);
    });
    // ... and bit for bit when resumed with the same worker count.
    const again = await DataParallel.load(join(dir, "ckpt.msgpack"));
    open.push(again);
    expect(again.numWorkers).toBe(2);
    await again.fit(ds, { epochs: 3, batchSize: 32 });
    expect(bits(params(again))).toEqual(bits(params(straight)));
  });

  it("refuses corrupt, truncated and foreign checkpoint files with a clear message", async () => {
    const dir = tmp();
    const t = await trainer({ workers: 1 });
    const file = join(dir, "c.msgpack");
    await t.save(file);
    const good = readFileSync(file);
    const flipped = Buffer.from(good);
    flipped[flipped.length - 5]! ^= 0xff;
    writeFileSync(join(dir, "flip"), flipped);
    writeFileSync(join(dir, "cut"), good.subarray(0, good.length - 100));
    writeFileSync(join(dir, "foreign"), "hello, not a checkpoint");
    await expect(DataParallel.load(join(dir, "flip"))).rejects.toThrow(/corrupt \(checksum mismatch\)/);
    await expect(DataParallel.load(join(dir, "cut"))).rejects.toThrow(/is truncated/);
    await expect(DataParallel.load(join(dir, "foreign"))).rejects.toThrow(/not a threadgrad checkpoint/);
    await expect(DataParallel.load(join(dir, "missing"))).rejects.toThrow(/cannot read/);
  });

  it("close() is idempotent and a closed trainer refuses work", async () => {
    const t = await trainer({ workers: 2 });
    await t.close();
    await t.close();
    await expect(t.fit(data(8), { epochs: 1, batchSize: 4 })).rejects.toThrow(/closed/);
  });

  it("close() leaves no worker thread, OS thread, handle or timer behind", async () => {
    await readFile(new URL(import.meta.url)); // libuv starts its thread pool on first use: not ours to count
    await new Promise((resolve) => setImmediate(resolve)); // and let that read's requests settle
    const threadsBefore = osThreadCount();
    const resourcesBefore = handleKinds();
    // Every timer, message port or other handle that the trainer (or its pool) opens from here on,
    // until it closes. The test runner's own timers and ports, opened on its schedule while this test
    // runs, are told apart by the stack that created them. (Workers are counted by their exit events
    // and the OS threads: a Worker's own resource lives until collected.)
    const open = new Map<number, string>();
    const ours = (stack: string) =>
      /[\\/]packages[\\/](core|workers)[\\/](src|dist)[\\/](?!.*\.test\.)|piscina/.test(stack);
    const stackLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 50;
    const hook = createHook({
      init: (id, type) => {
        if (/^(Timeout|MESSAGEPORT|.*WRAP)$/.test(type) && ours(new Error().stack ?? "")) open.set(id, type);
      },
      destroy: (id) => void open.delete(id),
    }).enable();
    const exitCodes = new Map<Worker, number | null>();
    const onWorker = (worker: Worker) => {
      exitCodes.set(worker, null);
      worker.once("exit", (code) => exitCodes.set(worker, code));
    };
    process.on("worker", onWorker);
    try {
      const t = await DataParallel.create({ model: { kind: "mlp", sizes: SIZES }, seed: 11, workers: 2 });
      await t.fit(data(64), { epochs: 1, batchSize: 16 });
      if (threadsBefore > 0) expect(osThreadCount()).toBeGreaterThanOrEqual(threadsBefore + 2);
      await t.close();
      await new Promise((resolve) => setImmediate(resolve)); // destroy hooks run on the next turn
      // A cleared timer's destroy hook is queued for a later turn: give those a few (bounded) turns.
      for (let turn = 0; turn < 50 && open.size > 0; turn++) await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off("worker", onWorker);
      hook.disable();
      Error.stackTraceLimit = stackLimit;
    }
    // An OS thread is joined a little after its Worker's exit event: give the kernel a few turns
    // (bounded) to see it gone before counting.
    for (let turn = 0; turn < 200 && osThreadCount() > threadsBefore; turn++) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(exitCodes.size).toBeGreaterThanOrEqual(2);
    expect([...exitCodes.values()]).not.toContain(null); // every worker's exit event fired
    expect([...open.values()]).toEqual([]);
    expect(handleKinds()).toEqual(resourcesBefore);
    expect(osThreadCount()).toBeLessThanOrEqual(threadsBefore);
  });

  it("an aborted fit stops once the steps in flight are done, and the trainer keeps working", async () => {
    const ds = data(4000);
    const t = await trainer({ workers: 2, stepsInFlight: 4 });
    const ac = new AbortController();
    const seen: number[] = [];
    const onStep = (s: { step: number }) => {
      seen.push(s.step);
      if (s.step === 10) ac.abort();
    };
    const stopped = await t.fit(ds, { epochs: 50, batchSize: 16, signal: ac.signal, onStep });
    // Steps 9-12 were handed out together, before the abort: they finish, and no step starts after.
    expect(seen).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    expect(stopped).toMatchObject({ epoch: 0, stepInEpoch: 12, globalStep: 12, optimizerStep: 12 });

    // Evaluation agrees with the same parameters run on the main thread ...
    const r = await t.evaluate(ds);
    const logits = noGrad(() => t.model.forward(tensor(ds.x, { shape: [ds.length, SIZES[0]!] })));
    const loss = nn.F.crossEntropy(logits, tensor(ds.y)).item();
    const predicted = logits.argmax(1).data;
    const accuracy = ds.y.filter((label, i) => predicted[i] === label).length / ds.length;
    expect(r.samples).toBe(4000);
    expect(r.loss).toBeCloseTo(loss, 5);
    expect(r.accuracy).toBeCloseTo(accuracy, 3);
    // ... and fit carries on from step 12 to the end of the epoch.
    await t.fit(ds, { epochs: 1, batchSize: 16 });
    expect(t.progress).toMatchObject({ epoch: 1, stepInEpoch: 0, globalStep: 250 });
  });
});
