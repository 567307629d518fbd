// Settings have one owner, this module: the command line's flags, a --config file and a checkpoint's
// stored run record become one checked TrainSettings here, in one pass (trainSettings for train and
// --resume, dataSettings for eval), and every source is parsed with the flags' parsers (flags.ts),
// so a bad value reads the same from each, naming the flag, the file's key or the checkpoint's field.
// A new train flag: its field in TrainSettings and its parser in TRAIN_FLAGS (flags.ts), then its row
// in SETTINGS below (default, stored type, value in older checkpoints); the compiler asks for the row.
// Only a flag with a rule of its own goes further: RESUMABLE_KEYS (flags.ts) if a resume may change
// it, OPTIMIZER_FLAGS or SCHEDULE_FLAGS if some optimizers or schedules only take it.
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, relative, resolve } from "node:path";
import { resolveFlatOptions } from "@threadgrad/optim";
import { type TrainerCheckpoint, readTrainerCheckpoint, tokenModel } from "@threadgrad/workers";
import { UsageError, asUsage } from "./errors.js";
import {
  type FlagKey,
  type SessionFlags,
  type TrainSettings,
  RESUMABLE_KEYS,
  TRAIN_FLAGS,
  flagName,
  keyName,
} from "./flags.js";
import {
  type StoredRun,
  checkStoredModel,
  isMap,
  moduleToLoad,
  own,
  readRecordFields,
  recordError,
} from "./stored-run.js";
import { type ModelChoice, ValueError } from "./values.js";

export type GivenSettings = Partial<TrainSettings & SessionFlags>;

/** The JavaScript type a setting has once parsed, as a checkpoint stores it. */
type StoredType = "string" | "number" | "boolean" | "list";

interface Setting<V> {
  /** the value when no source gives one */
  default: V;
  /** its type in a checkpoint's record (the parsers also take a command line's text); unset: checked by its parser alone */
  stored?: StoredType;
  /** null until set-up fills it in (from the data or the optimizer); a stored run always holds a value */
  isFilledIn?: true;
  /** the value a checkpoint written before the setting existed stands for */
  older?: V;
}

/** Every setting, in the order config.json and the checkpoints hold them. */
const SETTINGS: { [K in keyof TrainSettings]: Setting<TrainSettings[K]> } = {
  data: { default: "digits", stored: "string" },
  target: { default: null, stored: "string" },
  task: { default: null, stored: "string" },
  testSplit: { default: null, stored: "number" },
  limit: { default: null, stored: "number" },
  // A run recorded before --image-size existed read no images.
  imageSize: { default: null, stored: "list", older: null },
  model: { default: null, isFilledIn: true },
  activation: { default: "relu", stored: "string" },
  dropout: { default: 0, stored: "number" },
  loss: { default: null, stored: "string", isFilledIn: true },
  labelSmoothing: { default: 0, stored: "number" },
  optimizer: { default: "adam", stored: "string" },
  lr: { default: null, stored: "number", isFilledIn: true },
  momentum: { default: null, stored: "number" },
  weightDecay: { default: null, stored: "number" },
  betas: { default: null, stored: "list" },
  eps: { default: null, stored: "number" },
  nesterov: { default: null, stored: "boolean" },
  amsgrad: { default: null, stored: "boolean" },
  alpha: { default: null, stored: "number" },
  lrSchedule: { default: "none", stored: "string" },
  warmupSteps: { default: 0, stored: "number" },
  stepSize: { default: null, stored: "number" },
  gamma: { default: 0.1, stored: "number" },
  etaMin: { default: 0, stored: "number" },
  clipGradNorm: { default: null, stored: "number" },
  batchSize: { default: 64, stored: "number" },
  epochs: { default: 20, stored: "number" },
  workers: { default: "auto", stored: "number" },
  // Runs recorded before --distributed existed ran in one process.
  distributed: { default: "none", stored: "string", older: "none" },
  accumulateSteps: { default: 1, stored: "number" },
  // Runs recorded before --shards existed cut each batch into one part per worker.
  shards: { default: null, stored: "number", older: null },
  seed: { default: 0, stored: "number" },
  out: { default: null, stored: "string" },
  evalEvery: { default: { every: 1, unit: "epoch" } },
  skipNonFinite: { default: false, stored: "boolean" },
  // Checkpoints from before --augment and --no-normalize existed fed features as they were.
  augment: { default: false, stored: "boolean", older: false },
  normalize: { default: true, stored: "boolean", older: false },
  valSplit: { default: null, stored: "number", older: null },
  earlyStopping: { default: null, stored: "number", older: null },
  minDelta: { default: 0, stored: "number", older: 0 },
  plateauPatience: { default: 5, stored: "number", older: 5 },
  delimiter: { default: null, stored: "string", older: null },
  impute: { default: null, stored: "string", older: null },
  categorical: { default: null, stored: "list", older: null },
  // Runs recorded before --context and --max-steps existed read no text and ran every epoch.
  context: { default: null, stored: "number", older: null },
  maxSteps: { default: null, stored: "number", older: null },
};

