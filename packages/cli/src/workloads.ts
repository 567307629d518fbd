// Benchmark workloads, defined once: `threadgrad bench` and benchmarks/ both measure these.
import { mulberry32 } from "@threadgrad/core";
import {
  DataParallel,
  type DatasetLike,
  type ImageModelSpec,
  type OptimizerConfig,
  type StepInfo,
} from "@threadgrad/workers";
import { FASHION_MNIST_DIR, loadDataset } from "./data/index.js";

/** W1: an MNIST-sized MLP 784-256-256-10 with ReLU, batch 256, cross-entropy, Adam lr 1e-3. */
export const W1 = {
  sizes: [784, 256, 256, 10],
  activation: "relu",
  batchSize: 256,
  optimizer: { name: "adam", lr: 1e-3 },
  loss: "crossEntropy",
} as const;

/**
 * W6: the built-in `cnn` on Fashion-MNIST `[B, 1, 28, 28]` (pixels / 255): conv 1→32 k3 p1, ReLU,
 * maxpool 2; conv 32→64 k3 p1, ReLU, maxpool 2; flatten (3136); Linear 128, ReLU; Linear 10;
 * cross-entropy (mean), Adam lr 1e-3, batch 128.
 */
export const W6 = {
  model: { kind: "cnn", inChannels: 1, height: 28, width: 28, classes: 10 },
  batchSize: 128,
  optimizer: { name: "adam", lr: 1e-3 },
  loss: "crossEntropy",
} as const satisfies { model: ImageModelSpec } & Record<string, unknown>;

/** Batches of random data W6 runs on when Fashion-MNIST is absent (reshuffled every epoch). */
export const W6_RANDOM_BATCHES = 32;

/** What a benchmark trains on: the rows, and where they came from (said in the output). */
export interface BenchData {
  data: DatasetLike & { length: number };
  /** e.g. "Fashion-MNIST train (60,000 samples, /usr/share/datasets/fashion-mnist)" */
  source: string;
  /** false when the real data was absent and random data of the same shape stands in */
  real: boolean;
}

/**
 * W6's training data: the Fashion-MNIST training set from `dir`, or, when it is absent, random
 * N(0, 1) samples of the same shape `[1, 28, 28]` with random labels (W6_RANDOM_BATCHES batches),
 * with `source` saying why. Training visits consecutive batches of a seeded shuffle, reshuffled
 * every epoch: a stream of batches, never one batch replayed.
 * @example const { data, source } = w6Data(); // source names the files or says the data is random
 */
export function w6Data(seed = 0, dir: string = FASHION_MNIST_DIR): BenchData {
  try {
    const { train } = loadDataset(`fashion-mnist:${dir}`);
    return {
      data: { x: train.x, y: train.y, length: train.length, sampleShape: [1, 28, 28] },
      source: `Fashion-MNIST train (${train.length.toLocaleString("en-US")} samples, ${dir})`,
      real: true,
    };
  } catch (err) {
    const rows = W6_RANDOM_BATCHES * W6.batchSize;
    const data = { ...randomClassification(rows, 28 * 28, 10, seed), sampleShape: [1, 28, 28] };
    const why = (err as Error).message.split("\n")[0];
    return { data, source: `random N(0,1) data of Fashion-MNIST's shape, ${rows} samples (${why})`, real: false };
  }
}

export interface ThroughputOptions {
  workers: number | "auto";
  /** timed training steps (default 50) */
  steps?: number;
  /** untimed steps first: worker warm-up, JIT (default 5) */
  warmupSteps?: number;
  sizes?: readonly number[];
  activation?: "relu" | "tanh" | "gelu";
  batchSize?: number;
  optimizer?: OptimizerConfig;
  /** seed of the data and the model (default 0) */
  seed?: number;
  /** a built-in image model instead of the MLP of `sizes` (then `data` must be given) */
  model?: ImageModelSpec;
  /** the training rows (default: 8 batches of random data for the MLP's sizes) */
  data?: DatasetLike & { length: number };
}

export interface ThroughputResult {
  workers: number;
  batchSize: number;
  steps: number;
  /** training samples per second over the timed steps */
  samplesPerSec: number;
  medianStepMs: number;
  p10StepMs: number;
  p90StepMs: number;
  /** creating the trainer: starting the workers and building the model in each */
  startupMs: number;
  /**
   * Median milliseconds per step of each phase, as the slowest rank reports it: forward + backward,
   * waiting for the other ranks, reduce-scatter with the norm exchange, the sharded optimizer
   * update; `otherMs` is the rest of the step (publishing it, waking workers, main's bookkeeping).
   */
  breakdown: StepBreakdown;
}

export interface StepBreakdown {
  computeMs: number;
  waitMs: number;
  reduceMs: number;
  updateMs: number;
  otherMs: number;
}

