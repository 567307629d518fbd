// The `train` flags, in one table: commander builds the options and --help from it, and config
// files are checked against the same parsers, so a bad value reads the same from either source.
import type { OptimizerName } from "@threadgrad/optim";
import type { CategoricalSpec, CsvDelimiter, Task } from "./data/index.js";
import {
  type EvalEvery,
  ValueError,
  parseBoolean,
  parseChoice,
  parseEvalEvery,
  type ModelChoice,
  parseModel,
  parseNumber,
  parseNumberList,
  parseString,
  parseWorkers,
} from "./values.js";

export const ACTIVATIONS = ["relu", "tanh", "gelu"] as const;
export const LOSSES = ["cross-entropy", "mse"] as const;
export const OPTIMIZERS = ["adam", "adamw", "sgd", "rmsprop", "adagrad"] as const satisfies readonly OptimizerName[];
export const SCHEDULES = ["none", "cosine", "step", "onecycle", "plateau"] as const;
export const IMPUTE_POLICIES = ["mean", "median", "drop"] as const;
export type ImputePolicy = (typeof IMPUTE_POLICIES)[number];
export type Activation = (typeof ACTIVATIONS)[number];
export type LossName = (typeof LOSSES)[number];
export type ScheduleName = (typeof SCHEDULES)[number];
export const DISTRIBUTED = ["none", "mpi"] as const;
export type Distributed = (typeof DISTRIBUTED)[number];

/** Everything that decides what a run computes; stored in config.json and in every checkpoint. */
export interface TrainSettings {
  data: string;
  target: string | null;
  task: Task | null;
  testSplit: number | null;
  limit: number | null;
  /** images: [height, width] every image is resized to; null: the first image's size */
  imageSize: number[] | null;
  /** mlp layer widths, a built-in image model or a user module; mlp widths are null until sized from the data */
  model: ModelChoice | null;
  activation: Activation;
  dropout: number;
  /** null until chosen from the data's task */
  loss: LossName | null;
  labelSmoothing: number;
  optimizer: OptimizerName;
  /** null until the optimizer's default fills it in */
  lr: number | null;
  momentum: number | null;
  weightDecay: number | null;
  betas: [number, number] | null;
  eps: number | null;
  nesterov: boolean | null;
  amsgrad: boolean | null;
  alpha: number | null;
  lrSchedule: ScheduleName;
  warmupSteps: number;
  stepSize: number | null;
  gamma: number;
  etaMin: number;
  clipGradNorm: number | null;
  batchSize: number;
  epochs: number;
  workers: number | "auto";
  /** mpi: one of the processes of an MPI job (mpirun), which split each batch over all their workers */
  distributed: Distributed;
  accumulateSteps: number;
  /** virtual shards: every batch is cut into this many parts whatever the worker count; null: one per worker */
  shards: number | null;
  seed: number;
  out: string | null;
  evalEvery: EvalEvery;
  skipNonFinite: boolean;
  /** images: a random crop (padding 4) and horizontal flip per sample and epoch */
  augment: boolean;
  /** csv: standardise each feature with the training split's mean and std */
  normalize: boolean;
  /** fraction of the training rows held out for validation (best checkpoint, early stopping, plateau) */
  valSplit: number | null;
  /** stop after this many evaluations without a validation-loss improvement */
  earlyStopping: number | null;
  minDelta: number;
  /** plateau schedule: evaluations without improvement before the lr is multiplied by gamma */
  plateauPatience: number;
  /** csv field separator; null: detected from the first lines */
  delimiter: CsvDelimiter | null;
  /** csv: empty feature cells are filled (mean, median over the training rows) or their rows dropped; null: refused */
  impute: ImputePolicy | null;
  /** csv: categorical feature columns by name; null: auto (columns that are not all numbers) */
  categorical: CategoricalSpec | null;
  /** text: tokens per training window; null: the model's context */
  context: number | null;
  /** stop after this many optimizer steps in total (counted across resumes); null: run every epoch */
  maxSteps: number | null;
}

/** Flags that shape the command's output or where it starts, not what the run computes. */
export interface SessionFlags {
  config: string | null;
  resume: string | null;
  quiet: boolean;
  json: boolean;
  overwrite: boolean;
}

export type FlagKey = keyof TrainSettings | keyof SessionFlags;

