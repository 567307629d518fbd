// Everything between checked settings and a trainer: load the data, size the model from it (or
// check the given model against it), pick the loss, and turn the schedule flags into a schedule.
import type { ScheduleConfig } from "@threadgrad/optim";
import type { LossSpec, TrainerOptions } from "@threadgrad/workers";
import { optimizerOptions } from "./config.js";
import { type DataSplit, checkLabels, holdOut, loadDataset, takeRows } from "./data/index.js";
import { UsageError, asUsage } from "./errors.js";
import type { TrainSettings } from "./flags.js";

/** Hidden width of the default model, `mlp:<features>,128,<classes>`. */
export const DEFAULT_HIDDEN = 128;
const PRESPLIT_SCHEMES = ["idx", "mnist", "fashion-mnist"];

/**
 * Loads the data the settings name; any problem with it (missing or malformed files, bad CSV
 * cells) is a usage error. The train/test split always uses seed 0, so --seed changes the
 * training run, not which samples are held out.
 */
export function loadRunData(s: TrainSettings): DataSplit {
  const scheme = s.data.split(":")[0]!;
  if (s.testSplit !== null && PRESPLIT_SCHEMES.includes(scheme)) {
    throw new UsageError(
      `--test-split does not apply to ${scheme}: its files already hold separate train and test sets`,
    );
  }
  const split = asUsage(() =>
    loadDataset(s.data, {
      target: s.target ?? undefined,
      task: s.task ?? undefined,
      testSplit: s.testSplit ?? undefined,
      delimiter: s.delimiter ?? undefined,
      impute: s.impute ?? undefined,
      // --categorical auto is the command's default for csv; other sets refuse the flag when given.
      categorical: scheme === "csv" ? (s.categorical ?? "auto") : (s.categorical ?? undefined),
      seed: 0,
    }),
  );
  // Validation rows come out of the training rows before --limit, so --limit leaves them as they are.
  if (s.valSplit !== null) {
    const { kept, held } = asUsage(() => holdOut(split.train, s.valSplit!, s.seed));
    split.train = kept;
    split.val = held;
  }
  if (s.limit !== null && s.limit < split.train.length) {
    const rows = Int32Array.from({ length: s.limit }, (_, i) => i);
    split.train = takeRows(split.train, rows, split.train.name);
  }
  if (split.test.length === 0)
    throw new UsageError(`data: ${s.data} has no test samples; pass --test-split greater than 0`);
  return split;
}

/** Fills in the model and loss from the data (or checks the given ones against it). */
export function fitSettingsToData(s: TrainSettings, split: DataSplit): TrainSettings {
  const { train } = split;
  const isRegression = train.task === "regression";
  const outputs = isRegression ? 1 : train.numClasses;
  const model = s.model ?? [train.features, DEFAULT_HIDDEN, outputs];
  if (model[0] !== train.features) {
    throw new UsageError(
      `model: mlp input size ${model[0]} does not match the ${train.features} features of ${s.data}`,
    );
  }
  const loss = s.loss ?? (isRegression ? "mse" : "cross-entropy");
  if (loss === "cross-entropy" && isRegression) {
    throw new UsageError(
      `--loss cross-entropy needs class labels, but ${s.data} has a regression target (use --loss mse, or --task classification for a csv)`,
    );
  }
  if (loss === "mse" && !isRegression) {
    throw new UsageError(
      `--loss mse needs a numeric target, but ${s.data} is a classification set (for a csv column, pass --task regression)`,
    );
  }
  if (loss === "mse" && s.labelSmoothing > 0)
    throw new UsageError("--label-smoothing only applies to --loss cross-entropy");
  const outSize = model[model.length - 1]!;
  asUsage(() => {
    checkLabels(split.train, outSize);
    if (split.val) checkLabels(split.val, outSize);
    checkLabels(split.test, outSize);
  });
  return { ...s, model, loss };
}

/** Optimizer steps per epoch: micro-batches per epoch, grouped by --accumulate-steps (the last group may be short). */
export function updatesPerEpoch(s: TrainSettings, trainLength: number): number {
  return Math.ceil(Math.ceil(trainLength / s.batchSize) / s.accumulateSteps);
}

/**
 * The lr schedule over optimizer steps: the main schedule sized to the run, after a linear
 * warm-up (LinearLR then the schedule, via SequentialLR) when --warmup-steps is given.
 * @example buildSchedule({ ...s, lrSchedule: "cosine", warmupSteps: 100 }, 1000)
 *   // { kind: "sequential", schedules: [linear over 100, cosine tMax 900], milestones: [100] }
 */
export function buildSchedule(s: TrainSettings, totalUpdates: number): ScheduleConfig | null {
  const w = s.warmupSteps;
  if (w > 0 && w >= totalUpdates) {
    throw new UsageError(`--warmup-steps ${w} must be less than the run's ${totalUpdates} optimizer steps`);
  }
  const rest = totalUpdates - w;
  let main: ScheduleConfig | null;
  switch (s.lrSchedule) {
    case "none":
      main = null;
      break;
    case "cosine":
      main = { kind: "cosine", tMax: rest, etaMin: s.etaMin };
      break;
    case "step":
      main = { kind: "step", stepSize: s.stepSize ?? Math.max(1, Math.ceil(rest / 3)), gamma: s.gamma };
      break;
    case "onecycle":
      main = { kind: "onecycle", maxLr: s.lr!, totalSteps: totalUpdates };
      break;
    case "plateau":
      // Driven by validation results, which the workers never see: the session applies it with setLrScale.
      main = null;
      break;
  }
  if (w === 0) return main;
  // Starts at lr/(w+1) and reaches lr at step w; LinearLR holds its end factor afterwards.
  const warmup: ScheduleConfig = { kind: "linear", startFactor: 1 / (w + 1), endFactor: 1, totalIters: w };
  return main === null ? warmup : { kind: "sequential", schedules: [warmup, main], milestones: [w] };
}

export function lossSpec(s: TrainSettings): LossSpec {
  if (s.loss === "mse") return "mse";
  return s.labelSmoothing > 0 ? { name: "crossEntropy", labelSmoothing: s.labelSmoothing } : "crossEntropy";
}

/** The trainer's options for these (data-fitted) settings. */
export function trainerOptions(s: TrainSettings, trainLength: number): TrainerOptions {
  const schedule = buildSchedule(s, s.epochs * updatesPerEpoch(s, trainLength));
  return {
    model: { kind: "mlp", sizes: s.model!, activation: s.activation, dropout: s.dropout },
    loss: lossSpec(s),
    optimizer: { name: s.optimizer, ...optimizerOptions(s) },
    workers: s.workers,
    seed: s.seed,
    schedule,
    clipGradNorm: s.clipGradNorm ?? undefined,
    accumulateSteps: s.accumulateSteps,
    skipNonFinite: s.skipNonFinite,
    maxBatchSize: Math.max(s.batchSize, 1024),
  };
}
