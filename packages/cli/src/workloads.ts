// Benchmark workloads, defined once: `threadgrad bench` and benchmarks/ both measure these.
import { mulberry32 } from "@threadgrad/core";
import {
  CHARGPT,
  DataParallel,
  type DatasetLike,
  type GptModelSpec,
  type ImageModelSpec,
  type OptimizerConfig,
  type StepInfo,
  defaultLoss,
  tokenModel,
} from "@threadgrad/workers";
import { FASHION_MNIST_DIR, loadDataset } from "./data/index.js";
import { TEXT_VOCAB, drawWindows, readTextCorpus } from "./data/text.js";
import { type Dataset, sharedInt32 } from "./data/types.js";

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

/**
 * W7: the built-in `chargpt` (vocab 256, context 64, dim 128, 4 heads, 2 layers: 470,784 parameters)
 * on batches of 32 windows of 64 tokens (2,048 tokens per step), cross-entropy over every position,
 * Adam lr 1e-3, on random windows of the fortunes text (see w7Data).
 */
export const W7 = {
  model: CHARGPT,
  batchSize: 32,
  optimizer: { name: "adam", lr: 1e-3 },
  loss: "sequenceCrossEntropy",
} as const satisfies { model: GptModelSpec } & Record<string, unknown>;

/** Where W7's text is read from: Debian's `fortunes` package. */
export const FORTUNES_DIR = "/usr/share/games/fortunes";
/** Random tokens W7 draws its windows from when the fortunes text is absent. */
export const W7_RANDOM_TOKENS = 1 << 20;
/** Steps' worth of windows a W7 data set holds at most; it is redrawn once the trainer went through them. */
export const W7_POOL_STEPS = 64;

/** BenchData of token windows, which `redraw(epoch)` rewrites in place with those of `epoch`. */
export interface TokenBenchData extends BenchData {
  redraw: (epoch: number) => void;
}

/** The corpus W7 draws from: the text at `dir`, or seeded random bytes with the reason. */
function w7Corpus(seed: number, dir: string): { bytes: Uint8Array; source: string; real: boolean } {
  const window = W7.model.context + 1;
  try {
    const { bytes, files } = readTextCorpus(dir);
    if (bytes.length < window) throw new Error(`text: ${dir} holds ${bytes.length} bytes, less than one window`);
    const size = `${bytes.length.toLocaleString("en-US")} bytes of ${files.length} file${files.length === 1 ? "" : "s"}`;
    return { bytes, source: `the fortunes text (${size}, ${dir})`, real: true };
  } catch (err) {
    const rand = mulberry32(seed);
    const bytes = new Uint8Array(W7_RANDOM_TOKENS);
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(rand() * TEXT_VOCAB);
    const why = (err as Error).message.split("\n")[0];
    const count = W7_RANDOM_TOKENS.toLocaleString("en-US");
    return {
      bytes,
      source: `random tokens (${count} uniform bytes; ${why}; apt-get install fortunes provides the text)`,
      real: false,
    };
  }
}

/**
 * W7's training data: `windows` windows of 64 tokens (y: the next token at each position) at random
 * positions of the fortunes text in `dir` (its regular text files in name order, as text:DIR reads
 * them: no symbolic links, no binary `.dat` files), or of W7_RANDOM_TOKENS random bytes when the text
 * is absent, with `source` saying why. The windows come from the counter-based stream of text:
 * keyed by (seed, epoch, window), so `redraw(epoch)` between epochs gives every step fresh windows.
 * @example const { data, redraw, source } = w7Data(0, 64 * W7.batchSize);
 */
export function w7Data(seed = 0, windows = W7_POOL_STEPS * W7.batchSize, dir: string = FORTUNES_DIR): TokenBenchData {
  const context = W7.model.context;
  const { bytes, source, real } = w7Corpus(seed, dir);
  const ds: Dataset = {
    name: "W7 windows",
    x: sharedInt32(windows * context),
    y: sharedInt32(windows * context),
    length: windows,
    features: context,
    task: "classification",
    numClasses: TEXT_VOCAB,
    isTokens: true,
  };
  const redraw = (epoch: number) => drawWindows(bytes, ds, seed, epoch);
  redraw(0);
  return { data: { x: ds.x, y: ds.y, length: windows }, source, real, redraw };
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
  /**
   * a built-in image model or gpt instead of the MLP of `sizes` (then `data` must be given); a gpt
   * trains with the sequence cross-entropy
   */
  model?: ImageModelSpec | GptModelSpec;
  /** the training rows (default: 8 batches of random data for the MLP's sizes) */
  data?: DatasetLike & { length: number };
  /** rewrites `data` in place for `epoch` (token windows: TokenBenchData.redraw), called between epochs */
  redraw?: (epoch: number) => void;
  /**
   * "mpi": train across the processes of an MPI job (every process calls runThroughput with the
   * same options); samples/s are then the whole job's
   */
  distributed?: "mpi";
}

export interface ThroughputResult {
  workers: number;
  batchSize: number;
  steps: number;
  /** training samples per second over the timed steps */
  samplesPerSec: number;
  /** a token model's: tokens per second (samples/s times the tokens of a sample), which W7 reports */
  tokensPerSec?: number;
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

type TimingOptions = Required<Omit<ThroughputOptions, "model" | "data" | "redraw" | "distributed">> &
  Pick<ThroughputOptions, "model" | "redraw" | "distributed">;

async function timeSteps(o: TimingOptions, data: DatasetLike & { length: number }) {
  const created = performance.now();
  const model = o.model ?? { kind: "mlp", sizes: [...o.sizes], activation: o.activation };
  const trainer = await DataParallel.create({
    model,
    loss: defaultLoss(model),
    optimizer: o.optimizer,
    workers: o.workers,
    seed: o.seed,
    ...(o.distributed ? { distributed: o.distributed } : {}),
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
      // between epochs no step is in flight: the workers read the data again only in the next one
      onEpochEnd: (log) => o.redraw?.(log.epoch),
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

const lengthOf = (x: DatasetLike["x"]): number => ("numel" in x ? x.numel : x.length);

/**
 * Times `steps` training steps of an MLP (W1 unless overridden) on random data, or of an image
 * model or a gpt on the given data, and returns the gradient throughput.
 * @example const r = await runThroughput({ workers: 2, steps: 20 }); r.samplesPerSec
 * @example const w6 = await runThroughput({ workers: 2, model: W6.model, batchSize: 128, data: w6Data().data });
 * @example const { data, redraw } = w7Data();
 * const w7 = await runThroughput({ workers: 2, model: W7.model, batchSize: 32, data, redraw }); // w7.tokensPerSec
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
  const samplesPerSec = (sorted.length * o.batchSize) / (totalMs / 1000);
  const isTokens = o.model !== undefined && tokenModel(o.model) !== null;
  return {
    workers: main.workers,
    batchSize: o.batchSize,
    steps: sorted.length,
    samplesPerSec,
    ...(isTokens ? { tokensPerSec: samplesPerSec * (lengthOf(data.x) / data.length) } : {}),
    medianStepMs: quantile(sorted, 0.5),
    p10StepMs: quantile(sorted, 0.1),
    p90StepMs: quantile(sorted, 0.9),
    startupMs: main.startupMs,
    breakdown,
  };
}
