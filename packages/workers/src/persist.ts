import { FLT_MIN } from "@threadgrad/core";
import { type OptimizerName, type ScheduleConfig, resolveFlatOptions, stateBuffers } from "@threadgrad/optim";
import { type StoredTensor, loadTensor, readCheckpoint, storeTensor, writeCheckpoint } from "./checkpoint.js";
import { FieldReader, own, readLossSpec, readModelSpec, readSchedule, safeText } from "./checkpoint-schema.js";
import { type LossSpec, MAX_PARAMETERS, type ModelSpec, builtinParameterShapes } from "./spec.js";
import type { DataParallel, OptimizerConfig, Progress } from "./trainer.js";

// A trainer checkpoint: the configuration to rebuild it, every parameter and optimizer state buffer
// by parameter name (raw bytes), and the progress counters that fix the data order and dropout keys.

export function saveTrainer(t: DataParallel, path: string, extra: Record<string, unknown>): void {
  const named = [...t.model.namedParameters()];
  const params: Record<string, StoredTensor> = {};
  const state: Record<string, Record<string, StoredTensor>> = {};
  const buffers = stateBuffers(t.optimizer.name, t.optimizer.options as never);
  named.forEach(([name, p], i) => {
    params[name] = storeTensor(t.arena.paramView(i), p.shape);
    buffers.forEach((b, k) => {
      const byParam = state[b.name] ?? {};
      state[b.name] = byParam;
      byParam[name] = storeTensor(t.arena.paramIn(t.arena.state(k), i), p.shape);
    });
  });
  // Module buffers (BatchNorm's running statistics): main's model sees the shared values rank 0 updates.
  const storedBuffers: Record<string, StoredTensor> = {};
  for (const [name, b] of t.model.namedBuffers())
    storedBuffers[name] = storeTensor(b.data as Float32Array | Float64Array | Int32Array, b.shape);
  const { model, loss, seed, schedule, clipGradNorm, accumulateSteps, skipNonFinite, maxBatchSize, shards } = t.options;
  const modelSpec =
    "module" in model
      ? { ...model, module: model.module instanceof URL ? model.module.href : String(model.module) }
      : model;
  const lossSpec =
    typeof loss === "object" && "module" in loss
      ? { ...loss, module: loss.module instanceof URL ? loss.module.href : String(loss.module) }
      : loss;
  writeCheckpoint(path, {
    kind: "threadgrad-trainer",
    config: {
      // The worker count is kept so a plain load resumes bit for bit (the sums run in rank order).
      workers: t.numWorkers,
      model: modelSpec,
      loss: lossSpec,
      seed,
      schedule: schedule ?? null,
      clipGradNorm: clipGradNorm ?? null,
      accumulateSteps,
      // Virtual shards, when asked for: a load on another divisor of them continues bit for bit.
      shards: shards ?? null,
      skipNonFinite,
      maxBatchSize,
      optimizer: { name: t.optimizer.name, ...t.optimizer.options },
    },
    progress: { ...t.progress },
    params,
    optimizerState: state,
    buffers: storedBuffers,
    extra,
  });
}

/** The trainer options a checkpoint stores: every one present and checked. */
export interface StoredTrainerConfig {
  workers: number;
  /** a module spec here is data: loading needs the module given again (`DataParallel.load(path, { model })`) */
  model: ModelSpec;
  loss: LossSpec;
  seed: number;
  schedule: ScheduleConfig | null;
  clipGradNorm: number | undefined;
  accumulateSteps: number;
  /** virtual shards (TrainerOptions.shards); undefined when not asked for, or in a file from before them */
  shards: number | undefined;
  skipNonFinite: boolean;
  maxBatchSize: number;
  optimizer: OptimizerConfig;
}

/** A trainer checkpoint, validated field by field (see `readTrainerCheckpoint`). */
export interface TrainerCheckpoint {
  path: string;
  config: StoredTrainerConfig;
  progress: Progress;
  /** every parameter by name, in the file's order */
  params: Map<string, StoredTensor>;
  /** optimizer state buffer name -> parameter name -> tensor of that parameter's shape */
  optimizerState: Map<string, Map<string, StoredTensor>>;
  /**
   * every module buffer by name (running statistics, counters), or null for a file written before
   * checkpoints kept buffers: it restores only a model without any
   */
  buffers: Map<string, StoredTensor> | null;
  /** the caller's data saved alongside (`save(path, extra)`), unchecked beyond being a map */
  extra: Record<string, unknown>;
}

/** Largest maxBatchSize a checkpoint may ask for (the trainer allocates 8 index buffers of it). */
export const MAX_STORED_BATCH_SIZE = 1 << 22;