const SETTING_KEYS = Object.keys(SETTINGS) as (keyof TrainSettings)[];
const rule = (key: keyof TrainSettings): Setting<unknown> => SETTINGS[key] as Setting<unknown>;

/** Defaults for everything not given; model, loss and lr stay null until the data is known. */
export const DEFAULT_SETTINGS = Object.fromEntries(
  SETTING_KEYS.map((key) => [key, rule(key).default]),
) as unknown as TrainSettings;

/**
 * Learning rates used when --lr is not given. Adam's 2e-3 (PyTorch: 1e-3) was measured on the
 * built-in digits: 20 epochs reach 96.2-96.3% test accuracy over seeds 0-3, 1e-3 only 95.3-95.9%.
 */
export const DEFAULT_LR: Partial<Record<TrainSettings["optimizer"], number>> = { adam: 2e-3, adamw: 2e-3 };

/** Which optimizer flags each optimizer takes (PyTorch's options, camelCased). */
const OPTIMIZER_FLAGS: Record<TrainSettings["optimizer"], (keyof TrainSettings)[]> = {
  adam: ["lr", "betas", "eps", "weightDecay", "amsgrad"],
  adamw: ["lr", "betas", "eps", "weightDecay", "amsgrad"],
  sgd: ["lr", "momentum", "weightDecay", "nesterov"],
  rmsprop: ["lr", "alpha", "eps", "weightDecay", "momentum"],
  adagrad: ["lr", "eps", "weightDecay"],
};
/** The flags that only some optimizers take (every one takes --lr), in the flag table's order. */
const OPTIMIZER_ONLY_KEYS = TRAIN_FLAGS.map((f) => f.key).filter(
  (key): key is keyof TrainSettings =>
    key !== "lr" && Object.values(OPTIMIZER_FLAGS).some((keys) => keys.includes(key as keyof TrainSettings)),
);
const SCHEDULE_FLAGS: Partial<Record<keyof TrainSettings, TrainSettings["lrSchedule"][]>> = {
  stepSize: ["step"],
  gamma: ["step", "plateau"],
  etaMin: ["cosine"],
  plateauPatience: ["plateau"],
};
const PATH_SCHEMES = ["idx", "mnist", "fashion-mnist", "csv", "images", "text"];

/** A train flag's parser, for another command's flag of the same name and meaning (bench, predict). */
export function parserOf<K extends keyof TrainSettings>(key: K): (v: unknown) => TrainSettings[K] {
  return TRAIN_FLAGS.find((f) => f.key === key)!.parse as (v: unknown) => TrainSettings[K];
}

/** Makes the path inside a data spec absolute (`csv:x.csv` → `csv:/home/me/x.csv`), so a resumed run finds it from anywhere. */
export function absoluteDataSpec(spec: string, baseDir: string): string {
  const colon = spec.indexOf(":");
  if (colon < 0) return spec;
  const scheme = spec.slice(0, colon),
    arg = spec.slice(colon + 1);
  return PATH_SCHEMES.includes(scheme) && arg !== "" ? `${scheme}:${resolve(baseDir, arg)}` : spec;
}

