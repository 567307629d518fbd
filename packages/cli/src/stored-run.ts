// The run record `threadgrad train` keeps in every checkpoint (`extra.cli`): the resolved settings,
// the best evaluation so far and the last train loss. Read back with the parsers the flags use, so a
// stored value is held to the rules a typed one is; each problem names the file and the field.
import { resolveFlatOptions } from "@threadgrad/optim";
import { type TrainerCheckpoint, safeText } from "@threadgrad/workers";
import { DEFAULT_SETTINGS, optimizerOptions } from "./config.js";
import { UsageError } from "./errors.js";
import { TRAIN_FLAGS, type TrainSettings } from "./flags.js";
import { type Best, NEW_WATCH, type Watch } from "./session.js";
import { ValueError } from "./values.js";

export interface StoredRun {
  settings: TrainSettings;
  best: Best | null;
  trainLoss: number | null;
  /** early stopping and plateau counters (fresh for a checkpoint written before they existed) */
  watch: Watch;
}

/** Settings that a finished set-up may leave null (all others hold a value: model, loss, lr included). */
const NULLABLE: readonly (keyof TrainSettings)[] = [
  "target",
  "task",
  "testSplit",
  "limit",
  "momentum",
  "weightDecay",
  "betas",
  "eps",
  "nesterov",
  "amsgrad",
  "alpha",
  "stepSize",
  "clipGradNorm",
  "out",
  "valSplit",
  "earlyStopping",
  "delimiter",
  "impute",
  "categorical",
];

/** Settings added after the first release: a checkpoint written before them takes the default. */
const ADDED_LATER: readonly (keyof TrainSettings)[] = [
  "valSplit",
  "earlyStopping",
  "minDelta",
  "plateauPatience",
  "delimiter",
  "impute",
  "categorical",
];

const own = (o: object, key: string): unknown =>
  Object.hasOwn(o, key) ? (o as Record<string, unknown>)[key] : undefined;
const isMap = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof Uint8Array);
const shown = (v: unknown): string =>
  safeText(v === undefined ? "nothing" : typeof v === "number" ? String(v) : (JSON.stringify(v) ?? String(v)));

/** The CLI's run record in a checkpoint, checked; null when the checkpoint holds none (a library save). */
export function readStoredRun(ckpt: TrainerCheckpoint): StoredRun | null {
  const path = ckpt.path;
  const bad = (field: string, rule: string, v: unknown) =>
    new UsageError(
      `checkpoint: ${path}: field '${field}' ${v === undefined ? "is missing; it " : ""}${rule}, got ${shown(v)}`,
    );
  const cli = own(ckpt.extra, "cli");
  if (cli === undefined) return null;
  if (!isMap(cli)) throw bad("extra.cli", "must be a map of fields", cli);
  const raw = own(cli, "settings");
  if (!isMap(raw)) throw bad("extra.cli.settings", "must be a map of fields", raw);
  const errors: string[] = [];
  const settings = { ...DEFAULT_SETTINGS } as unknown as Record<string, unknown>;
  for (const key of Object.keys(DEFAULT_SETTINGS) as (keyof TrainSettings)[]) {
    const field = `extra.cli.settings.${key}`;
    const value = own(raw, key);
    if (value === null && NULLABLE.includes(key)) {
      settings[key] = null;
      continue;
    }
    if (value === undefined && ADDED_LATER.includes(key)) continue;
    try {
      settings[key] = parseStored(key, value);
    } catch (err) {
      if (!(err instanceof ValueError)) throw err;
      errors.push(bad(field, err.message.replace(/, got .*$/s, ""), value).message);
    }
  }
  if (errors.length > 0) throw new UsageError(errors);
  const s = settings as unknown as TrainSettings;
  try {
    resolveFlatOptions(s.optimizer, optimizerOptions(s) as never);
  } catch (err) {
    throw new UsageError(
      `checkpoint: ${path}: field 'extra.cli.settings' holds bad optimizer options: ${(err as Error).message}`,
    );
  }
  return {
    settings: s,
    best: readBest(own(cli, "best"), bad),
    trainLoss: readLoss(own(cli, "trainLoss"), bad),
    watch: readWatch(own(cli, "watch"), bad),
  };
}

/** The JavaScript type each stored setting has once parsed (the parsers also take a command line's text). */
const STORED_TYPES: Partial<Record<keyof TrainSettings, "string" | "number" | "boolean" | "list">> = {
  data: "string",
  target: "string",
  task: "string",
  activation: "string",
  loss: "string",
  optimizer: "string",
  lrSchedule: "string",
  delimiter: "string",
  impute: "string",
  categorical: "list",
  out: "string",
  model: "list",
  betas: "list",
  nesterov: "boolean",
  amsgrad: "boolean",
  skipNonFinite: "boolean",
};
for (const key of [
  "testSplit",
  "limit",
  "dropout",
  "labelSmoothing",
  "lr",
  "momentum",
  "weightDecay",
  "eps",
  "alpha",
] as const)
  STORED_TYPES[key] = "number";
for (const key of ["valSplit", "earlyStopping", "minDelta", "plateauPatience"] as const) STORED_TYPES[key] = "number";
for (const key of ["warmupSteps", "stepSize", "gamma", "etaMin", "clipGradNorm", "batchSize", "epochs"] as const)
  STORED_TYPES[key] = "number";
