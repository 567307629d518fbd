// The run record `threadgrad train` keeps in every checkpoint (`extra.cli`): the resolved settings,
// the best evaluation so far, the last train loss, the preprocessing and the early-stopping counters.
// settings.ts reads the record and its settings; this module checks the other fields, each problem
// naming the file and the field, and guards which model a checkpoint may load.
import { fileURLToPath, pathToFileURL } from "node:url";
import { type GptModelSpec, type ModelSpec, type TrainerCheckpoint, safeText } from "@threadgrad/workers";
import { UsageError } from "./errors.js";
import type { TrainSettings } from "./flags.js";
import { type CategoricalColumn, MAX_CATEGORIES } from "./data/csv-categories.js";
import type { Preprocess, Scaling } from "./data/preprocess.js";
import { type Best, NEW_WATCH, type Watch } from "./session.js";
import { type ModelChoice, describeModel, isModuleModel, moduleSpecOf } from "./values.js";

export interface StoredRun {
  settings: TrainSettings;
  best: Best | null;
  trainLoss: number | null;
  /** What was done to the data before the model saw it; null in a checkpoint from before it was stored. */
  preprocess: Preprocess | null;
  /**
   * The one-hot encoded csv columns, with the categories fitted on the training rows (each column's
   * `feature` is the first of its model inputs); null when the run had none or predates storing them.
   */
  categories: CategoricalColumn[] | null;
  /** early stopping and plateau counters (fresh for a checkpoint written before they existed) */
  watch: Watch;
  /** how many processes ran it (--distributed mpi); 1 in a checkpoint written before the count was stored */
  processes: number;
}

export const own = (o: object, key: string): unknown =>
  Object.hasOwn(o, key) ? (o as Record<string, unknown>)[key] : undefined;
export const isMap = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof Uint8Array);
const shown = (v: unknown): string =>
  safeText(v === undefined ? "nothing" : typeof v === "number" ? String(v) : (JSON.stringify(v) ?? String(v)));

/** A field's error: `checkpoint: PATH: field 'F' RULE, got VALUE` (a missing field says so). */
export type Bad = (field: string, rule: string, v: unknown) => UsageError;
export const recordError =
  (path: string): Bad =>
  (field, rule, v) =>
    new UsageError(
      `checkpoint: ${path}: field '${field}' ${v === undefined ? "is missing; it " : ""}${rule}, got ${shown(v)}`,
    );

/**
 * The run record's fields besides the settings (which settings.ts reads, with the flags' parsers),
 * checked against those settings.
 */
export function readRecordFields(
  cli: Record<string, unknown>,
  s: TrainSettings,
  bad: Bad,
): Omit<StoredRun, "settings"> {
  const preprocess = readPreprocess(own(cli, "preprocess"), bad);
  if (preprocess !== null) checkPreprocessFits(preprocess, s, bad);
  return {
    best: readBest(own(cli, "best"), bad),
    trainLoss: readLoss(own(cli, "trainLoss"), bad),
    preprocess,
    categories: readCategories(own(cli, "categories"), s, preprocess, bad),
    watch: readWatch(own(cli, "watch"), bad),
    processes: readProcesses(own(cli, "processes"), bad),
  };
}

/** The most processes a stored run may name: far beyond any MPI job this trainer runs. */
const MAX_PROCESSES = 1 << 20;

function readProcesses(v: unknown, bad: Bad): number {
  if (v === undefined) return 1;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > MAX_PROCESSES)
    throw bad("extra.cli.processes", `must be an integer from 1 to ${MAX_PROCESSES}`, v);
  return v;
}