/**
 * Reads a trainer checkpoint and checks every field: types, ranges, tensor sizes against shapes,
 * a built-in model's parameter names and shapes against its spec, the optimizer state against the
 * optimizer. Throws an Error naming the file and the field. Imports and calls nothing the file names.
 * @example const { config, progress } = readTrainerCheckpoint("runs/x/checkpoint-latest.msgpack");
 */
export function readTrainerCheckpoint(path: string): TrainerCheckpoint {
  const r = new FieldReader(path);
  const payload = readCheckpoint(path);
  if (own(payload, "kind") !== "threadgrad-trainer") r.fail("kind", "must be threadgrad-trainer", own(payload, "kind"));
  const config = readConfig(r, own(payload, "config"));
  const progress = readProgress(r, own(payload, "progress"), config.maxBatchSize);
  const params = readParams(r, own(payload, "params"), config.model);
  const optimizerState = readOptimizerState(r, own(payload, "optimizerState"), config.optimizer, params);
  const buffers = readBuffers(r, own(payload, "buffers"), config.model);
  const extra = r.object(own(payload, "extra"), "extra");
  return { path, config, progress, params, optimizerState, buffers, extra };
}

function readConfig(r: FieldReader, v: unknown): StoredTrainerConfig {
  const c = r.object(v, "config");
  const get = (key: string) => own(c, key);
  const clip = get("clipGradNorm");
  const shards = get("shards");
  return {
    workers: r.int(get("workers"), "config.workers", 1, 256),
    model: readModelSpec(r, get("model"), "config.model"),
    loss: readLossSpec(r, get("loss"), "config.loss"),
    seed: r.int(get("seed"), "config.seed", Number.MIN_SAFE_INTEGER),
    schedule: get("schedule") === null ? null : readSchedule(r, get("schedule"), "config.schedule"),
    clipGradNorm: clip === null ? undefined : r.num(clip, "config.clipGradNorm", { min: 0, above: true }),
    accumulateSteps: r.int(get("accumulateSteps"), "config.accumulateSteps", 1, 1 << 20),
    shards: shards === undefined || shards === null ? undefined : r.int(shards, "config.shards", 1, 1 << 16),
    skipNonFinite: r.bool(get("skipNonFinite"), "config.skipNonFinite"),
    maxBatchSize: r.int(get("maxBatchSize"), "config.maxBatchSize", 1, MAX_STORED_BATCH_SIZE),
    optimizer: readOptimizer(r, get("optimizer")),
  };
}

const OPTIMIZERS: readonly OptimizerName[] = ["adam", "adamw", "sgd", "rmsprop", "adagrad"];

function readOptimizer(r: FieldReader, v: unknown): OptimizerConfig {
  const o = r.object(v, "config.optimizer");
  const name = r.choice(own(o, "name"), "config.optimizer.name", OPTIMIZERS);
  const options: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(o)) {
    if (key === "name") continue;
    if (typeof value === "number" && !Number.isFinite(value))
      r.fail(`config.optimizer.${key}`, "must be finite", value);
    options[key] = value;
  }
  if (options.lr === undefined) r.fail("config.optimizer.lr", "must be the learning rate the run used", undefined);
  try {
    return { name, ...(resolveFlatOptions(name, options as never) as unknown as Record<string, unknown>) };
  } catch (err) {
    return r.fail("config.optimizer", `is not valid (${(err as Error).message})`, o);
  }
}

function readProgress(r: FieldReader, v: unknown, maxBatchSize: number): Progress {
  const p = r.object(v, "progress");
  const count = (key: string) => r.int(own(p, key), `progress.${key}`, 0);
  const progress: Progress = {
    batchSize: r.int(own(p, "batchSize"), "progress.batchSize", 0, maxBatchSize),
    epoch: count("epoch"),
    stepInEpoch: count("stepInEpoch"),
    globalStep: count("globalStep"),
    optimizerStep: count("optimizerStep"),
  };
  const lrScale = own(p, "lrScale");
  if (lrScale !== undefined) progress.lrScale = r.num(lrScale, "progress.lrScale", { min: 0, above: true });
  if (progress.stepInEpoch > progress.globalStep)
    r.fail("progress.stepInEpoch", `must be at most globalStep (${progress.globalStep})`, progress.stepInEpoch);
  if (progress.optimizerStep > progress.globalStep)
    r.fail("progress.optimizerStep", `must be at most globalStep (${progress.globalStep})`, progress.optimizerStep);
  if (progress.stepInEpoch > 0 && progress.batchSize === 0)
    r.fail("progress.batchSize", "must be the batch size of the epoch in progress (stepInEpoch > 0)", 0);
  return progress;
}