export interface FlagSpec {
  key: FlagKey;
  flags: string;
  help: string;
  parse: (v: unknown) => unknown;
  isHidden?: boolean;
}

/** `32` (32×32) or `28x32` (height × width), 1 to 4096 pixels a side. */
function parseImageSize(v: unknown): number[] {
  const text = typeof v === "number" ? String(v) : typeof v === "string" ? v.trim() : "";
  const m = /^(\d+)(?:x(\d+))?$/.exec(text);
  const size = m ? [Number(m[1]), Number(m[2] ?? m[1])] : [];
  if (Array.isArray(v) && v.length === 2) size.push(...v.map(Number));
  if (size.length !== 2 || size.some((n) => !Number.isInteger(n) || n < 1 || n > 4096))
    throw new ValueError(`must be SIZE or HxW in pixels (1 to 4096), as in 32 or 28x32, got ${JSON.stringify(v)}`);
  return size;
}

const positiveInt = (v: unknown) => parseNumber(v, { min: 1, isInteger: true });
const nonNegative = (v: unknown) => parseNumber(v, { min: 0 });
const unit = (v: unknown) => parseNumber(v, { min: 0, max: 1, isMaxExclusive: true });
const betas = (v: unknown) =>
  parseNumberList(v, { min: 0, max: 1, isMaxExclusive: true }, "two numbers in [0, 1) such as 0.9,0.999");

/** `,` `;` or a tab (given as `tab`, `\t` or the character itself). */
function parseDelimiter(v: unknown): CsvDelimiter {
  if (v === "tab" || v === "\\t" || v === "\t") return "\t";
  if (v === "," || v === ";") return v;
  throw new ValueError(`must be "," ";" or tab, got ${JSON.stringify(v)}`);
}

/** `auto`, or column names: `a,b` on the command line, a list of strings in a config file. */
function parseCategorical(v: unknown): CategoricalSpec {
  if (v === "auto") return v;
  const names = typeof v === "string" ? v.split(",").map((n) => n.trim()) : v;
  if (!Array.isArray(names) || names.length === 0 || !names.every((n) => typeof n === "string" && n !== ""))
    throw new ValueError(`must be auto or column names separated by commas, got ${JSON.stringify(v)}`);
  return names as string[];
}