/** What the command line and its --config file give, and where each value came from. */
export interface Given {
  values: GivenSettings;
  /** each given key's source as messages name it: `--lr`, or `run.json: "lr"` for a config file's */
  from: Partial<Record<FlagKey, string>>;
}

/** The name a message gives a setting: where its value came from, the flag when nothing is known. */
const nameOf = (key: string, from: Given["from"]): string => from[key as FlagKey] ?? flagName(key);

function parseInto(into: Given, key: FlagKey, raw: unknown, where: string, baseDir: string, errors: string[]): void {
  const spec = TRAIN_FLAGS.find((f) => f.key === key);
  if (spec === undefined) return;
  try {
    let value = spec.parse(raw);
    if (key === "data") value = absoluteDataSpec(value as string, baseDir);
    if (key === "resume" || (key === "out" && baseDir !== process.cwd())) value = resolve(baseDir, value as string);
    if (key === "betas") {
      const list = value as number[];
      if (list.length !== 2)
        throw new ValueError(`must be two numbers in [0, 1) such as 0.9,0.999, got ${JSON.stringify(raw)}`);
      value = [list[0], list[1]];
    }
    (into.values as Record<string, unknown>)[key] = value;
    into.from[key] = where;
  } catch (err) {
    if (!(err instanceof ValueError)) throw err;
    errors.push(`${where} ${err.message}`);
  }
}

function readConfigFile(file: string, errors: string[]): Given {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new UsageError(`--config: cannot read ${file}: ${(err as Error).message}`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new UsageError(`--config: ${file} must hold a JSON object of settings, such as {"epochs": 5, "lr": 0.001}`);
  }
  const given: Given = { values: {}, from: {} };
  const known: FlagKey[] = TRAIN_FLAGS.map((f) => f.key).filter((k) => k !== "config");
  for (const [name, raw] of Object.entries(parsed)) {
    const key = keyName(name) as FlagKey;
    if (!known.includes(key)) {
      errors.push(`${file}: unknown setting "${name}" (settings: ${known.join(", ")})`);
      continue;
    }
    parseInto(given, key, raw, `${file}: "${name}"`, dirname(resolve(file)), errors);
  }
  return given;
}

/**
 * Parses commander's option values (strings and booleans, undefined when absent) and the
 * `--config` file they name; returns only what was given, flags over file values, with each one's source.
 */
export function readGiven(cli: Record<string, unknown>): Given {
  const errors: string[] = [];
  const flags: Given = { values: {}, from: {} };
  for (const [key, raw] of Object.entries(cli)) {
    if (raw !== undefined) parseInto(flags, key as FlagKey, raw, flagName(key), process.cwd(), errors);
  }
  const file = typeof flags.values.config === "string" ? readConfigFile(flags.values.config, errors) : null;
  if (errors.length > 0) throw new UsageError(errors);
  return { values: { ...file?.values, ...flags.values }, from: { ...file?.from, ...flags.from } };
}

/**
 * What readGiven reads, without the sources.
 * @example readGivenSettings({ lr: "0.01", config: "run.json" })
 */
export function readGivenSettings(cli: Record<string, unknown>): GivenSettings {
  return readGiven(cli).values;
}

