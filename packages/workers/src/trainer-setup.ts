import { existsSync } from "node:fs";
import type { MessagePort } from "node:worker_threads";
import { fileURLToPath } from "node:url";
import { nn } from "@threadgrad/core";
import type { Piscina } from "piscina";
import { show } from "./checkpoint-schema.js";
import type { CommandChannel } from "./command-channel.js";
import type { TrainerCheckpoint } from "./persist.js";
import type { LossSpec, ModelSpec } from "./spec.js";
import type { TrainerOptions } from "./trainer-types.js";
import type { RankEnd, WorkerInit } from "./worker-entry.js";

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

/**
 * Starts a rank's task, which settles once the rank is READY (its command loop then runs on its
 * own), and watches the loop's end: a RankEnd on `port`, or the thread's end. Resolves when the loop
 * is over, however it ended. None of this holds the process open (the thread and the port are
 * unref'd), so an idle trainer lets a script that forgot close() exit; calls hold it (see holdOpen).
 */
export function startRank(pool: Piscina, init: WorkerInit, port: MessagePort, channel: CommandChannel): Promise<void> {
  const rank = init.rank;
  return new Promise<void>((resolve) => {
    port.on("message", (end: RankEnd) => {
      if ("failed" in end) channel.onWorkerFailure(rank, end.failed);
      resolve();
    });
    port.unref();
    const started = pool.run(init, { transferList: [init.port] }) as Promise<{ threadId: number }>;
    started.then(
      ({ threadId }) => {
        const thread = pool.threads.find((w) => w.threadId === threadId);
        if (thread === undefined) return channel.onWorkerFailure(rank, new Error("the thread ended after starting"));
        thread.on("error", (err) => channel.onWorkerFailure(rank, err));
        thread.on("exit", (code) => {
          if (!channel.closed) channel.onWorkerFailure(rank, new Error(`the thread exited with code ${code}`));
          resolve();
        });
      },
      (err: unknown) => {
        channel.onWorkerFailure(rank, err);
        resolve();
      },
    );
  });
}