/** The `train` flags in help order. */
export const TRAIN_FLAGS: FlagSpec[] = [
  {
    key: "config",
    flags: "--config <file>",
    help: 'read settings from a JSON file (keys as flags, e.g. "batchSize" or "batch-size"); flags win',
    parse: parseString,
  },
  {
    key: "data",
    flags: "--data <spec>",
    help:
      "digits (built-in, default), idx:DIR, mnist:DIR, fashion-mnist[:DIR], csv:FILE, images:DIR (a folder per class), " +
      "text:FILE|DIR (bytes as tokens)",
    parse: parseString,
  },
  { key: "target", flags: "--target <column>", help: "csv: the column to predict", parse: parseString },
  {
    key: "task",
    flags: "--task <task>",
    help: "csv: classification or regression (default: guessed from the target column)",
    parse: (v) => parseChoice(v, ["classification", "regression"] as const),
  },
  {
    key: "delimiter",
    flags: "--delimiter <char>",
    help: 'csv: field separator ",", ";" or tab (default: detected from the header line)',
    parse: parseDelimiter,
  },
  {
    key: "impute",
    flags: "--impute <policy>",
    help: "csv: fill empty feature cells with the training rows' mean or median, or drop their rows",
    parse: (v) => parseChoice(v, IMPUTE_POLICIES),
  },
  {
    key: "categorical",
    flags: "--categorical <columns>",
    help: "csv: auto (default: columns that are not all numbers) or the comma-separated columns to one-hot encode",
    parse: parseCategorical,
  },
  {
    key: "testSplit",
    flags: "--test-split <fraction>",
    help: "digits, csv and images: fraction held out for testing (digits 1/6, csv and images 0.2)",
    parse: unit,
  },
  {
    key: "imageSize",
    flags: "--image-size <size>",
    help: "images: resize every image to SIZE or HxW pixels, bilinear (default: the first image's size)",
    parse: parseImageSize,
  },
  {
    key: "context",
    flags: "--context <tokens>",
    help: "text: tokens per training window (default: the model's context; required for a module model)",
    parse: (v) => parseNumber(v, { min: 1, max: 1 << 16, isInteger: true }),
  },
  {
    key: "limit",
    flags: "--limit <n>",
    help: "train on the first n training samples only (quick checks)",
    parse: positiveInt,
  },
  {
    key: "model",
    flags: "--model <spec>",
    help:
      "mlp:IN,HIDDEN...,OUT (default mlp:<features>,128,<classes>); cnn or lenet5 (image data: sized from it); " +
      "chargpt or gpt:layers=2,heads=4,dim=128,context=64 (text data; keys in any order, missing ones as chargpt); " +
      "./net.mjs[#export], a module whose export (default: default) returns an nn.Module",
    parse: parseModel,
  },
  {
    key: "activation",
    flags: "--activation <name>",
    help: "relu (default), tanh or gelu",
    parse: (v) => parseChoice(v, ACTIVATIONS),
  },
  {
    key: "dropout",
    flags: "--dropout <p>",
    help: "dropout after each hidden layer, in [0, 1) (default 0)",
    parse: unit,
  },
  {
    key: "loss",
    flags: "--loss <name>",
    help: "cross-entropy (classification, default) or mse (regression, default)",
    parse: (v) => parseChoice(v, LOSSES),
  },
  {
    key: "labelSmoothing",
    flags: "--label-smoothing <eps>",
    help: "cross-entropy label smoothing in [0, 1) (default 0)",
    parse: unit,
  },
  {
    key: "optimizer",
    flags: "--optimizer <name>",
    help: "adam (default), adamw, sgd, rmsprop or adagrad",
    parse: (v) => parseChoice(v, OPTIMIZERS),
  },
  {
    key: "lr",
    flags: "--lr <rate>",
    help: "learning rate (default 2e-3 for adam/adamw, else the optimizer's PyTorch default)",
    parse: nonNegative,
  },
  { key: "momentum", flags: "--momentum <m>", help: "sgd, rmsprop: momentum (default 0)", parse: nonNegative },
  {
    key: "weightDecay",
    flags: "--weight-decay <wd>",
    help: "L2 penalty; decoupled for adamw (default 0, adamw 0.01)",
    parse: nonNegative,
  },
  { key: "betas", flags: "--betas <b1,b2>", help: "adam, adamw: moment decay rates (default 0.9,0.999)", parse: betas },
  { key: "eps", flags: "--eps <eps>", help: "adam, adamw, rmsprop, adagrad: denominator term", parse: nonNegative },
  { key: "nesterov", flags: "--nesterov", help: "sgd: Nesterov momentum", parse: parseBoolean },
  { key: "amsgrad", flags: "--amsgrad", help: "adam, adamw: the AMSGrad variant", parse: parseBoolean },
  { key: "alpha", flags: "--alpha <a>", help: "rmsprop: smoothing constant (default 0.99)", parse: unit },
  {
    key: "lrSchedule",
    flags: "--lr-schedule <kind>",
    help: "none (default), cosine, step or onecycle over optimizer steps, or plateau on the validation loss",
    parse: (v) => parseChoice(v, SCHEDULES),
  },
  {
    key: "warmupSteps",
    flags: "--warmup-steps <n>",
    help: "linear warm-up over n optimizer steps before the schedule (default 0)",
    parse: (v) => parseNumber(v, { min: 0, isInteger: true }),
  },
  {
    key: "stepSize",
    flags: "--step-size <n>",
    help: "step schedule: optimizer steps between decays (default a third of the run)",
    parse: positiveInt,
  },
  {
    key: "gamma",
    flags: "--gamma <g>",
    help: "step and plateau schedules: decay factor (default 0.1)",
    parse: (v) => parseNumber(v, { min: 0, isMinExclusive: true }),
  },
  {
    key: "etaMin",
    flags: "--eta-min <lr>",
    help: "cosine schedule: final learning rate (default 0)",
    parse: nonNegative,
  },
  {
    key: "clipGradNorm",
    flags: "--clip-grad-norm <max>",
    help: "clip the global gradient L2 norm to max",
    parse: (v) => parseNumber(v, { min: 0, isMinExclusive: true }),
  },
  {
    key: "batchSize",
    flags: "--batch-size <n>",
    help: "samples per step, split across workers (default 64)",
    parse: (v) => parseNumber(v, { min: 1, max: 1 << 20, isInteger: true }),
  },
  {
    key: "epochs",
    flags: "--epochs <n>",
    help: "passes over the training set (default 20); with --resume, may extend the run",
    parse: positiveInt,
  },
  {
    key: "maxSteps",
    flags: "--max-steps <n>",
    help: "stop after n optimizer steps in total (counted across --resume), then evaluate and save as at the end",
    parse: positiveInt,
  },
  {
    key: "workers",
    flags: "--workers <n>",
    help: "worker threads: auto (default, the usable cores) or a number",
    parse: parseWorkers,
  },
  {
    key: "distributed",
    flags: "--distributed <how>",
    help: "none (default) or mpi: one of P processes started by mpirun -np P, each with --workers threads",
    parse: (v) => parseChoice(v, DISTRIBUTED),
  },
  {
    key: "accumulateSteps",
    flags: "--accumulate-steps <k>",
    help: "micro-batches whose gradients add up into one update (default 1)",
    parse: positiveInt,
  },
  {
    key: "shards",
    flags: "--shards <v>",
    help:
      "cut every batch into v parts whatever --workers (which must divide v): any such worker count " +
      "then trains bit for bit the same model (default: one part per worker; not with BatchNorm)",
    parse: positiveInt,
  },
  {
    key: "seed",
    flags: "--seed <n>",
    help: "seed for initialisation, shuffling and dropout (default 0)",
    parse: (v) => parseNumber(v, { min: 0, max: 2 ** 31 - 1, isInteger: true }),
  },
  {
    key: "out",
    flags: "--out <dir>",
    help: "run folder (default runs/<timestamp>; with --resume, the checkpoint's folder)",
    parse: parseString,
  },
  {
    key: "overwrite",
    flags: "--overwrite",
    help: "let a new run replace the run files (metrics, checkpoints, report) already in --out",
    parse: parseBoolean,
  },
  {
    key: "resume",
    flags: "--resume <checkpoint>",
    help: "continue a run from its checkpoint (settings come from the checkpoint)",
    parse: parseString,
  },
  {
    key: "evalEvery",
    flags: "--eval-every <n>",
    help: "evaluate (validation and test sets) every n epochs (default 1), or every n steps as 500steps",
    parse: parseEvalEvery,
  },
  {
    key: "skipNonFinite",
    flags: "--skip-non-finite",
    help: "skip updates whose loss or gradient is NaN/Inf instead of failing",
    parse: parseBoolean,
  },
  {
    key: "augment",
    flags: "--augment",
    help: "image data: random crop (zero padding 4) and horizontal flip of each training image, per epoch and seed",
    parse: parseBoolean,
  },
  {
    key: "normalize",
    flags: "--no-normalize",
    help: "csv: feed the features as they are (default: standardised with the training split's mean and std)",
    parse: parseBoolean,
  },
  {
    key: "valSplit",
    flags: "--val-split <fraction>",
    help: "hold out this fraction of the training rows for validation (seeded by --seed, stratified by class)",
    parse: (v) => parseNumber(v, { min: 0, max: 1, isMinExclusive: true, isMaxExclusive: true }),
  },
  {
    key: "earlyStopping",
    flags: "--early-stopping <patience>",
    help: "stop after patience evaluations without a validation-loss improvement (needs --val-split)",
    parse: positiveInt,
  },
  {
    key: "minDelta",
    flags: "--min-delta <d>",
    help: "early stopping: smallest drop in validation loss that counts as an improvement (default 0)",
    parse: nonNegative,
  },
  {
    key: "plateauPatience",
    flags: "--plateau-patience <n>",
    help: "plateau schedule: evaluations without improvement before lr is multiplied by --gamma (default 5)",
    parse: (v) => parseNumber(v, { min: 0, isInteger: true }),
  },
  { key: "quiet", flags: "--quiet", help: "print only the summary (and errors)", parse: parseBoolean },
  {
    key: "json",
    flags: "--json",
    help: "print one JSON object per line per event; the last line is the summary",
    parse: parseBoolean,
  },
];

/** Flags that may differ from the checkpoint's settings when resuming. */
export const RESUMABLE_KEYS: readonly FlagKey[] = [
  "epochs",
  "maxSteps",
  "workers",
  "distributed",
  "out",
  "evalEvery",
  "config",
  "resume",
  "quiet",
  "json",
];

/** `batchSize` → `--batch-size`. */
export const flagName = (key: string): string => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/** `batch-size` or `batchSize` → `batchSize`. */
export const keyName = (name: string): string => name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
