// Everything between checked settings and a trainer: load the data, size the model from it (or
// check the given model against it), pick the loss, and turn the schedule flags into a schedule.
import type { ScheduleConfig } from "@threadgrad/optim";
import {
  type ImageModelSpec,
  type LossSpec,
  type ModelSpec,
  type TrainerOptions,
  imageModelParameterShapes,
  tokenModel,
} from "@threadgrad/workers";
import { optimizerOptions } from "./settings.js";
import type { CategoricalColumn } from "./data/csv-categories.js";
import { type DataSplit, type Dataset, checkLabels, holdOut, loadDataset, takeRows } from "./data/index.js";
import { type Preprocess, applyToSplit, fitPreprocess } from "./data/preprocess.js";
import { UsageError, asUsage } from "./errors.js";
import type { TrainSettings } from "./flags.js";
import {
  type GptChoice,
  type ModelChoice,
  type ModelPreset,
  describeModel,
  isModuleModel,
  moduleSpecOf,
  parseGpt,
} from "./values.js";

const isGpt = (m: ModelChoice): m is GptChoice => typeof m === "object" && !Array.isArray(m) && !isModuleModel(m);

/** Hidden width of the default model, `mlp:<features>,128,<classes>`. */
export const DEFAULT_HIDDEN = 128;
const PRESPLIT_SCHEMES = ["idx", "mnist", "fashion-mnist"];

/**
 * Loads the data the settings name; any problem with it (missing or malformed files, bad CSV
 * cells) is a usage error. The train/test split always uses seed 0, so --seed changes the
 * training run, not which samples are held out.
 */