function crossChecks(s: TrainSettings, given: GivenSettings, from: Given["from"]): string[] {
  const errors: string[] = [];
  for (const key of OPTIMIZER_ONLY_KEYS) {
    if (given[key] !== undefined && given[key] !== null && !OPTIMIZER_FLAGS[s.optimizer].includes(key)) {
      const takes = OPTIMIZER_FLAGS[s.optimizer].map(flagName).join(", ");
      errors.push(`${nameOf(key, from)} does not apply to --optimizer ${s.optimizer} (it takes ${takes})`);
    }
  }
  for (const [key, schedules] of Object.entries(SCHEDULE_FLAGS)) {
    if (given[key as keyof TrainSettings] !== undefined && !schedules.includes(s.lrSchedule)) {
      errors.push(`${nameOf(key, from)} only applies to --lr-schedule ${schedules.join(" or ")}, not ${s.lrSchedule}`);
    }
  }
  errors.push(...validationChecks(s, given));
  if (s.lrSchedule === "onecycle" && s.warmupSteps > 0) {
    errors.push(
      "--warmup-steps does not combine with --lr-schedule onecycle, which warms up by itself (its first 30% of steps)",
    );
  }
  if (errors.length === 0) {
    try {
      resolveFlatOptions(s.optimizer, optimizerOptions(s) as never);
    } catch (err) {
      errors.push(`--optimizer ${s.optimizer}: ${(err as Error).message}`);
    }
  }
  return errors;
}

/** What watches the validation loss needs a validation set; a plateau needs a factor below 1. */
function validationChecks(s: TrainSettings, given: GivenSettings): string[] {
  const errors: string[] = [];
  const without = "there is no validation set to watch; add --val-split FRACTION (e.g. --val-split 0.1)";
  // text: data always has one (the last 10% of the corpus).
  const hasVal = s.valSplit !== null || s.data.startsWith("text:");
  if (s.earlyStopping !== null && !hasVal) errors.push(`--early-stopping ${s.earlyStopping}: ${without}`);
  if (given.minDelta !== undefined && s.earlyStopping === null)
    errors.push("--min-delta only applies with --early-stopping PATIENCE");
  if (s.lrSchedule === "plateau" && !hasVal) errors.push(`--lr-schedule plateau: ${without}`);
  if (s.lrSchedule === "plateau" && s.gamma >= 1)
    errors.push(`--gamma ${s.gamma}: --lr-schedule plateau multiplies the lr by it, so it must be below 1`);
  return errors;
}

/** The optimizer's options as the trainer takes them: only those given, lr filled in. */
export function optimizerOptions(s: TrainSettings): Record<string, unknown> {
  const opts: Record<string, unknown> = {};
  for (const key of OPTIMIZER_FLAGS[s.optimizer]) if (s[key] !== null) opts[key] = s[key];
  return opts;
}

/**
 * Settings for a new run: defaults under what was given, then the checks that span several flags;
 * `from` names each given value's source in the messages (default: its flag).
 */
export function newRunSettings(given: GivenSettings, from: Given["from"] = {}): TrainSettings {
  const s = { ...DEFAULT_SETTINGS } as TrainSettings;
  for (const key of SETTING_KEYS) {
    if (given[key] !== undefined) (s as unknown as Record<string, unknown>)[key] = given[key];
  }
  if (s.lr === null) s.lr = DEFAULT_LR[s.optimizer] ?? (resolveFlatOptions(s.optimizer, {}) as { lr: number }).lr;
  const errors = crossChecks(s, given, from);
  if (errors.length > 0) throw new UsageError(errors);
  return s;
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);
const shown = (v: unknown): string =>
  Array.isArray(v) ? v.join(",") : typeof v === "object" && v !== null ? JSON.stringify(v) : String(v);

/**
 * Settings for a resumed run: the checkpoint's, with only --epochs, --max-steps, --workers,
 * --distributed, --out and --eval-every allowed to change (the process count is checked against
 * the run record). Anything else given must equal the stored value, because a resumed run must
 * compute what the stopped run would have; `from` names each given value's source.
 */
export function resumedSettings(stored: TrainSettings, given: GivenSettings, from: Given["from"] = {}): TrainSettings {
  const errors: string[] = [];
  const s = { ...stored };
  for (const key of Object.keys(given) as FlagKey[]) {
    if (!(key in stored)) continue;
    const value = given[key];
    if (RESUMABLE_KEYS.includes(key)) (s as unknown as Record<string, unknown>)[key] = value;
    else if (!same(value, stored[key as keyof TrainSettings])) {
      errors.push(
        `--resume: ${nameOf(key, from)} ${shown(value)} differs from the checkpoint's ${shown(stored[key as keyof TrainSettings])}; ` +
          `a resumed run keeps its settings (only --epochs, --max-steps, --workers, --distributed, --out and --eval-every may change)`,
      );
    }
  }
  if (errors.length > 0) throw new UsageError(errors);
  return s;
}