/** `rows` samples of N(0, 1) features (Box–Muller over a seeded generator) with uniform random labels. */
export function randomClassification(rows: number, features: number, classes: number, seed: number) {
  const rand = mulberry32(seed);
  const x = new Float32Array(new SharedArrayBuffer(rows * features * 4));
  for (let i = 0; i < x.length; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - rand())),
      t = 2 * Math.PI * rand();
    x[i] = r * Math.cos(t);
    if (i + 1 < x.length) x[i + 1] = r * Math.sin(t);
  }
  const y = new Int32Array(new SharedArrayBuffer(rows * 4));
  for (let i = 0; i < rows; i++) y[i] = Math.floor(rand() * classes);
  return { x, y, length: rows };
}

export const quantile = (sorted: number[], q: number): number => {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q,
    lo = Math.floor(pos),
    hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
};

interface TimedStep {
  ms: number;
  timings: StepInfo["timings"];
}

type TimingOptions = Required<Omit<ThroughputOptions, "model" | "data">> & Pick<ThroughputOptions, "model">;

async function timeSteps(o: TimingOptions, data: DatasetLike & { length: number }) {
  const created = performance.now();
  const trainer = await DataParallel.create({
    model: o.model ?? { kind: "mlp", sizes: [...o.sizes], activation: o.activation },
    loss: "crossEntropy",
    optimizer: o.optimizer,
    workers: o.workers,
    seed: o.seed,
    // An image model's activations grow with the batch: room for this batch only.
    maxBatchSize: o.model ? o.batchSize : Math.max(o.batchSize, 1024),
  });
  const startupMs = performance.now() - created;
  const steps: TimedStep[] = [];
  try {
    const stepsPerEpoch = Math.ceil(data.length / o.batchSize);
    // A step's wall time: the gap between the moments the workers finished it and the step before
    // (steps reach onStep in groups, so the gaps between onStep calls mean nothing).
    let seen = 0,
      last = performance.timeOrigin + performance.now();
    await trainer.fit(data, {
      epochs: Math.ceil((o.warmupSteps + o.steps) / stepsPerEpoch) + 1,
      batchSize: o.batchSize,
      untilStep: o.warmupSteps + o.steps,
      onStep: (info) => {
        if (seen++ >= o.warmupSteps) steps.push({ ms: info.finishedAt - last, timings: info.timings });
        last = info.finishedAt;
      },
    });
    return { steps, startupMs, workers: trainer.numWorkers };
  } finally {
    await trainer.close();
  }
}

const median = (xs: number[]) =>
  quantile(
    [...xs].sort((a, b) => a - b),
    0.5,
  );

/**
 * Times `steps` training steps of an MLP (W1 unless overridden) on random data, or of an image
 * model on the given data, and returns the gradient throughput.
 * @example const r = await runThroughput({ workers: 2, steps: 20 }); r.samplesPerSec
 * @example const w6 = await runThroughput({ workers: 2, model: W6.model, batchSize: 128, data: w6Data().data });
 */
export async function runThroughput(opts: ThroughputOptions): Promise<ThroughputResult> {
  const o = {
    steps: 50,
    warmupSteps: 5,
    sizes: W1.sizes,
    activation: W1.activation,
    batchSize: W1.batchSize,
    optimizer: { ...W1.optimizer } as OptimizerConfig,
    seed: 0,
    ...opts,
  };
  if (!Number.isInteger(o.steps) || o.steps < 1)
    throw new Error(`runThroughput: steps must be a positive integer, got ${o.steps}`);
  if (o.model !== undefined && opts.data === undefined)
    throw new Error(`runThroughput: a ${o.model.kind} model needs its data (the data option)`);
  const sizes = o.sizes;
  // Eight batches of data, reshuffled every epoch: enough to not replay one batch, small to build.
  const { data: given, ...rest } = o;
  const data = given ?? randomClassification(8 * o.batchSize, sizes[0]!, sizes[sizes.length - 1]!, o.seed);
  const main = await timeSteps(rest, data);
  const sorted = main.steps.map((s) => s.ms).sort((a, b) => a - b);
  const totalMs = sorted.reduce((a, b) => a + b, 0);
  const phase = (key: keyof StepInfo["timings"]) => median(main.steps.map((s) => s.timings[key]));
  const breakdown = {
    computeMs: phase("computeMs"),
    waitMs: phase("waitMs"),
    reduceMs: phase("reduceMs"),
    updateMs: phase("updateMs"),
    otherMs: 0,
  };
  breakdown.otherMs = Math.max(
    0,
    quantile(sorted, 0.5) - breakdown.computeMs - breakdown.waitMs - breakdown.reduceMs - breakdown.updateMs,
  );
  return {
    workers: main.workers,
    batchSize: o.batchSize,
    steps: sorted.length,
    samplesPerSec: (sorted.length * o.batchSize) / (totalMs / 1000),
    medianStepMs: quantile(sorted, 0.5),
    p10StepMs: quantile(sorted, 0.1),
    p90StepMs: quantile(sorted, 0.9),
    startupMs: main.startupMs,
    breakdown,
  };
}