export function loadRunData(
  s: TrainSettings,
  classes?: readonly string[],
  categories?: readonly CategoricalColumn[],
): DataSplit {
  const scheme = s.data.split(":")[0]!;
  if (scheme === "text") checkTextSettings(s);
  if (s.testSplit !== null && PRESPLIT_SCHEMES.includes(scheme)) {
    throw new UsageError(
      `--test-split does not apply to ${scheme}: its files already hold separate train and test sets`,
    );
  }
  const split = asUsage(() =>
    loadDataset(s.data, {
      imageSize: s.imageSize ?? undefined,
      target: s.target ?? undefined,
      task: s.task ?? undefined,
      testSplit: s.testSplit ?? undefined,
      delimiter: s.delimiter ?? undefined,
      impute: s.impute ?? undefined,
      // --categorical auto is the command's default for csv; other sets refuse the flag when given.
      categorical: scheme === "csv" ? (s.categorical ?? "auto") : (s.categorical ?? undefined),
      seed: 0,
      classes,
      categories,
      text: scheme === "text" ? { context: textContext(s), seed: s.seed } : undefined,
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

/** Flags that do not apply to text data, refused before the corpus is read. */
function checkTextSettings(s: TrainSettings): void {
  const refused: [keyof TrainSettings, string][] = [
    ["testSplit", "--test-split: text data holds out the last 10% of the corpus for validation"],
    ["valSplit", "--val-split: text data holds out the last 10% of the corpus for validation"],
    ["limit", "--limit: text data draws its windows from the whole corpus; stop sooner with --max-steps N"],
  ];
  const errors = refused.filter(([key]) => s[key] !== null).map(([, why]) => `${why} (--data ${s.data})`);
  if (s.labelSmoothing > 0) errors.push(`--label-smoothing does not apply to text data (--data ${s.data})`);
  if (errors.length > 0) throw new UsageError(errors);
}

/** The built-in image models: they take float images, never token ids. */
const IMAGE_PRESETS: readonly unknown[] = ["cnn", "lenet5"];

/** Tokens per training window for text data: --context, or the context of a language model spec. */
export function textContext(s: TrainSettings): number {
  if (s.context !== null) return s.context;
  const m = s.model ?? parseGpt("chargpt"); // text without --model trains chargpt
  if (isGpt(m)) return m.context;
  throw new UsageError(
    `--data ${s.data} needs --context N, the tokens per training window: ` +
      `--model ${describeModel(m)} does not say its context`,
  );
}

/**
 * Fits the run's preprocessing on the training split (or takes a resumed run's stored one) and
 * applies it to both splits in place: standardised csv features unless --no-normalize,
 * standardised regression targets. Returns what was applied, for the checkpoints' run record.
 */
export function preprocessRunData(s: TrainSettings, split: DataSplit, stored: Preprocess | null): Preprocess {
  const p = stored ?? fitPreprocess(split.train, s.normalize);
  applyToSplit(split, p);
  return p;
}

/** Fills in the model and loss from the data (or checks the given ones against it). */
export function fitSettingsToData(s: TrainSettings, split: DataSplit): TrainSettings {
  const { train } = split;
  if (train.isTokens) checkTokenModel(s);
  const isRegression = train.task === "regression";
  const outputs = isRegression ? 1 : train.numClasses;
  // Text gets the character-level gpt by default, anything else an mlp sized from the data.
  const model = s.model ?? (train.isTokens ? parseGpt("chargpt") : [train.features, DEFAULT_HIDDEN, outputs]);
  if (Array.isArray(model) && model[0] !== train.features) {
    throw new UsageError(
      `model: mlp input size ${model[0]} does not match the ${train.features} features of ${s.data}`,
    );
  }
  if (typeof model === "string") imageModelSpec(model, train, s.data);
  // A gpt reads int32 token ids: text data gives them, float samples cannot be ids.
  if (isGpt(model) && !((train.x as unknown) instanceof Int32Array))
    throw new UsageError(
      `--model ${describeModel(model)} takes token ids (text data), but ${s.data} has float samples`,
    );
  if (s.augment && train.sampleShape?.length !== 3)
    throw new UsageError(
      `--augment needs image data (channels × height × width per sample), but ${s.data} has flat rows`,
    );
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
  // A module's output size is known once it is built; the loss then checks the labels.
  const outSize = Array.isArray(model) ? model[model.length - 1]! : typeof model === "string" ? outputs : null;
  if (outSize !== null)
    asUsage(() => {
      checkLabels(split.train, outSize);
      if (split.val) checkLabels(split.val, outSize);
      checkLabels(split.test, outSize);
    });
  return { ...s, model, loss };
}

/** Token ids go to a model that embeds them: not to an mlp or an image model, which take float features. */
function checkTokenModel(s: TrainSettings): void {
  const m = s.model;
  const use =
    "a language model over byte ids: chargpt, gpt:layers=2,heads=4,dim=128,context=64, or a module such as " +
    "./net.mjs whose forward maps ids [N, T] to logits [N, T, 256]";
  if (m === null) return; // chargpt
  if (Array.isArray(m) || IMAGE_PRESETS.includes(m))
    throw new UsageError(
      `--model ${describeModel(m)} takes float features, but --data ${s.data} gives int32 token ids; use ${use}`,
    );
}

/**
 * The built-in `cnn` or `lenet5` sized from the data: channels, height and width from its samples'
 * shape, classes from its labels. Refused on data without image samples (csv rows) and on regression.
 */
export function imageModelSpec(kind: ModelPreset, ds: Dataset, data: string): ImageModelSpec {
  const shape = ds.sampleShape;
  if (shape === undefined || shape.length !== 3) {
    throw new UsageError(
      `--model ${kind} needs image data (channels × height × width per sample), but ${data} has flat rows ` +
        `of ${ds.features} features; use --model mlp:${ds.features},128,${ds.numClasses || 1} for tabular data`,
    );
  }
  if (ds.task !== "classification")
    throw new UsageError(`--model ${kind} is a classifier, but ${data} has a regression target`);
  const [inChannels, height, width] = shape as [number, number, number];
  const spec: ImageModelSpec = { kind, inChannels, height, width, classes: ds.numClasses };
  const shapes = imageModelParameterShapes(spec);
  if (typeof shapes === "string")
    throw new UsageError(`--model ${kind}: ${shapes} in ${data} (pass --image-size for images: data)`);
  return spec;
}

/** The trainer's model spec for these (data-fitted) settings; `train` sizes a built-in image model. */
export function modelSpec(s: TrainSettings, train: Dataset): ModelSpec {
  const m = s.model!;
  if (Array.isArray(m)) return { kind: "mlp", sizes: m, activation: s.activation, dropout: s.dropout };
  if (typeof m === "string") return imageModelSpec(m, train, s.data);
  return isModuleModel(m) ? moduleSpecOf(m) : m;
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

/**
 * The trainer's loss for these settings. Cross-entropy becomes the sequence cross-entropy (over
 * every position of logits [N, T, classes]) for token data and for a language model spec.
 */
export function lossSpec(s: TrainSettings, model?: ModelSpec, isTokens = false): LossSpec {
  if (s.loss === "mse") return "mse";
  if (isTokens || (model !== undefined && tokenModel(model) !== null)) return "sequenceCrossEntropy";
  return s.labelSmoothing > 0 ? { name: "crossEntropy", labelSmoothing: s.labelSmoothing } : "crossEntropy";
}

/** The trainer's options for these (data-fitted) settings and training set. */
export function trainerOptions(s: TrainSettings, train: Dataset): TrainerOptions {
  const schedule = buildSchedule(s, Math.min(s.epochs * updatesPerEpoch(s, train.length), s.maxSteps ?? Infinity));
  const model = modelSpec(s, train);
  return {
    model,
    loss: lossSpec(s, model, train.isTokens),
    optimizer: { name: s.optimizer, ...optimizerOptions(s) },
    workers: s.workers,
    seed: s.seed,
    schedule,
    clipGradNorm: s.clipGradNorm ?? undefined,
    accumulateSteps: s.accumulateSteps,
    shards: s.shards ?? undefined,
    skipNonFinite: s.skipNonFinite,
    // the trainer's index buffers hold a training batch and an evaluation batch
    maxBatchSize: Math.max(s.batchSize, evaluationBatchSize(s.batchSize, train)),
  };
}

/**
 * Rows per evaluation batch of a run trained in batches of `batchSize` on data like `data`: 1,024
 * flat rows, but for text windows and images the training batch. Their activations are large: the
 * forward of 1,024 Fashion-MNIST images through the cnn preset on one worker needs more than a
 * rank's 256 MiB of step scratch, and the tensors beyond it go to the JavaScript heap, where the
 * evaluation ran about 13 times slower per image. The training batch's forward fits wherever its
 * step does (that needs room for the backward pass too), and smaller batches cost no more per image.
 * Training and `threadgrad eval` both use it, so they measure in the same batches.
 */
export function evaluationBatchSize(batchSize: number, data: Dataset): number {
  return data.isTokens || data.sampleShape !== undefined ? batchSize : 1024;
}