/** The CLI's run record in a checkpoint, checked; null when the checkpoint holds none (a library save). */
export function readStoredRun(ckpt: TrainerCheckpoint): StoredRun | null {
  const bad = recordError(ckpt.path);
  const cli = own(ckpt.extra, "cli");
  if (cli === undefined) return null;
  if (!isMap(cli)) throw bad("extra.cli", "must be a map of fields", cli);
  const raw = own(cli, "settings");
  if (!isMap(raw)) throw bad("extra.cli.settings", "must be a map of fields", raw);
  const errors: string[] = [];
  const settings = { ...DEFAULT_SETTINGS } as unknown as Record<string, unknown>;
  for (const key of SETTING_KEYS) {
    const { isFilledIn, older } = rule(key);
    const value = own(raw, key);
    if (value === undefined && older !== undefined) settings[key] = older;
    else if (value === null && SETTINGS[key].default === null && !isFilledIn) settings[key] = null;
    else {
      try {
        settings[key] = parseStored(key, value);
      } catch (err) {
        if (!(err instanceof ValueError)) throw err;
        errors.push(bad(`extra.cli.settings.${key}`, err.message.replace(/, got .*$/s, ""), value).message);
      }
    }
  }
  if (errors.length > 0) throw new UsageError(errors);
  const s = settings as unknown as TrainSettings;
  try {
    resolveFlatOptions(s.optimizer, optimizerOptions(s) as never);
  } catch (err) {
    throw new UsageError(
      `checkpoint: ${ckpt.path}: field 'extra.cli.settings' holds bad optimizer options: ${(err as Error).message}`,
    );
  }
  return { settings: s, ...readRecordFields(cli, s, bad) };
}

/** A stored setting, held to its type and then to the parser a typed flag goes through. */
function parseStored(key: keyof TrainSettings, value: unknown): unknown {
  if (value === undefined || value === null) throw new ValueError("must hold a value");
  const parse = TRAIN_FLAGS.find((f) => f.key === key)!.parse;
  if (key === "evalEvery") {
    // Stored parsed, as { every, unit }: give the parser the text a user would write.
    const unit = isMap(value) ? own(value, "unit") : undefined;
    if (!isMap(value) || typeof own(value, "every") !== "number" || (unit !== "epoch" && unit !== "step"))
      throw new ValueError("must be { every, unit } with unit epoch or step");
    return parse(`${own(value, "every")}${unit}s`);
  }
  if (key === "categorical" && value === "auto") return value;
  if (key === "workers" && typeof value === "string") {
    if (value === "auto") return value;
    throw new ValueError("must be auto or an integer from 1 to 256");
  }
  if (key === "model" && !Array.isArray(value) && typeof value !== "string" && !isMap(value))
    throw new ValueError("must be a list of mlp widths, a built-in model's name or { module, export }");
  const type = SETTINGS[key].stored;
  const actual = Array.isArray(value) ? "list" : typeof value;
  if (type !== undefined && actual !== type) throw new ValueError(`must be a ${type}`);
  if (key === "betas" && (value as unknown[]).length !== 2) throw new ValueError("must be two numbers in [0, 1)");
  return parse(value);
}

/**
 * The run record of a checkpoint written by `threadgrad train`, checked, its model included. A
 * checkpoint of a module's model needs that module again as `model` (see moduleToLoad).
 */
export function storedRun(ckpt: TrainerCheckpoint, model?: ModelChoice): StoredRun {
  moduleToLoad(ckpt, model);
  const run = readStoredRun(ckpt);
  if (run === null)
    throw new UsageError(`checkpoint: ${ckpt.path} was not written by threadgrad train (it holds no run settings)`);
  checkStoredModel(ckpt, run.settings);
  return run;
}