function readBest(v: unknown, bad: Bad): Best | null {
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

function readWatch(v: unknown, bad: Bad): Watch {
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

const MAX_STORED_NAMES = 1 << 16;

function finiteList(v: unknown, field: string, bad: Bad, isPositive: boolean): number[] {
  const rule = isPositive ? "must be a list of finite numbers > 0" : "must be a list of finite numbers";
  if (!Array.isArray(v) || v.length > MAX_STORED_NAMES) throw bad(field, rule, v);
  v.forEach((x, i) => {
    if (typeof x !== "number" || !Number.isFinite(x) || (isPositive && !(x > 0))) throw bad(`${field}[${i}]`, rule, x);
  });
  return v as number[];
}

function nameList(v: unknown, field: string, bad: Bad): string[] {
  const rule = "must be a list of distinct strings";
  if (!Array.isArray(v) || v.length > MAX_STORED_NAMES) throw bad(field, rule, v);
  v.forEach((x, i) => {
    if (typeof x !== "string") throw bad(`${field}[${i}]`, rule, x);
  });
  if (new Set(v).size !== v.length) throw bad(field, rule, v);
  return v as string[];
}

/** The stored preprocessing: feature scaling, target scaling, class and column names, all checked. */
function readPreprocess(v: unknown, bad: Bad): Preprocess | null {
  if (v === undefined || v === null) return null;
  const f = "extra.cli.preprocess";
  if (!isMap(v)) throw bad(f, "must be a map of fields", v);
  const features = own(v, "features");
  let scaling: Scaling | null = null;
  if (features !== null) {
    if (!isMap(features)) throw bad(`${f}.features`, "must be null or { mean, std }", features);
    const mean = finiteList(own(features, "mean"), `${f}.features.mean`, bad, false);
    const std = finiteList(own(features, "std"), `${f}.features.std`, bad, true);
    if (std.length !== mean.length)
      throw bad(`${f}.features.std`, `must have as many values as mean (${mean.length})`, std.length);
    scaling = { mean, std };
  }
  const target = own(v, "target");
  let targetScaling: Preprocess["target"] = null;
  if (target !== null) {
    if (!isMap(target)) throw bad(`${f}.target`, "must be null or { mean, std }", target);
    const mean = own(target, "mean"),
      std = own(target, "std");
    if (typeof mean !== "number" || !Number.isFinite(mean))
      throw bad(`${f}.target.mean`, "must be a finite number", mean);
    if (typeof std !== "number" || !Number.isFinite(std) || !(std > 0))
      throw bad(`${f}.target.std`, "must be a finite number > 0", std);
    targetScaling = { mean, std };
  }
  const classes = own(v, "classes");
  const featureNames = own(v, "featureNames");
  const targetName = own(v, "targetName");
  if (typeof targetName !== "string") throw bad(`${f}.targetName`, "must be a string", targetName);
  const names = featureNames === null ? null : nameList(featureNames, `${f}.featureNames`, bad);
  if (names !== null && scaling !== null && names.length !== scaling.mean.length)
    throw bad(`${f}.featureNames`, `must name the ${scaling.mean.length} scaled features`, names.length);
  return {
    features: scaling,
    target: targetScaling,
    classes: classes === null ? null : nameList(classes, `${f}.classes`, bad),
    featureNames: names,
    targetName,
  };
}

/** The stored preprocessing must fit the stored model: inputs, outputs and task. */
function checkPreprocessFits(p: Preprocess, s: TrainSettings, bad: Bad): void {
  const f = "extra.cli.preprocess";
  // The mlp's sizes are in the settings; a preset's or a module's live in the model spec, which the
  // checkpoint reader has already checked against the parameters.
  const sizes = Array.isArray(s.model) ? s.model : null;
  const inputs = sizes?.[0];
  if (inputs !== undefined && p.features !== null && p.features.mean.length !== inputs)
    throw bad(`${f}.features.mean`, `must hold one value per model input (${inputs})`, p.features.mean.length);
  if (inputs !== undefined && p.featureNames !== null && p.featureNames.length !== inputs)
    throw bad(`${f}.featureNames`, `must name the ${inputs} model inputs`, p.featureNames.length);
  const isRegression = s.loss === "mse";
  const outputs = sizes?.at(-1) ?? Number.POSITIVE_INFINITY;
  if (isRegression ? p.classes !== null : p.classes === null || p.classes.length > outputs) {
    const rule = isRegression ? "must be null for mse" : `must name at most the model's ${outputs} outputs`;
    throw bad(`${f}.classes`, rule, p.classes);
  }
  if (!isRegression && p.target !== null) throw bad(`${f}.target`, "must be null for classification", p.target);
}

/**
 * The stored one-hot columns: names and categories distinct strings, and each column's features, in
 * order and apart, within the model's inputs and named `column=category` where the names are stored.
 */
function readCategories(v: unknown, s: TrainSettings, p: Preprocess | null, bad: Bad): CategoricalColumn[] | null {
  if (v === undefined || v === null) return null;
  const f = "extra.cli.categories";
  const rule = "must be null or a list of { name, feature, values }";
  if (!Array.isArray(v) || v.length > MAX_STORED_NAMES) throw bad(f, rule, v);
  const inputs = (Array.isArray(s.model) ? s.model[0] : undefined) ?? p?.featureNames?.length;
  const names = new Set<string>();
  let next = 0;
  return v.map((c: unknown, i): CategoricalColumn => {
    const at = `${f}[${i}]`;
    if (!isMap(c)) throw bad(at, rule, c);
    const name = own(c, "name");
    const feature = own(c, "feature");
    if (typeof name !== "string" || names.has(name))
      throw bad(`${at}.name`, "must be a string no other column has", name);
    names.add(name);
    const values = nameList(own(c, "values"), `${at}.values`, bad);
    if (values.length > MAX_CATEGORIES)
      throw bad(`${at}.values`, `must hold at most ${MAX_CATEGORIES} categories`, values.length);
    const end = typeof feature === "number" ? feature + values.length : Number.NaN;
    if (typeof feature !== "number" || !Number.isSafeInteger(feature) || feature < next || end > (inputs ?? end)) {
      const room = inputs === undefined ? "" : ` among the model's ${inputs} inputs`;
      const rule = `must be an integer >= ${next} with room for its ${values.length} one-hot features${room}`;
      throw bad(`${at}.feature`, rule, feature);
    }
    next = end;
    values.forEach((value, k) => {
      const stored = p?.featureNames?.[feature + k];
      if (stored !== undefined && stored !== `${name}=${value}`)
        throw bad(`${at}.values[${k}]`, `must match its feature's stored name ${shown(stored)}`, value);
    });
    return { name, feature, values };
  });
}

function readLoss(v: unknown, bad: Bad): number | null {
  // A NaN loss is a real record (a run with --skip-non-finite), so any number is kept as it is.
  if (v === null || typeof v === "number") return v;
  throw bad("extra.cli.trainLoss", "must be a number or null", v);
}

/**
 * Refuses a checkpoint whose model came from a module unless `--model` names that module again
 * (loading a checkpoint never imports code the file names), and one whose loss came from a module.
 * @returns the model spec to load the checkpoint with: the given module's, or undefined (the stored built-in)
 */
export function moduleToLoad(ckpt: TrainerCheckpoint, given: ModelChoice | undefined): ModelSpec | undefined {
  const { model, loss } = ckpt.config;
  if (typeof loss === "object" && "module" in loss) {
    throw new UsageError(
      `checkpoint: ${ckpt.path}: its loss comes from module ${shown(loss.module)}; threadgrad trains built-in losses only ` +
        "and never imports a module a checkpoint names. " +
        "Load it from code, giving the module again: DataParallel.load(path, { model: { module, export }, loss })",
    );
  }
  if ("kind" in model) {
    if (isModuleModel(given))
      throw new UsageError(
        `--model ${describeModel(given)}: ${ckpt.path} holds the built-in ${model.kind}, not a model from a module`,
      );
    return undefined;
  }
  const name = shown(model.export ?? "default");
  if (!isModuleModel(given)) {
    let path = String(model.module);
    try {
      path = fileURLToPath(path);
    } catch {
      // not a file URL: shown as stored
    }
    throw new UsageError(
      `checkpoint: ${ckpt.path}: its model was built by module ${shown(model.module)} (export ${name}); ` +
        "threadgrad never imports a module a checkpoint names: " +
        `pass --model ${safeText(path)}${model.export && model.export !== "default" ? `#${safeText(model.export)}` : ""} ` +
        "to load it with that module (or, from code, DataParallel.load(path, { model: { module, export } }))",
    );
  }
  return moduleSpecOf(given);
}

const gptText = (g: GptModelSpec): string =>
  `gpt vocab ${g.vocab} layers ${g.layers} heads ${g.heads} dim ${g.dim} context ${g.context}`;

/** A run record whose model differs from the checkpoint's own model spec is not one file's truth. */
export function checkStoredModel(ckpt: TrainerCheckpoint, s: TrainSettings): void {
  const model = ckpt.config.model;
  const stored = !("kind" in model)
    ? `module ${String(model.module)}#${model.export ?? "default"}`
    : model.kind === "mlp"
      ? `mlp:${model.sizes.join(",")} ${model.activation ?? "relu"} dropout ${model.dropout ?? 0}`
      : model.kind === "gpt"
        ? gptText(model)
        : model.kind;
  const m = s.model;
  const settings = isModuleModel(m)
    ? `module ${pathToFileURL(m.module).href}#${m.export}`
    : m !== null && !Array.isArray(m) && typeof m === "object"
      ? gptText(m)
      : Array.isArray(m) || m === null
        ? `mlp:${m?.join(",")} ${s.activation} dropout ${s.dropout}`
        : m;
  if (stored !== settings) {
    throw new UsageError(
      `checkpoint: ${ckpt.path}: field 'extra.cli.settings.model' (${safeText(settings)}) ` +
        `differs from field 'config.model' (${safeText(stored)})`,
    );
  }
}
