import { stateBuffers } from "@threadgrad/optim";
import { type StoredTensor, loadTensor, readCheckpoint, storeTensor, writeCheckpoint } from "./checkpoint.js";
import type { DataParallel, Progress, TrainerOptions } from "./trainer.js";

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
  const { model, loss, seed, schedule, clipGradNorm, accumulateSteps, skipNonFinite, maxBatchSize } = t.options;
  const modelSpec =
    "module" in model
      ? { ...model, module: model.module instanceof URL ? model.module.href : String(model.module) }
      : model;
  writeCheckpoint(path, {
    kind: "threadgrad-trainer",
    config: {
      // The worker count is kept so a plain load resumes bit for bit (the sums run in rank order).
      workers: t.numWorkers,
      model: modelSpec,
      loss,
      seed,
      schedule: schedule ?? null,
      clipGradNorm: clipGradNorm ?? null,
      accumulateSteps,
      skipNonFinite,
      maxBatchSize,
      optimizer: { name: t.optimizer.name, ...t.optimizer.options },
    },
    progress: { ...t.progress },
    params,
    optimizerState: state,
    extra,
  });
}

export function readTrainerCheckpoint(path: string): { payload: Record<string, unknown>; config: TrainerOptions } {
  const payload = readCheckpoint(path);
  if (payload.kind !== "threadgrad-trainer")
    throw new Error(`checkpoint: ${path} does not hold a trainer (kind '${String(payload.kind)}')`);
  const raw = payload.config as TrainerOptions & { clipGradNorm: number | null; schedule: TrainerOptions["schedule"] };
  return { payload, config: { ...raw, clipGradNorm: raw.clipGradNorm ?? undefined } };
}

export function restoreTrainer(t: DataParallel, payload: Record<string, unknown>, path: string): void {
  const params = payload.params as Record<string, StoredTensor>;
  const state = payload.optimizerState as Record<string, Record<string, StoredTensor>>;
  const buffers = stateBuffers(t.optimizer.name, t.optimizer.options as never);
  [...t.model.namedParameters()].forEach(([name, p], i) => {
    const stored = params[name];
    if (stored === undefined) throw new Error(`checkpoint: ${path} has no parameter '${name}'`);
    if (stored.shape.join() !== p.shape.join()) {
      throw new Error(
        `checkpoint: parameter '${name}' has shape [${stored.shape.join(", ")}] in ${path}, the model has [${p.shape.join(", ")}]`,
      );
    }
    t.arena.paramView(i).set(loadTensor(stored, name));
    buffers.forEach((b, k) => {
      const s = state[b.name]?.[name];
      if (s === undefined) throw new Error(`checkpoint: ${path} has no optimizer state '${b.name}' for '${name}'`);
      t.arena.paramIn(t.arena.state(k), i).set(loadTensor(s, `${b.name} of ${name}`));
    });
  });
  Object.assign(t.progress, payload.progress as Progress);
}