/** `threadgrad train`'s settings, resolved in one pass. */
export interface TrainRun {
  /** what was given, session flags (--json, --quiet, --overwrite, --resume) included */
  given: GivenSettings;
  settings: TrainSettings;
  /** a resumed run's record */
  stored: StoredRun | null;
  /** the checked checkpoint a resumed run continues */
  checkpoint: TrainerCheckpoint | null;
}

/**
 * `threadgrad train`'s settings from commander's option values: flags over the --config file over
 * the defaults for a new run; with --resume, the checkpoint's, where only RESUMABLE_KEYS may change
 * and --out defaults to the checkpoint's folder. Model and loss stay null until the data is known.
 */
export function trainSettings(cli: Record<string, unknown>): TrainRun {
  const { values: given, from } = readGiven(cli);
  if (typeof given.resume !== "string")
    return { given, settings: newRunSettings(given, from), stored: null, checkpoint: null };
  const path = given.resume;
  const checkpoint = asUsage(() => readTrainerCheckpoint(path));
  const stored = storedRun(checkpoint, given.model ?? undefined);
  const settings = resumedSettings(stored.settings, given, from);
  if (given.out === undefined) {
    const dir = dirname(path),
      rel = relative(process.cwd(), dir);
    settings.out = rel === "" ? "." : rel.startsWith("..") || isAbsolute(rel) ? dir : rel;
  }
  return { given, settings, stored, checkpoint };
}

/** The data `threadgrad eval` reads, as settings for loadRunData, and the checkpoint's run record. */
export interface DataRun {
  settings: TrainSettings;
  stored: StoredRun | null;
  /** true when no --data was given: the settings name the data the checkpoint was trained on */
  isTrainedData: boolean;
}

/**
 * The data settings of a command that reads a checkpoint (eval): --data with the defaults, or
 * without it the checkpoint's stored data (all of it: no --limit); --target, --task and
 * --test-split over either. The stored one-hot columns are read as categories whichever data it is.
 */
export function dataSettings(cli: Record<string, unknown>, ckpt: TrainerCheckpoint, model?: ModelChoice): DataRun {
  const parsed: Given = { values: {}, from: {} };
  const errors: string[] = [];
  for (const key of ["task", "testSplit"] as const)
    if (cli[key] !== undefined) parseInto(parsed, key, cli[key], flagName(key), process.cwd(), errors);
  if (errors.length > 0) throw new UsageError(errors);
  const { task, testSplit } = parsed.values;
  const record = readStoredRun(ckpt);
  let settings: TrainSettings;
  if (typeof cli.data !== "string") {
    if (record === null)
      throw new UsageError(`eval: ${ckpt.path} does not say which data it was trained on; pass --data`);
    const stored = storedRun(ckpt, model).settings;
    settings = { ...stored, limit: null, task: task ?? stored.task, testSplit: testSplit ?? stored.testSplit };
  } else {
    const spec = ckpt.config.model;
    // Other images for a built-in image model: resized to the size it was trained on.
    const imageSize =
      "kind" in spec && spec.kind !== "mlp" && spec.kind !== "gpt" && cli.data.startsWith("images:")
        ? [spec.height, spec.width]
        : null;
    // Other text: windows as long as the run's (its --context, or its language model's).
    const context =
      (record !== null ? storedRun(ckpt, model).settings.context : null) ?? tokenModel(spec)?.context ?? null;
    settings = {
      ...DEFAULT_SETTINGS,
      imageSize,
      context,
      data: absoluteDataSpec(cli.data, process.cwd()),
      target: typeof cli.target === "string" ? cli.target : null,
      task: task ?? null,
      testSplit: testSplit ?? null,
    };
  }
  const categories = record?.categories;
  if (categories && categories.length > 0) settings.categorical = categories.map((c) => c.name);
  return { settings, stored: record, isTrainedData: typeof cli.data !== "string" };
}