for (const key of ["workers", "accumulateSteps", "seed"] as const) STORED_TYPES[key] = "number";

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
  const type = STORED_TYPES[key];
  const actual = Array.isArray(value) ? "list" : typeof value;
  if (type !== undefined && actual !== type) throw new ValueError(`must be a ${type}`);
  if (key === "betas" && (value as unknown[]).length !== 2) throw new ValueError("must be two numbers in [0, 1)");
  return parse(value);
}

function readBest(v: unknown, bad: (f: string, r: string, v: unknown) => UsageError): Best | null {
  if (v === null) return null;
  if (!isMap(v)) throw bad("extra.cli.best", "must be null or { metric, value, step }", v);
  const metric = own(v, "metric"),
    value = own(v, "value"),
    step = own(v, "step");
  const metrics = ["valAccuracy", "valLoss", "latest", "testAccuracy", "testLoss"] as const;
  if (!metrics.includes(metric as Best["metric"]))
    throw bad("extra.cli.best.metric", `must be one of ${metrics.join(", ")}`, metric);
  if (metric === "latest" ? value !== null : typeof value !== "number")
    throw bad("extra.cli.best.value", metric === "latest" ? "must be null for latest" : "must be a number", value);
  if (typeof step !== "number" || !Number.isSafeInteger(step) || step < 0)
    throw bad("extra.cli.best.step", "must be a non-negative integer", step);
  return { metric: metric as Best["metric"], value: value as number | null, step };
}

function readWatch(v: unknown, bad: (f: string, r: string, v: unknown) => UsageError): Watch {
  if (v === undefined) return { ...NEW_WATCH };
  if (!isMap(v)) throw bad("extra.cli.watch", "must be { bestValLoss, badEvals, plateau }", v);
  const bestValLoss = own(v, "bestValLoss"),
    badEvals = own(v, "badEvals"),
    plateau = own(v, "plateau");
  if (bestValLoss !== null && !(typeof bestValLoss === "number" && Number.isFinite(bestValLoss)))
    throw bad("extra.cli.watch.bestValLoss", "must be a finite number or null", bestValLoss);
  if (typeof badEvals !== "number" || !Number.isSafeInteger(badEvals) || badEvals < 0)
    throw bad("extra.cli.watch.badEvals", "must be a non-negative integer", badEvals);
  if (plateau === null) return { bestValLoss, badEvals, plateau: null };
  const rule = "must be { lastEpoch, best, numBadEpochs, cooldownCounter, lastLr } with counts >= 0";
  if (!isMap(plateau)) throw bad("extra.cli.watch.plateau", rule, plateau);
  const count = (key: string) => {
    const n = own(plateau, key);
    if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0)
      throw bad(`extra.cli.watch.plateau.${key}`, rule, n);
    return n;
  };
  const best = own(plateau, "best"),
    lastLr = own(plateau, "lastLr");
  if (typeof best !== "number" || Number.isNaN(best))
    throw bad("extra.cli.watch.plateau.best", "must be a number", best);
  if (!Array.isArray(lastLr) || lastLr.length !== 1 || !(typeof lastLr[0] === "number" && lastLr[0] > 0))
    throw bad("extra.cli.watch.plateau.lastLr", "must be one number > 0", lastLr);
  return {
    bestValLoss,
    badEvals,
    plateau: {
      lastEpoch: count("lastEpoch"),
      best,
      numBadEpochs: count("numBadEpochs"),
      cooldownCounter: count("cooldownCounter"),
      lastLr: [lastLr[0]],
    },
  };
}

function readLoss(v: unknown, bad: (f: string, r: string, v: unknown) => UsageError): number | null {
  // A NaN loss is a real record (a run with --skip-non-finite), so any number is kept as it is.
  if (v === null || typeof v === "number") return v;
  throw bad("extra.cli.trainLoss", "must be a number or null", v);
}

/**
 * Refuses a checkpoint whose model or loss came from a module: the command builds only mlp models,
 * and loading a checkpoint never imports code the file names.
 */
export function refuseModuleCode(ckpt: TrainerCheckpoint): void {
  const { model, loss } = ckpt.config;
  const from =
    "module" in model
      ? `its model was built by module ${shown(model.module)} (export ${shown(model.export ?? "default")})`
      : typeof loss === "object" && "module" in loss
        ? `its loss comes from module ${shown(loss.module)}`
        : null;
  if (from === null) return;
  throw new UsageError(
    `checkpoint: ${ckpt.path}: ${from}; threadgrad loads mlp models only ` +
      "and never imports a module a checkpoint names. " +
      "Load it from code, giving the module again: DataParallel.load(path, { model: { module, export } })",
  );
}

/** A run record whose model differs from the checkpoint's own model spec is not one file's truth. */
export function checkStoredModel(ckpt: TrainerCheckpoint, s: TrainSettings): void {
  const model = ckpt.config.model;
  if (!("kind" in model)) return;
  const stored = `mlp:${model.sizes.join(",")} ${model.activation ?? "relu"} dropout ${model.dropout ?? 0}`;
  const settings = `mlp:${s.model?.join(",")} ${s.activation} dropout ${s.dropout}`;
  if (stored !== settings) {
    throw new UsageError(
      `checkpoint: ${ckpt.path}: field 'extra.cli.settings.model' (${settings}) ` +
        `differs from field 'config.model' (${stored})`,
    );
  }
}
