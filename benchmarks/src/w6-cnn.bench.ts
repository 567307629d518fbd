// W6: how many samples per second does a convolutional network's training step process? The
// built-in `cnn` on Fashion-MNIST (W6, defined in @threadgrad/cli: the object `threadgrad bench
// --model cnn` runs), data-parallel on 1 and 2 workers, over a stream of real batches (consecutive
// batches of a seeded shuffle), against PyTorch on 1 and 2 threads on the same stream rule.
import { type DataSplit, W6, loadDataset, w6Data } from "@threadgrad/cli";
import { type DataParallel as DP, DataParallel, type DatasetLike, type FitOptions } from "@threadgrad/workers";
import { kernelBackends } from "./backends.js";
import { type Ctx, type Timing, measure } from "./measure.js";
import { pytorchRows } from "./peers/pytorch.js";
import { type Row, rowFrom, skipRow } from "./table.js";

/** Worker counts W6 is reported on. */
export const W6_WORKERS = [1, 2] as const;
/** Training steps per measured call (--quick: 1). */
export const STEPS_PER_CALL = 8;

/** The key every W6 row shares, threadgrad's and the peers', so the table sets them side by side. */
export const W6_KEY = {
  workload: "W6 cnn",
  config: `batch ${W6.batchSize}`,
  unit: "samples/s",
  better: "higher",
} as const;

/**
 * Milliseconds per training step of a trainer that is already built, through tinybench: each call
 * runs `stepsPerCall` steps of `fit` from where the last call stopped (so the data stream goes on:
 * consecutive batches, a new shuffle every epoch) and reports its time per step. One untimed call
 * first sends the data to the workers. Any model and data: W6 and W7 use it. `onEpochEnd` goes to
 * fit (W7 redraws its token windows there, when no step is in flight).
 * @example const t = await measureSteps(ctx, trainer, data, 128); // t.median ms per step
 */
export async function measureSteps(
  ctx: Ctx,
  trainer: DP,
  data: DatasetLike & { length: number },
  batchSize: number,
  stepsPerCall = ctx.quick ? 1 : STEPS_PER_CALL,
  onEpochEnd?: FitOptions["onEpochEnd"],
): Promise<Timing> {
  const call = async () => {
    const before = trainer.progress.globalStep;
    const t0 = performance.now();
    const until = before + stepsPerCall;
    await trainer.fit(data, { epochs: trainer.progress.epoch + 2, batchSize, untilStep: until, onEpochEnd });
    const steps = trainer.progress.globalStep - before;
    if (steps < 1) throw new Error(`measureSteps: fit ran no step (from step ${before})`);
    return { overriddenDuration: (performance.now() - t0) / steps };
  };
  await call();
  return measure(`steps ×${trainer.numWorkers}`, call, ctx, { warmupIterations: 5 });
}

export async function w6Cnn(ctx: Ctx): Promise<Row[]> {
  const rows: Row[] = [];
  const { data, source, real } = w6Data(0);
  if (!real) console.log(`W6: Fashion-MNIST absent, threadgrad trains on ${source}`);
  const kb = await kernelBackends();
  const kernels = kb === null ? "js" : kb.current();
  for (const workers of W6_WORKERS) {
    const label = `${workers} worker${workers > 1 ? "s" : ""}`;
    ctx.log(`W6 threadgrad, ${label}`);
    const trainer = await DataParallel.create({
      model: W6.model,
      loss: W6.loss,
      optimizer: { ...W6.optimizer },
      workers,
      seed: 0,
      maxBatchSize: W6.batchSize,
    });
    try {
      const t = await measureSteps(ctx, trainer, data, W6.batchSize);
      const over = workers > ctx.cores ? `; ${workers} workers > ${ctx.cores} cores` : "";
      rows.push(
        rowFrom(
          { ...W6_KEY, impl: `threadgrad, ${label}`, peer: false, threads: workers },
          t,
          (ms) => (W6.batchSize * 1000) / ms,
          {
            note: `DataParallel, kernels ${kernels}, consecutive batches of a seeded shuffle of ${source}${over}`,
            extra: { workers, realData: real },
          },
        ),
      );
    } finally {
      await trainer.close();
    }
  }
  rows.push(...(await pytorchRows(ctx, "w6")));
  return rows;
}

/** W6's training run: the CLI's `train --data fashion-mnist --model cnn --epochs 3 --batch-size 128`. */
export const W6_TRAINING = { epochs: 3, workers: 2, seed: 0 } as const;
/** --quick trains one epoch on this many samples (a smoke test, not a result) */
const QUICK_TRAIN = 1024;

/**
 * W6 training: seconds per epoch and test accuracy of 3 epochs of the cnn on Fashion-MNIST, on 2
 * workers, beside PyTorch's same recipe on 1 and 2 threads. Skipped without the data.
 */
export async function w6Training(ctx: Ctx): Promise<Row[]> {
  const epochs = ctx.quick ? 1 : W6_TRAINING.epochs;
  const key = {
    workload: "W6 training",
    config: `batch ${W6.batchSize}, ${epochs} epoch${epochs > 1 ? "s" : ""}`,
    impl: `threadgrad, ${W6_TRAINING.workers} workers`,
    peer: false,
    unit: "s/epoch",
    better: "lower" as const,
    threads: W6_TRAINING.workers,
  };
  let data: DataSplit;
  try {
    data = loadDataset("fashion-mnist");
  } catch (err) {
    return [skipRow(key, `skipped: ${(err as Error).message}`)];
  }
  const n = ctx.quick ? Math.min(QUICK_TRAIN, data.train.length) : data.train.length;
  const sampleShape = [1, 28, 28];
  const train = { x: data.train.x.subarray(0, n * 784), y: data.train.y.subarray(0, n), length: n, sampleShape };
  ctx.log(`W6 training, ${n} samples, ${epochs} epoch(s)`);
  const trainer = await DataParallel.create({
    model: W6.model,
    loss: W6.loss,
    optimizer: { ...W6.optimizer },
    workers: W6_TRAINING.workers,
    seed: W6_TRAINING.seed,
    maxBatchSize: 1024,
  });
  const rows: Row[] = [];
  try {
    // one measured call = one epoch; the first is part of the run, not a warm-up
    const t = await measure(
      "W6 epoch",
      async () => {
        await trainer.fit(train, { epochs: trainer.progress.epoch + 1, batchSize: W6.batchSize });
      },
      ctx,
      { iterations: epochs, warmupIterations: 0, time: 0 },
    );
    const test = { x: data.test.x, y: data.test.y, length: data.test.length, sampleShape };
    const acc = (await trainer.evaluate(test)).accuracy ?? Number.NaN;
    rows.push(
      rowFrom(key, t, (ms) => ms / 1000, {
        note:
          `test accuracy ${(acc * 100).toFixed(2)}%, ${n.toLocaleString("en-US")} train samples` +
          (ctx.quick ? "; quick: a subset, not a result" : ""),
        extra: { testAccuracy: acc, epochs, trainSamples: n, workers: W6_TRAINING.workers },
      }),
    );
  } finally {
    await trainer.close();
  }
  rows.push(...(await pytorchRows(ctx, "w6-train")));
  return rows;
}