function readParams(r: FieldReader, v: unknown, model: ModelSpec): Map<string, StoredTensor> {
  const o = r.object(v, "params");
  const entries = Object.entries(o);
  if (entries.length === 0 || entries.length > 1 << 16)
    r.fail("params", "must hold 1 to 65536 parameters", entries.length);
  const params = new Map<string, StoredTensor>();
  if ("kind" in model) {
    // A built-in model's parameters are known from its spec: exactly these, with these shapes.
    const expected = builtinParameterShapes(model);
    const names = expected.map(([name]) => name);
    for (const [name] of entries)
      if (!names.includes(name))
        r.reject(`params.${name}`, `is not a parameter of the ${model.kind} (${names.join(", ")})`);
    for (const [name, shape] of expected) params.set(name, r.tensor(own(o, name), `params.${name}`, shape));
    return params;
  }
  let total = 0;
  for (const [name, t] of entries) {
    const tensor = r.tensor(t, `params.${name}`);
    total += tensor.bytes.byteLength / 4;
    if (total > MAX_PARAMETERS) r.fail("params", `must hold at most ${MAX_PARAMETERS} values in all`, total);
    params.set(name, tensor);
  }
  return params;
}

/** Buffers by name (float32, float64 or int32); absent in files from before they were saved (null). */
function readBuffers(r: FieldReader, v: unknown, model: ModelSpec): Map<string, StoredTensor> | null {
  if (v === undefined) return null;
  const o = r.object(v, "buffers");
  const entries = Object.entries(o);
  // The built-in mlp has none; a module model's are checked against the model when it is restored.
  if ("kind" in model && entries.length > 0)
    r.reject(`buffers.${entries[0]![0]}`, "is not a buffer of the mlp (it has none)");
  if (entries.length > 1 << 16) r.fail("buffers", "must hold at most 65536 buffers", entries.length);
  const buffers = new Map<string, StoredTensor>();
  let total = 0;
  for (const [name, t] of entries) {
    const tensor = r.tensor(t, `buffers.${name}`, undefined, ["float32", "float64", "int32"]);
    total += tensor.shape.reduce((a, b) => a * b, 1);
    if (total > MAX_PARAMETERS) r.fail("buffers", `must hold at most ${MAX_PARAMETERS} values in all`, total);
    buffers.set(name, tensor);
  }
  return buffers;
}

function readOptimizerState(
  r: FieldReader,
  v: unknown,
  optimizer: OptimizerConfig,
  params: Map<string, StoredTensor>,
): Map<string, Map<string, StoredTensor>> {
  const o = r.object(v, "optimizerState");
  const { name: optimizerName, ...options } = optimizer;
  const buffers = stateBuffers(optimizerName, options as never).map((b) => b.name);
  for (const key of Object.keys(o))
    if (!buffers.includes(key))
      r.reject(`optimizerState.${key}`, `is not a state buffer of ${optimizer.name} (${buffers.join(", ") || "none"})`);
  const state = new Map<string, Map<string, StoredTensor>>();
  for (const buffer of buffers) {
    const b = r.object(own(o, buffer), `optimizerState.${buffer}`);
    for (const key of Object.keys(b))
      if (!params.has(key)) r.reject(`optimizerState.${buffer}.${key}`, "names no parameter in params");
    const byParam = new Map<string, StoredTensor>();
    for (const [name, p] of params) {
      // float64 state (from a float64 update) is accepted and converted on restore (asFloat32State).
      byParam.set(name, r.tensor(own(b, name), `optimizerState.${buffer}.${name}`, p.shape, ["float32", "float64"]));
    }
    state.set(buffer, byParam);
  }
  return state;
}

/**
 * Checks a model's parameters (names and shapes) and an optimizer's state buffers against a
 * checkpoint; throws naming the file and the first difference. `restoreTrainer` runs it before
 * writing anything.
 */
export function checkAgainstModel(
  ckpt: TrainerCheckpoint,
  named: readonly [string, { shape: readonly number[] }][],
  bufferNames: readonly string[],
): void {
  const { path, params, optimizerState } = ckpt;
  for (const [name, p] of named) {
    const stored = params.get(name);
    if (stored === undefined) {
      throw new Error(
        `checkpoint: ${path} has no parameter '${name}' (it holds ${safeText([...params.keys()].join(", "))}); ` +
          "is this the model it was saved from?",
      );
    }
    if (stored.shape.join() !== p.shape.join()) {
      throw new Error(
        `checkpoint: parameter '${name}' has shape [${stored.shape.join(", ")}] in ${path}, the model has [${p.shape.join(", ")}]`,
      );
    }
    for (const b of bufferNames) {
      if (optimizerState.get(b)?.get(name) === undefined)
        throw new Error(`checkpoint: ${path} has no optimizer state '${b}' for '${name}'`);
    }
  }
  if (named.length !== params.size) {
    const extra = [...params.keys()].filter((n) => !named.some(([m]) => m === n));
    throw new Error(`checkpoint: ${path} holds parameters the model does not have: ${safeText(extra.join(", "))}`);
  }
}

