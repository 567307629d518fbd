import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { nn } from "@threadgrad/core";
import { show } from "./checkpoint-schema.js";
import type { TrainerCheckpoint } from "./persist.js";
import type { LossSpec, ModelSpec } from "./spec.js";
import type { TrainerOptions } from "./trainer-types.js";

/** The most channels of any BatchNorm layer in the model (0: none): the width of the in-step reduction. */
export function batchNormChannels(model: nn.Module): number {
  let channels = 0;
  for (const [, m] of model.namedModules())
    if (m instanceof nn.BatchNorm1d || m instanceof nn.BatchNorm2d) channels = Math.max(channels, m.numFeatures);
  return channels;
}

/** Refuses a checkpoint whose model or loss came from a module unless the caller gives that module again. */
export function requireGivenCode(ckpt: TrainerCheckpoint, overrides: Partial<TrainerOptions>): void {
  const { model, loss } = ckpt.config;
  if ("module" in model && overrides.model === undefined) {
    throw new Error(
      `checkpoint: ${ckpt.path}: its model was built by module ${show(model.module)} ` +
        `(export ${show(model.export ?? "default")}); ` +
        "loading a checkpoint never imports code, so give the module again: " +
        "DataParallel.load(path, { model: { module, export, args } }); " +
        "its parameter names and shapes are checked against the file",
    );
  }
  if (typeof loss === "object" && "module" in loss && overrides.loss === undefined) {
    throw new Error(
      `checkpoint: ${ckpt.path}: its loss comes from module ${show(loss.module)} ` +
        `(export ${show(loss.export ?? "default")}); loading a checkpoint never imports code, ` +
        "so give it again: DataParallel.load(path, { loss: { module, export } })",
    );
  }
}

/**
 * Holds the process open until `work` settles. Nothing else a trainer has does: its threads and
 * ports are unref'd, and a pending Atomics.waitAsync keeps no process alive, so without this a
 * script awaiting fit at its top level would exit mid-run.
 */
export async function holdOpen<T>(work: Promise<T>): Promise<T> {
  const timer = setInterval(() => undefined, 2 ** 30);
  try {
    return await work;
  } finally {
    clearInterval(timer);
  }
}

// TypeScript's `await using` looks this symbol up; a runtime without it gets the registered one.
export const asyncDispose: typeof Symbol.asyncDispose = Symbol.asyncDispose ?? Symbol.for("Symbol.asyncDispose");

/** A spec as a worker can receive it: a URL does not survive structured cloning, its href does. */
export function postable<S extends ModelSpec | LossSpec>(spec: S): S {
  return typeof spec === "object" && "module" in spec && spec.module instanceof URL
    ? { ...spec, module: spec.module.href }
    : spec;
}

export function workerEntry(): string {
  // From dist/ the entry sits beside this file; under vitest this file runs from src/, so point at dist/.
  const here = new URL(import.meta.url);
  const fromDist = new URL("./worker-entry.js", here);
  if (here.pathname.endsWith(".js")) return fileURLToPath(fromDist);
  const built = new URL("../dist/worker-entry.js", here);
  if (!existsSync(built))
    throw new Error(
      "DataParallel: the workers package is not built (run the build first): missing dist/worker-entry.js",
    );
  return fileURLToPath(built);
}