/**
 * Checks a model's buffers (names, shapes, dtypes) against a checkpoint's; throws naming the file
 * and the first difference. A file from before buffers were saved fits only a model without any.
 */
export function checkBuffersAgainstModel(
  ckpt: TrainerCheckpoint,
  named: readonly [string, { shape: readonly number[]; dtype: string }][],
): void {
  const { path, buffers } = ckpt;
  if (buffers === null) {
    if (named.length === 0) return;
    throw new Error(
      `checkpoint: ${path} was written before checkpoints kept module buffers, and the model has ` +
        `${named.length} (${named.map(([n]) => n).join(", ")}): their values (running statistics) ` +
        "cannot be restored from it; train the model again, or load its parameters into a model without them",
    );
  }
  for (const [name, b] of named) {
    const stored = buffers.get(name);
    if (stored === undefined) {
      throw new Error(
        `checkpoint: ${path} has no buffer '${name}' (it holds ${safeText([...buffers.keys()].join(", ") || "none")}); ` +
          "is this the model it was saved from?",
      );
    }
    if (stored.shape.join() !== b.shape.join() || stored.dtype !== b.dtype) {
      throw new Error(
        `checkpoint: buffer '${name}' is ${stored.dtype} [${stored.shape.join(", ")}] in ${path}, ` +
          `the model has ${b.dtype} [${b.shape.join(", ")}]`,
      );
    }
  }
  if (named.length !== buffers.size) {
    const extra = [...buffers.keys()].filter((n) => !named.some(([m]) => m === n));
    throw new Error(`checkpoint: ${path} holds buffers the model does not have: ${safeText(extra.join(", "))}`);
  }
}

/**
 * The trainer keeps optimizer state in float32. State stored as float64 is rounded to float32 and
 * flushed to 0 below FLT_MIN, as the float32 update stores its own state; a finite value beyond
 * float32's range is refused, naming `where` (file, buffer, parameter). float32 state (every checkpoint the trainer writes)
 * is copied bit for bit.
 */
export function asFloat32State(a: Float32Array | Float64Array | Int32Array, where: string): Float32Array | Int32Array {
  if (!(a instanceof Float64Array)) return a;
  const out = Float32Array.from(a);
  for (let i = 0; i < out.length; i++) {
    if (Math.abs(out[i]!) < FLT_MIN) out[i] = 0;
    else if (!Number.isFinite(out[i]!) && Number.isFinite(a[i]!))
      throw new Error(`checkpoint: ${where} holds ${a[i]} at index ${i}, beyond float32's range`);
  }
  return out;
}

/**
 * Copies a checkpoint's parameters, optimizer state and progress into a freshly created trainer,
 * after `checkAgainstModel`: on a mismatch nothing is written.
 */
export function restoreTrainer(t: DataParallel, ckpt: TrainerCheckpoint): void {
  const named = [...t.model.namedParameters()];
  const buffers = stateBuffers(t.optimizer.name, t.optimizer.options as never);
  checkAgainstModel(
    ckpt,
    named,
    buffers.map((b) => b.name),
  );
  const namedBuffers = [...t.model.namedBuffers()];
  checkBuffersAgainstModel(ckpt, namedBuffers);
  named.forEach(([name], i) => {
    t.arena.paramView(i).set(loadTensor(ckpt.params.get(name)!, name));
    buffers.forEach((b, k) => {
      const s = ckpt.optimizerState.get(b.name)!.get(name)!;
      const state = asFloat32State(
        loadTensor(s, `${b.name} of ${name}`),
        `${ckpt.path}: optimizer state '${b.name}' of '${name}'`,
      );
      t.arena.paramIn(t.arena.state(k), i).set(state);
    });
  });
  // main's buffers are the shared ones (rank 0's); the other ranks copy them before the next command
  for (const [name, b] of namedBuffers) b.data.set(loadTensor(ckpt.buffers!.get(name)!, `buffer ${name}`));
  if (namedBuffers.length > 0) t.buffersChanged = true;
  Object.assign(t.progress, ckpt.progress);
}
