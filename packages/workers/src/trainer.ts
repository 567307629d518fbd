import { MessageChannel, type MessagePort } from "node:worker_threads";
import { fileURLToPath } from "node:url";
import { existsSync } from "node:fs";
import { Piscina } from "piscina";
import { type Tensor, isTensor, manualSeed, nn } from "@threadgrad/core";
import {
  type OptimizerName,
  type ScheduleConfig,
  combineNorms,
  resolveFlatOptions,
  stateBuffers,
} from "@threadgrad/optim";
import { SharedArena, bufferViews, planArena, planBuffers } from "./arena.js";
import { SharedSmallAllReduce } from "./collective.js";
import { show } from "./checkpoint-schema.js";
import { type TrainerCheckpoint, readTrainerCheckpoint, restoreTrainer, saveTrainer } from "./persist.js";
import { ERROR, ErrorCode, WaitTimeout, signalError, waitUntil } from "./control.js";
import { type DatasetChecks, type DatasetLike, type SharedDataset, toSharedDataset } from "./dataset.js";
import * as P from "./protocol.js";
import { type PredictOptions, predictOutputs } from "./load-model.js";
import { epochOrder } from "./step-math.js";
import { type LossSpec, type ModelSpec, buildModel, isClassification } from "./spec.js";
import { availableWorkers, resolveWorkers } from "./threads.js";
import { placeInWasm } from "./wasm-arena.js";
import type { RankEnd, WorkerInit } from "./worker-entry.js";

export interface OptimizerConfig {
  name: OptimizerName;
  lr?: number;
  [option: string]: unknown;
}

export interface TrainerOptions {
  model: ModelSpec;
  /** default 'crossEntropy' */
  loss?: LossSpec;
  /** default Adam with lr 1e-3 */
  optimizer?: OptimizerConfig;
  /** worker threads; default 'auto' (available cores, respecting a cgroup quota) */
  workers?: number | "auto";
  seed?: number;
  /** learning-rate schedule over optimizer steps */
  schedule?: ScheduleConfig | null;
  clipGradNorm?: number;
  /** micro-batches per optimizer step; their gradients add up before one update */
  accumulateSteps?: number;
  /** skip an update whose loss or gradient is not finite instead of failing */
  skipNonFinite?: boolean;
  /** largest batch that will be used (size of the shared index buffer); default 8192 */
  maxBatchSize?: number;
  /** how long a rank may wait at a barrier before failing; default 60 s */
  barrierTimeoutMs?: number;
  /**
   * how long one command (a training step, an evaluation batch) may take before the trainer gives
   * up, signals the workers and shuts down: a rank stuck in its own code cannot hang the caller.
   * Steps handed out together get one such budget each. Default 10 minutes.
   */
  stepTimeoutMs?: number;
  /** how long the workers may take to start (build the model, attach to shared memory); default 120 s */
  startTimeoutMs?: number;
  /**
   * Keep the tensors a step creates in a per-rank region of the wasm memory that is reset after the
   * step, instead of the JavaScript heap: no per-step garbage, activations already where the SIMD
   * kernels read them. Safe for any model that keeps no tensor made during forward beyond the step
   * (state updated in place is fine). Default: on for built-in models, off for module models.
   */
  stepRegion?: boolean;
  /**
   * Training steps main hands to the workers at once (1 to 16; default 8). The ranks run them
   * back to back, keeping the optimizer's count and learning rate themselves, and main sleeps until
   * the last is done: it neither makes the ranks wait for its round trip after every step nor
   * preempts one mid-step on a machine without a spare core. The numbers are the same for every
   * value. An abort (FitOptions.signal) lets the steps already handed out finish; `untilStep`
   * stops exactly.
   */
  stepsInFlight?: number;
}

export interface StepInfo {
  step: number;
  epoch: number;
  stepInEpoch: number;
  stepsPerEpoch: number;
  loss: number;
  accuracy: number | null;
  lr: number;
  gradNorm: number | null;
  samples: number;
  updated: boolean;
  skipped: boolean;
  /** per-step milliseconds, the slowest rank's: forward+backward, waiting for peers, reduction, update */
  timings: { computeMs: number; waitMs: number; reduceMs: number; updateMs: number };
  /**
   * When the last rank finished the step, in ms since the epoch (performance.timeOrigin + now()
   * in the ranks): main receives the steps handed out together at once, so the gap between two
   * steps' `finishedAt` is a step's wall time, not the gap between their onStep calls.
   */
  finishedAt: number;
}

export interface FitOptions {
  /** train until this many epochs are done in total (a resumed trainer continues) */
  epochs: number;
  batchSize: number;
  onStep?: (info: StepInfo) => void | Promise<void>;
  /** after each epoch completed in this call, with its log (also kept in the resolved `history`) */
  onEpochEnd?: (log: EpochLog) => void | Promise<void>;
  /**
   * Stop at the first accumulation-window boundary once this signal is aborted. Steps already
   * handed to the workers (TrainerOptions.stepsInFlight) finish first, and so does the window.
   */
  signal?: AbortSignal;
  /** Stop before this global step (at the first window boundary from it): `untilStep: 100` runs steps up to 100. */
  untilStep?: number;
}

/** One completed epoch, as `fit` reports it to onEpochEnd and in its `history`. */
export interface EpochLog {
  /** epochs complete, counting this one (1 for the first) */
  epoch: number;
  /** the last global step of the epoch */
  step: number;
  /** mean training loss over the epoch's steps this call ran (a resumed epoch: its remaining steps) */
  loss: number;
  /** classification: share of those samples predicted right, at the time of their step */
  accuracy: number | null;
  /** learning rate of the epoch's last step */
  lr: number;
  steps: number;
  samples: number;
  durationMs: number;
}

/** What `fit` resolves with: where training stands, and the log of each epoch it completed. */
export interface FitResult extends Progress {
  history: EpochLog[];
}

export interface EvalResult {
  loss: number;
  accuracy: number | null;
  samples: number;
  /** predicted class per sample (classification) */
  predictions: Int32Array | null;
}

/** Where training stands; saved in checkpoints so a resumed run continues exactly. */
export interface Progress {
  /** the batch size of the epoch in progress (mid-epoch resume needs the same one) */
  batchSize: number;
  epoch: number;
  stepInEpoch: number;
  globalStep: number;
  optimizerStep: number;
  /**
   * Factor on the scheduled learning rate (setLrScale), e.g. from a plateau schedule run by the
   * caller; absent means 1. Saved with the progress, so a resumed run continues with it.
   */
  lrScale?: number;
}

/** The object a data set is cached under: its features' storage, so fresh `{ x, y }` wrappers match. */
function datasetKey(ds: DatasetLike): unknown {
  return ds !== null && typeof ds === "object" && "x" in ds ? (isTensor(ds.x) ? ds.x.data : ds.x) : ds;
}

/** What the model spec and loss tell about the data sets it takes, checked in main before the workers see one. */
function datasetChecks(model: ModelSpec, loss: LossSpec): DatasetChecks {
  const classification = isClassification(loss);
  const mlp = "kind" in model && model.kind === "mlp" ? model.sizes : null;
  const weights = typeof loss === "object" && "name" in loss ? loss.weight?.length : undefined;
  // A module loss may take targets of any shape: only a built-in loss fixes the outputs.
  const builtIn = classification || loss === "mse";
  return {
    classification,
    inputs: mlp?.[0],
    outputs: builtIn ? (mlp?.at(-1) ?? weights) : undefined,
    // the mlp takes rows: images [N, 1, 28, 28] reach it as [N, 784]
    flatRows: mlp !== null,
  };
}

/**
 * Spare storage kept for reuse, in bytes: at least this much, or 4 times the largest copy made.
 * Dropping a spare buffer frees little: the ranks hold it until their collectors run (see copies).
 */
const MIN_SPARE_BYTES = 256 * 2 ** 20;

/** fit's error for a non-finite loss or gradient without skipNonFinite. */
class NonFiniteError extends Error {
  override name = "NonFiniteError";
}

interface PendingStep {
  indices: Int32Array;
  update: boolean;
  /** global steps completed before this one */
  globalStep: number;
}

/** The most channels of any BatchNorm layer in the model (0: none): the width of the in-step reduction. */
function batchNormChannels(model: nn.Module): number {
  let channels = 0;
  for (const [, m] of model.namedModules())
    if (m instanceof nn.BatchNorm1d || m instanceof nn.BatchNorm2d) channels = Math.max(channels, m.numFeatures);
  return channels;
}

/** Refuses a checkpoint whose model or loss came from a module unless the caller gives that module again. */
function requireGivenCode(ckpt: TrainerCheckpoint, overrides: Partial<TrainerOptions>): void {
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
async function holdOpen<T>(work: Promise<T>): Promise<T> {
  const timer = setInterval(() => undefined, 2 ** 30);
  try {
    return await work;
  } finally {
    clearInterval(timer);
  }
}

// TypeScript's `await using` looks this symbol up; a runtime without it gets the registered one.
const asyncDispose: typeof Symbol.asyncDispose = Symbol.asyncDispose ?? Symbol.for("Symbol.asyncDispose");

/** A spec as a worker can receive it: a URL does not survive structured cloning, its href does. */
function postable<S extends ModelSpec | LossSpec>(spec: S): S {
  return typeof spec === "object" && "module" in spec && spec.module instanceof URL
    ? { ...spec, module: spec.module.href }
    : spec;
}

function workerEntry(): string {
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
 * Data-parallel training across worker threads. Parameters, gradients (one slice per rank) and
 * optimizer state live in one shared arena; each rank computes the gradient of its shard, the
 * ranks reduce-scatter the gradients and each updates its own segment of the parameters.
 * ```ts
 * const trainer = await DataParallel.create({ model: { kind: "mlp", sizes: [784, 256, 10] }, workers: 2 });
 * await trainer.fit(trainSet, { epochs: 3, batchSize: 128 });
 * console.log(await trainer.evaluate(testSet));
 * await trainer.close();
 * ```
 */
export class DataParallel {
  readonly progress: Progress = { batchSize: 0, epoch: 0, stepInEpoch: 0, globalStep: 0, optimizerStep: 0 };
  private seq = 0;
  // Sequence numbers of the commands published and not yet completed, oldest first.
  private readonly inFlight: number[] = [];
  private readonly rankErrors = new Map<number, Error>();
  private closed = false;
  private busy = false;
  private closing = false;
  private running: Promise<unknown> | null = null;
  // Keyed by the features' storage, so fresh `{ x, y }` wrappers around the same arrays reuse it.
  private readonly datasets = new WeakMap<object, { shared: SharedDataset; y: unknown }>();
  // Ids of data sets the workers hold but main can no longer reach (their arrays were collected, or
  // replaced): sent with the next RECEIVE, so the workers let go of them too.
  private readonly unreachable: number[] = [];
  private readonly released = new FinalizationRegistry<number>((id) => void this.unreachable.push(id));
  // The shared copies main made of data sets, by data set id; once every rank has let go of a data
  // set its copies become spare storage for the next ones. A rank frees a SharedArrayBuffer only
  // when its own garbage collector runs, which a rank that allocates little seldom does: fresh data
  // sets evaluated one after another would pile up there (the workers holding none) until close.
  private readonly copies = new Map<number, SharedArrayBuffer[]>();
  private readonly spare: SharedArrayBuffer[] = [];
  private largestCopy = 0;
  private readonly checks: DatasetChecks;
  /**
   * Set when the module buffers in shared memory were replaced while the workers run (a restored
   * checkpoint): the next command tells the ranks that keep private copies to read them again.
   * @internal
   */
  buffersChanged = false;

  private constructor(
    readonly options: Required<
      Pick<
        TrainerOptions,
        "model" | "loss" | "seed" | "accumulateSteps" | "skipNonFinite" | "maxBatchSize" | "stepsInFlight"
      >
    > &
      TrainerOptions,
    readonly model: nn.Module,
    readonly arena: SharedArena,
    readonly numWorkers: number,
    readonly optimizer: { name: OptimizerName; options: Record<string, unknown> },
    private readonly pool: Piscina,
    private readonly ports: MessagePort[],
    private readonly blocks: Float64Array,
    private readonly batches: Int32Array,
    private readonly predictions: Int32Array,
    private tasks: Promise<unknown>[],
  ) {
    this.checks = datasetChecks(options.model, options.loss);
  }

  /** Builds the model, lays out the shared arena and starts one worker per rank. */
  static async create(opts: TrainerOptions): Promise<DataParallel> {
    const numWorkers = resolveWorkers(opts.workers);
    const seed = opts.seed ?? 0;
    const accumulateSteps = opts.accumulateSteps ?? 1;
    const slots = opts.stepsInFlight ?? 8;
    if (!Number.isInteger(slots) || slots < 1 || slots > P.MAX_SLOTS)
      throw new Error(`DataParallel: stepsInFlight must be an integer from 1 to ${P.MAX_SLOTS}, got ${slots}`);
    if (!Number.isInteger(accumulateSteps) || accumulateSteps < 1)
      throw new Error(`DataParallel: accumulateSteps must be a positive integer, got ${accumulateSteps}`);
    for (const name of ["stepTimeoutMs", "startTimeoutMs", "barrierTimeoutMs"] as const) {
      const ms = opts[name];
      if (ms !== undefined && !(ms > 0)) throw new Error(`DataParallel: ${name} must be > 0 ms, got ${ms}`);
    }
    if (opts.clipGradNorm !== undefined && !(opts.clipGradNorm > 0))
      throw new Error(`DataParallel: clipGradNorm must be > 0, got ${opts.clipGradNorm}`);
    const { name = "adam", ...rest } = opts.optimizer ?? { name: "adam" };
    const optOptions = resolveFlatOptions(name, { lr: 1e-3, ...rest } as never) as unknown as Record<string, unknown>;
    manualSeed(seed);
    const model = await buildModel(opts.model);
    const params = model.parameters();
    if (params.length === 0) throw new Error("DataParallel: the model has no parameters");
    if (params.some((p) => p.dtype !== "float32")) throw new Error("DataParallel: parameters must be float32");
    const buffers = stateBuffers(name, optOptions as never);
    const layout = planArena({
      paramSizes: params.map((p) => p.numel),
      ranks: numWorkers,
      stateBuffers: buffers.length,
      scalarSlotsPerRank: P.SCALAR_SLOTS * slots,
      userControlWords: P.TRAINER_CONTROL_WORDS,
    });
    const wasm = placeInWasm(layout, numWorkers);
    const arena = wasm
      ? SharedArena.attach(wasm.kernels.buffer, layout, wasm.placement.arenaOffset)
      : SharedArena.create(layout);
    params.forEach((p, i) => {
      const view = arena.paramView(i);
      view.set(p.data as Float32Array);
      p.setStorage(view);
    });
    buffers.forEach((b, k) => {
      arena.state(k).fill(b.init);
    });
    // Module buffers (BatchNorm's running statistics) live in shared memory too: main's model and
    // rank 0 use it directly, the other ranks keep private copies that stay equal (see worker-entry).
    const namedBuffers = [...model.namedBuffers()];
    const bufferPlan = planBuffers(namedBuffers);
    const bufferBlock = new SharedArrayBuffer(Math.max(8, bufferPlan.byteLength));
    bufferViews(bufferBlock, bufferPlan.slots).forEach((view, i) => {
      const b = namedBuffers[i]![1];
      view.set(b.data as never);
      b.setStorage(view);
    });
    // BatchNorm over several ranks normalises with the global batch's statistics, exchanged inside the step.
    const channels = batchNormChannels(model);
    const syncBatchNorm =
      numWorkers > 1 && channels > 0
        ? { block: new SharedArrayBuffer(SharedSmallAllReduce.bytes(numWorkers, channels)), capacity: channels }
        : null;
    const maxBatchSize = opts.maxBatchSize ?? 8192;
    const blocks = new Float64Array(new SharedArrayBuffer(slots * P.STEP_BLOCK_SIZE * 8));
    const batches = new Int32Array(new SharedArrayBuffer(slots * maxBatchSize * 4));
    const predictions = new Int32Array(new SharedArrayBuffer(maxBatchSize * 4));
    const pool = new Piscina({
      filename: workerEntry(),
      minThreads: numWorkers,
      maxThreads: numWorkers,
      idleTimeout: Infinity,
      concurrentTasksPerWorker: 1,
      atomics: "disabled",
    });
    const loss = opts.loss ?? "crossEntropy";
    const ports: MessagePort[] = [];
    const tasks: Promise<unknown>[] = [];
    const trainerOpts = {
      ...opts,
      loss,
      seed,
      accumulateSteps,
      skipNonFinite: opts.skipNonFinite ?? false,
      maxBatchSize,
      stepsInFlight: slots,
    };
    const trainer = new DataParallel(
      trainerOpts,
      model,
      arena,
      numWorkers,
      { name, options: optOptions },
      pool,
      ports,
      blocks,
      batches,
      predictions,
      tasks,
    );
    for (let rank = 0; rank < numWorkers; rank++) {
      const { port1, port2 } = new MessageChannel();
      ports.push(port1);
      const init: WorkerInit = {
        rank,
        arena: arena.handle(),
        stepBlock: blocks.buffer as SharedArrayBuffer,
        batch: batches.buffer as SharedArrayBuffer,
        maxBatchSize,
        slots,
        predictions: predictions.buffer as SharedArrayBuffer,
        port: port2,
        model: postable(opts.model),
        loss: postable(loss),
        classification: isClassification(loss),
        optimizer: { name, options: optOptions },
        schedule: opts.schedule ?? null,
        skipNonFinite: trainerOpts.skipNonFinite,
        seed,
        barrierTimeoutMs: opts.barrierTimeoutMs ?? 60_000,
        // Spinning at a barrier only pays while every rank has a core of its own.
        spin: numWorkers <= availableWorkers(),
        stepRegion: opts.stepRegion ?? "kind" in opts.model,
        wasm: wasm ? { memory: wasm.placement.memory, scratch: wasm.placement.scratch[rank]! } : null,
        buffers: { block: bufferBlock, slots: bufferPlan.slots },
        syncBatchNorm,
      };
      tasks.push(trainer.runRank(pool, init, port1));
    }
    // A thread that fails with no task pending is reported by runRank's listeners, with its rank.
    pool.on("error", () => undefined);
    // shuts down on failure
    await holdOpen(
      trainer.waitFor(P.READY, numWorkers, opts.startTimeoutMs ?? 120_000, "starting workers", "startTimeoutMs"),
    );
    return trainer;
  }

  /**
   * Starts a rank's task, which settles once the rank is READY (its command loop then runs on its
   * own), and watches the loop's end: a RankEnd on `port`, or the thread's end. Resolves when the loop
   * is over, however it ended. None of this holds the process open (the thread and the port are
   * unref'd), so an idle trainer lets a script that forgot close() exit; calls hold it (see holdOpen).
   */
  private runRank(pool: Piscina, init: WorkerInit, port: MessagePort): Promise<void> {
    const rank = init.rank;
    return new Promise<void>((resolve) => {
      port.on("message", (end: RankEnd) => {
        if ("failed" in end) this.onWorkerFailure(rank, end.failed);
        resolve();
      });
      port.unref();
      const started = pool.run(init, { transferList: [init.port] }) as Promise<{ threadId: number }>;
      started.then(
        ({ threadId }) => {
          const thread = pool.threads.find((w) => w.threadId === threadId);
          if (thread === undefined) return this.onWorkerFailure(rank, new Error("the thread ended after starting"));
          thread.on("error", (err) => this.onWorkerFailure(rank, err));
          thread.on("exit", (code) => {
            if (!this.closed) this.onWorkerFailure(rank, new Error(`the thread exited with code ${code}`));
            resolve();
          });
        },
        (err: unknown) => {
          this.onWorkerFailure(rank, err);
          resolve();
        },
      );
    });
  }

  private onWorkerFailure(rank: number, err: unknown): void {
    const e = err instanceof Error ? err : new Error(String(err));
    const message = e.message.startsWith("rank ") ? e.message : `rank ${rank}: ${e.message}`;
    // The first report wins: a thread that throws then also exits.
    if (!this.rankErrors.has(rank))
      this.rankErrors.set(rank, Object.assign(new Error(`worker ${message}`), { rank, cause: e }));
    // A rank that throws records itself in FAILED_RANK before raising the error word; the others
    // then fail too (released from their waits), so that rank's error is the cause. A rank that
    // dies without throwing (process.exit) records nothing: then the first error to arrive is used.
    if (Atomics.load(this.arena.control, P.FAILED_RANK) === 0)
      Atomics.compareExchange(this.arena.control, P.FAILED_RANK, 0, rank + 1);
    signalError(this.arena.control, ErrorCode.WORKER_FAILED);
  }

  /** The error of the rank that failed first, once its task has reported. */
  private get failure(): Error | null {
    const first = Atomics.load(this.arena.control, P.FAILED_RANK) - 1;
    return this.rankErrors.get(first) ?? this.rankErrors.values().next().value ?? null;
  }

  private async waitFor(
    index: number,
    target: number,
    timeoutMs: number | undefined,
    what: string,
    option = "stepTimeoutMs",
  ): Promise<void> {
    try {
      await waitUntil(this.arena.control, index, (v) => v >= target, { timeoutMs, pollMs: 50 });
    } catch (err) {
      if (err instanceof WaitTimeout && Atomics.load(this.arena.control, ERROR) === ErrorCode.NONE) {
        // Nothing failed: a rank is stuck. Shutting down releases the others with errors of their
        // own (an aborted barrier), which must not be reported as the cause.
        await this.shutdown();
        throw new Error(
          `DataParallel: ${what} did not finish within ${timeoutMs} ms (${option}); ` +
            "a rank is stuck in its own code. The workers were stopped.",
        );
      }
      // Let the failing rank's task rejection arrive so the error names that worker's own cause.
      const failedRank = () => Atomics.load(this.arena.control, P.FAILED_RANK) - 1;
      for (let i = 0; i < 40 && !this.rankErrors.has(failedRank()); i++) await new Promise((r) => setTimeout(r, 25));
      await this.shutdown();
      throw this.failure ?? new Error(`DataParallel: ${what} failed: ${(err as Error).message}`);
    }
  }

  private get slots(): number {
    return this.options.stepsInFlight;
  }

  /**
   * Publishes a command in the next slot (`fill` writes the slot's step block and batch indices)
   * and returns its sequence number; the slot must be free (at most `slots` in flight).
   */
  private publish(cmd: number, fill: (block: Float64Array, batch: Int32Array) => void = () => undefined): number {
    this.assertOpen();
    if (this.inFlight.length >= this.slots)
      throw new Error("DataParallel: internal error, every command slot is in use");
    const control = this.arena.control;
    const seq = ++this.seq,
      slot = seq % this.slots;
    const block = this.blocks.subarray(slot * P.STEP_BLOCK_SIZE, (slot + 1) * P.STEP_BLOCK_SIZE);
    block.fill(0);
    block[P.S_CMD] = cmd;
    if (this.buffersChanged && cmd !== P.Cmd.STOP) {
      block[P.S_LOAD_BUFFERS] = 1;
      this.buffersChanged = false;
    }
    fill(block, this.batches.subarray(slot * this.options.maxBatchSize, (slot + 1) * this.options.maxBatchSize));
    Atomics.store(control, P.DONE + slot, 0);
    Atomics.store(control, P.SEQ, seq);
    Atomics.notify(control, P.SEQ); // wakes every rank parked in waitForCommand
    this.inFlight.push(seq);
    return seq;
  }

  /** Refuses work once closed, naming the failure that closed the trainer, if one did. */
  private assertOpen(): void {
    if (!this.closed) return;
    const cause = this.failure;
    throw new Error(
      `DataParallel: the trainer is closed${cause === null ? "" : ` (it stopped after an error: ${cause.message})`}`,
      { cause },
    );
  }

  /** Waits (without blocking the event loop) until every rank has run the oldest command in flight. */
  private async completeOldest(what: string): Promise<number> {
    const seq = this.inFlight[0]!;
    await this.waitFor(P.DONE + (seq % this.slots), this.numWorkers, this.options.stepTimeoutMs ?? 600_000, what);
    this.inFlight.shift();
    return seq % this.slots;
  }

  /** Waits until every rank has run the newest command in flight (and so every older one). */
  private async waitForNewest(what: string): Promise<void> {
    const seq = this.inFlight.at(-1)!;
    // Every command in flight gets its own stepTimeoutMs.
    await this.waitFor(
      P.DONE + (seq % this.slots),
      this.numWorkers,
      (this.options.stepTimeoutMs ?? 600_000) * this.inFlight.length,
      what,
    );
  }

  /** Publishes one command and waits until every rank has run it; returns its slot. */
  private async command(
    cmd: number,
    what: string,
    fill?: (block: Float64Array, batch: Int32Array) => void,
  ): Promise<number> {
    this.publish(cmd, fill);
    return this.completeOldest(what);
  }

  /** Whether any rank met a non-finite loss or gradient in the step in `slot`. */
  private anyNonFinite(slot: number): boolean {
    for (let r = 0; r < this.numWorkers; r++) if (this.scalars(r, slot)[P.R_NONFINITE] === 1) return true;
    return false;
  }

  /** Rank r's scalars for the command in `slot`. */
  private scalars(rank: number, slot: number): Float64Array {
    return this.arena.rankScalars(rank).subarray(slot * P.SCALAR_SLOTS, (slot + 1) * P.SCALAR_SLOTS);
  }

  private async register(ds: DatasetLike): Promise<SharedDataset> {
    this.assertOpen();
    const key = datasetKey(ds);
    const y = ds !== null && typeof ds === "object" && "y" in ds ? (isTensor(ds.y) ? ds.y.data : ds.y) : null;
    const known = this.datasets.get(key as object);
    if (known !== undefined && known.y === y) return known.shared;
    if (known !== undefined) {
      // Same features, other targets: the old copy goes.
      this.datasets.delete(key as object);
      this.released.unregister(key as object);
      this.unreachable.push(known.shared.id);
    }
    // Let the workers drop what main no longer reaches first, so its storage serves this copy.
    if (this.unreachable.length > 0) await this.receive("forgetting data sets");
    const buffers: SharedArrayBuffer[] = [];
    const shared = toSharedDataset(ds, this.checks, (bytes) => {
      this.largestCopy = Math.max(this.largestCopy, bytes);
      const buffer = this.takeSpare(bytes) ?? new SharedArrayBuffer(bytes);
      buffers.push(buffer);
      return buffer;
    });
    if (buffers.length > 0) this.copies.set(shared.id, buffers);
    for (const port of this.ports) port.postMessage(shared);
    await this.command(P.Cmd.RECEIVE, "sending the data set");
    this.datasets.set(key as object, { shared, y });
    this.released.register(key as object, shared.id, key as object);
    return shared;
  }

  /**
   * Sends the ids of the data sets main no longer reaches and has every rank read its messages;
   * the copies of those data sets become spare storage. Returns the RECEIVE's slot.
   */
  private async receive(what: string): Promise<number> {
    const forget = this.unreachable.splice(0);
    if (forget.length > 0) for (const port of this.ports) port.postMessage({ forget });
    const slot = await this.command(P.Cmd.RECEIVE, what);
    for (const id of forget) {
      this.spare.push(...(this.copies.get(id) ?? []));
      this.copies.delete(id);
    }
    // Beyond the cap the oldest go to the garbage collectors (main's, and in time the ranks').
    const cap = Math.max(MIN_SPARE_BYTES, 4 * this.largestCopy);
    let bytes = this.spare.reduce((sum, b) => sum + b.byteLength, 0);
    while (bytes > cap) bytes -= this.spare.shift()!.byteLength;
    return slot;
  }

  /** The smallest spare buffer of at least `bytes` bytes, taken out of the spares, or null. */
  private takeSpare(bytes: number): SharedArrayBuffer | null {
    let best = -1;
    this.spare.forEach((b, i) => {
      if (b.byteLength >= bytes && (best < 0 || b.byteLength < this.spare[best]!.byteLength)) best = i;
    });
    return best < 0 ? null : this.spare.splice(best, 1)[0]!;
  }

  /**
   * Lets the workers drop a data set `fit` or `evaluate` used (they keep each one, keyed by its
   * arrays, until it is forgotten, or until its arrays are garbage-collected in this thread and
   * another data set is sent). The shared copy the trainer made of it (of arrays not already in a
   * SharedArrayBuffer) is kept as storage for the next data sets' copies, a few at most, until
   * close. Resolves with how many data sets each worker still holds (the most of any rank).
   * @example await trainer.evaluate(batchOfTheDay); await trainer.forget(batchOfTheDay);
   */
  async forget(data: DatasetLike): Promise<number> {
    if (this.busy) throw new Error("DataParallel.forget: wait for fit or evaluate to finish");
    const key = datasetKey(data);
    const known = this.datasets.get(key as object);
    if (known !== undefined) {
      this.datasets.delete(key as object);
      this.released.unregister(key as object);
      this.unreachable.push(known.shared.id);
    }
    this.busy = true;
    try {
      const slot = await holdOpen(this.receive("forgetting a data set"));
      let held = 0;
      for (let r = 0; r < this.numWorkers; r++) held = Math.max(held, this.scalars(r, slot)[P.R_DATASETS_HELD]!);
      return held;
    } finally {
      this.busy = false;
    }
  }

  /**
   * The global denominator that turns the ranks' summed losses into the mean loss over `indices`:
   * the sample count, times the target size for MSE, or the summed class weights of the targets.
   */
  private denominator(
    ds: SharedDataset,
    indices: ArrayLike<number>,
    sample: (i: number) => number = (i) => indices[i]!,
  ): number {
    const loss = this.options.loss;
    if (loss === "mse") return indices.length * ds.targetDim;
    if (typeof loss === "object" && "name" in loss && loss.weight) {
      let total = 0;
      for (let i = 0; i < indices.length; i++) total += loss.weight[ds.y[sample(i)]!] ?? 0;
      return total;
    }
    return indices.length;
  }

  /**
   * Multiplies the learning rate of every update from the next step on by `factor` (on top of the
   * schedule): how a caller applies a schedule that depends on results the workers do not see,
   * such as ReduceLROnPlateau on a validation loss. Kept in `progress.lrScale`, so checkpoints
   * carry it. Not while fit runs.
   * @example trainer.setLrScale(0.1) // lr from the next step: schedule(step) * 0.1
   */
  setLrScale(factor: number): void {
    if (this.busy) throw new Error("DataParallel.setLrScale: wait for fit or evaluate to finish");
    if (!(Number.isFinite(factor) && factor > 0))
      throw new Error(`DataParallel.setLrScale: factor must be a finite number > 0, got ${factor}`);
    if (factor === 1) delete this.progress.lrScale;
    else this.progress.lrScale = factor;
  }

  /**
   * Trains until `epochs` epochs are complete; resumes from `progress`. Resolves with the
   * progress and the log of each epoch completed in this call (`history`, as onEpochEnd saw it).
   */
  async fit(data: DatasetLike, opts: FitOptions): Promise<FitResult> {
    return this.track(this.runFit(data, opts));
  }

  private async track<T>(work: Promise<T>): Promise<T> {
    this.running = work;
    try {
      return await holdOpen(work);
    } finally {
      if (this.running === work) this.running = null;
    }
  }

  private async runFit(data: DatasetLike, opts: FitOptions): Promise<FitResult> {
    if (this.busy) throw new Error("DataParallel: fit or evaluate is already running");
    const { epochs, batchSize, signal } = opts;
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > this.options.maxBatchSize) {
      throw new Error(
        `DataParallel.fit: batchSize must be an integer from 1 to ${this.options.maxBatchSize} (maxBatchSize), got ${batchSize}`,
      );
    }
    if (!Number.isInteger(epochs) || epochs < 0)
      throw new Error(`DataParallel.fit: epochs must be a non-negative integer, got ${epochs}`);
    this.busy = true;
    try {
      const ds = await this.register(data);
      const stepsPerEpoch = Math.ceil(ds.length / batchSize);
      const k = this.options.accumulateSteps;
      const pr = this.progress;
      if (pr.stepInEpoch > 0 && pr.batchSize !== batchSize) {
        throw new Error(
          `DataParallel.fit: this run stopped mid-epoch with batchSize ${pr.batchSize}; ` +
            `resume it with the same batchSize, not ${batchSize}`,
        );
      }
      pr.batchSize = batchSize;
      const until = opts.untilStep ?? Infinity;
      const history: EpochLog[] = [];
      const result = (): FitResult => ({ ...pr, history });
      while (pr.epoch < epochs) {
        const order = epochOrder(ds.length, this.options.seed, pr.epoch);
        const tally = { loss: 0, correct: 0, samples: 0, steps: 0, lr: Number.NaN, startedAt: performance.now() };
        const pending: PendingStep[] = [];
        let next = pr.stepInEpoch;
        let stopping = false;
        try {
          for (;;) {
            // Hand out a batch of steps, up to one per slot, then sleep until the ranks have run
            // them all: main wakes once per batch, not per step, so on a machine with no core to
            // spare it does not preempt a rank mid-step. Stop only between accumulation windows:
            // a checkpoint never holds half a window.
            const refill = pending.length === 0;
            while (refill && !stopping && pending.length < this.slots && next < stepsPerEpoch) {
              const stop = signal?.aborted || this.closing || pr.globalStep + pending.length + 1 > until;
              if (stop && next % k === 0) stopping = true;
              else pending.push(this.publishStep(ds, order, next++, batchSize, stepsPerEpoch, pending.length === 0));
            }
            const step = pending.shift();
            if (step === undefined) break;
            if (pending.length > 0) await this.waitForNewest(`step ${pending.at(-1)!.globalStep + 1}`);
            const info = await this.finishStep(ds, step);
            pr.globalStep++;
            pr.stepInEpoch++;
            if (info.updated) pr.optimizerStep++;
            tally.loss += info.loss * info.samples;
            tally.correct += (info.accuracy ?? 0) * info.samples;
            tally.samples += info.samples;
            tally.steps++;
            tally.lr = info.lr;
            await opts.onStep?.({
              ...info,
              step: pr.globalStep,
              epoch: pr.epoch,
              stepInEpoch: pr.stepInEpoch,
              stepsPerEpoch,
            });
          }
        } catch (err) {
          // Let the steps already handed out finish, so the trainer is idle, then report.
          let nonFinite = err instanceof NonFiniteError;
          for (const step of pending) {
            if (this.closed || this.inFlight.length === 0) break;
            const slot = await this.completeOldest("finishing the steps in flight").catch(() => null);
            // After any other error (onStep threw, say) the ranks ran these steps: count them, so
            // progress matches the parameters, up to a non-finite one (which halted the ranks).
            if (nonFinite || slot === null || this.scalars(0, slot)[P.R_RAN] !== 1) continue;
            if (!this.options.skipNonFinite && this.anyNonFinite(slot)) {
              nonFinite = true;
              continue;
            }
            pr.globalStep++;
            pr.stepInEpoch++;
            if (step.update && this.scalars(0, slot)[P.R_SKIPPED] !== 1) pr.optimizerStep++;
          }
          if (nonFinite) {
            // The window of the bad step changed no parameter (the ranks skip its update and halt
            // there, so the steps after it change nothing either): go back to its first micro-step,
            // so the next fit recomputes it from zeroed gradients instead of adding to a NaN sum.
            const back = pr.stepInEpoch % k;
            pr.stepInEpoch -= back;
            pr.globalStep -= back;
          }
          throw err;
        }
        if (stopping) return result();
        pr.epoch++;
        pr.stepInEpoch = 0;
        const log: EpochLog = {
          epoch: pr.epoch,
          step: pr.globalStep,
          loss: tally.loss / tally.samples,
          accuracy: isClassification(this.options.loss) ? tally.correct / tally.samples : null,
          lr: tally.lr,
          steps: tally.steps,
          samples: tally.samples,
          durationMs: performance.now() - tally.startedAt,
        };
        history.push(log);
        await opts.onEpochEnd?.(log);
      }
      return result();
    } finally {
      this.busy = false;
    }
  }

  /** Hands step `s` of the epoch to the workers; `isSync`: nothing is in flight, main's counts are current. */
  private publishStep(
    ds: SharedDataset,
    order: Int32Array,
    s: number,
    batchSize: number,
    stepsPerEpoch: number,
    isSync: boolean,
  ): PendingStep {
    const k = this.options.accumulateSteps;
    const indices = order.subarray(s * batchSize, Math.min(ds.length, (s + 1) * batchSize));
    // An accumulation window is k consecutive micro-steps of one epoch; the last may be shorter.
    const windowStart = s - (s % k);
    const windowEnd = Math.min(stepsPerEpoch, windowStart + k);
    const update = s + 1 === windowEnd;
    const window = order.subarray(windowStart * batchSize, Math.min(ds.length, windowEnd * batchSize));
    const globalStep = this.progress.globalStep + this.inFlight.length;
    this.publish(P.Cmd.TRAIN, (b, batch) => {
      batch.set(indices);
      b[P.S_BATCH] = indices.length;
      b[P.S_DENOM] = this.denominator(ds, window);
      b[P.S_OPT_COUNT] = isSync ? this.progress.optimizerStep : -1;
      b[P.S_ZERO] = s === windowStart ? 1 : 0;
      b[P.S_UPDATE] = update ? 1 : 0;
      b[P.S_STEP] = globalStep;
      b[P.S_DATASET] = ds.id;
      b[P.S_CLIP] = this.options.clipGradNorm ?? 0;
      b[P.S_LR_SCALE] = this.progress.lrScale ?? 1;
    });
    return { indices, update, globalStep };
  }

  /** Waits for the oldest step in flight and gathers the ranks' results. */
  private async finishStep(ds: SharedDataset, step: PendingStep) {
    const slot = await this.completeOldest(`step ${step.globalStep + 1}`);
    let lossSum = 0,
      correct = 0,
      nonFinite = false;
    const partials: number[] = [];
    const timings = { computeMs: 0, waitMs: 0, reduceMs: 0, updateMs: 0 };
    let finishedAt = 0;
    for (let r = 0; r < this.numWorkers; r++) {
      const s = this.scalars(r, slot);
      finishedAt = Math.max(finishedAt, s[P.R_FINISHED_AT]!);
      if (s[P.R_RAN] !== 1)
        throw new Error(`DataParallel: internal error, rank ${r} did not run step ${step.globalStep + 1}`);
      timings.computeMs = Math.max(timings.computeMs, s[P.R_T_COMPUTE]!);
      timings.waitMs = Math.max(timings.waitMs, s[P.R_T_WAIT]!);
      timings.reduceMs = Math.max(timings.reduceMs, s[P.R_T_REDUCE]!);
      timings.updateMs = Math.max(timings.updateMs, s[P.R_T_UPDATE]!);
      lossSum += s[P.R_LOSS]!;
      correct += s[P.R_CORRECT]!;
      partials.push(s[P.R_SQNORM]!);
      if (s[P.R_NONFINITE] === 1) nonFinite = true;
    }
    const first = this.scalars(0, slot);
    const skipped = step.update && first[P.R_SKIPPED] === 1;
    const loss = lossSum / this.denominator(ds, step.indices);
    if (nonFinite && !this.options.skipNonFinite) {
      const k = this.options.accumulateSteps;
      const redo =
        k > 1
          ? ` (the next fit recomputes its accumulation window from step ${step.globalStep + 1 - (this.progress.stepInEpoch % k)})`
          : "";
      throw new NonFiniteError(
        `DataParallel: non-finite ${Number.isFinite(loss) ? "gradient" : `loss (${loss})`} ` +
          `at step ${step.globalStep + 1}; the update was not applied${redo}. ` +
          "Lower the learning rate, clip gradients (clipGradNorm) or pass skipNonFinite: true to skip such steps.",
      );
    }
    return {
      loss,
      lr: first[P.R_LR]!,
      samples: step.indices.length,
      updated: step.update && !skipped,
      skipped,
      timings,
      finishedAt,
      accuracy: isClassification(this.options.loss) ? correct / step.indices.length : null,
      gradNorm: step.update ? combineNorms(partials, 2) : null,
    };
  }

  /** Mean loss (and accuracy and predictions for classification) over a data set, in eval mode. */
  async evaluate(data: DatasetLike, opts: { batchSize?: number } = {}): Promise<EvalResult> {
    return this.track(this.runEvaluate(data, opts));
  }

  private async runEvaluate(data: DatasetLike, opts: { batchSize?: number }): Promise<EvalResult> {
    if (this.busy) throw new Error("DataParallel: fit or evaluate is already running");
    this.busy = true;
    try {
      const ds = await this.register(data);
      const bs = Math.min(opts.batchSize ?? 1024, this.options.maxBatchSize);
      if (!Number.isInteger(bs) || bs < 1)
        throw new Error(`DataParallel.evaluate: batchSize must be a positive integer, got ${opts.batchSize}`);
      const classification = isClassification(this.options.loss);
      const predictions = classification ? new Int32Array(ds.length) : null;
      let lossSum = 0,
        correct = 0;
      for (let start = 0; start < ds.length; start += bs) {
        const n = Math.min(bs, ds.length - start);
        const slot = await this.command(P.Cmd.EVAL, "evaluation", (b, batch) => {
          for (let i = 0; i < n; i++) batch[i] = start + i;
          b[P.S_BATCH] = n;
          b[P.S_DATASET] = ds.id;
        });
        for (let r = 0; r < this.numWorkers; r++) {
          const s = this.scalars(r, slot);
          lossSum += s[P.R_LOSS]!;
          correct += s[P.R_CORRECT]!;
        }
        predictions?.set(this.predictions.subarray(0, n), start);
      }
      const all = { length: ds.length } as ArrayLike<number>;
      return {
        loss: lossSum / this.denominator(ds, all, (i) => i),
        accuracy: classification ? correct / ds.length : null,
        samples: ds.length,
        predictions,
      };
    } finally {
      this.busy = false;
    }
  }

  /**
   * The model's outputs for `x` (no targets), row-major [N, outDim], computed on this thread with
   * the trained parameters in eval mode. A flat x needs `sampleShape` unless the model is an mlp.
   * @example const logits = await trainer.predict(testX) // [N * classes]
   */
  async predict(x: Float32Array | Tensor, opts: PredictOptions = {}): Promise<Float32Array> {
    if (this.busy) throw new Error("DataParallel.predict: wait for fit or evaluate to finish");
    this.assertOpen();
    const spec = this.options.model;
    const builtIn = "kind" in spec && !isTensor(x) ? spec : null;
    const sampleShape =
      opts.sampleShape ??
      (builtIn === null || builtIn.kind === "gpt"
        ? undefined
        : builtIn.kind === "mlp"
          ? [builtIn.sizes[0]!]
          : [builtIn.inChannels, builtIn.height, builtIn.width]);
    return predictOutputs(this.model, x, { ...opts, sampleShape });
  }

  /**
   * Writes a checkpoint: parameters, optimizer state, module buffers (running statistics), progress
   * and the configuration, atomically (a crash mid-write leaves the previous file intact). `extra` is
   * stored alongside (e.g. metrics).
   */
  async save(path: string, extra: Record<string, unknown> = {}): Promise<void> {
    if (this.busy) throw new Error("DataParallel.save: wait for fit or evaluate to finish");
    saveTrainer(this, path, extra);
  }

  /**
   * Restores a trainer from a checkpoint (same configuration, same parameters, optimizer state and
   * progress); `overrides` may change, e.g., the number of workers. Every field of the file is
   * checked first (`readTrainerCheckpoint`), and nothing the file names is imported or called: a
   * checkpoint of a model (or loss) from a module needs that module given again, and its parameter
   * names and shapes must match the file's.
   * `source` is a path, or a checkpoint `readTrainerCheckpoint` returned (the file is not read again).
   * @example await DataParallel.load("ckpt.msgpack", { model: { module: new URL("./net.js", import.meta.url) } })
   */
  static async load(
    source: string | TrainerCheckpoint,
    overrides: Partial<TrainerOptions> = {},
  ): Promise<DataParallel> {
    const ckpt = typeof source === "string" ? readTrainerCheckpoint(source) : source;
    // An override given as undefined keeps the stored value (it would otherwise erase it).
    const given = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
    requireGivenCode(ckpt, given);
    const trainer = await DataParallel.create({ ...ckpt.config, ...given });
    try {
      restoreTrainer(trainer, ckpt);
    } catch (err) {
      await trainer.close();
      throw err;
    }
    return trainer;
  }

  /**
   * Stops the workers and releases the pool; safe to call more than once. An idle trainer does not
   * keep the process alive, but its threads and shared memory last until close (or exit).
   */
  async close(): Promise<void> {
    if (this.running !== null) {
      this.closing = true;
      await this.running.catch(() => undefined);
    }
    await holdOpen(this.shutdown());
  }

  /** `await using trainer = await DataParallel.create(...)` closes the trainer at the end of the block. */
  async [asyncDispose](): Promise<void> {
    await this.close();
  }

  private async shutdown(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.copies.clear();
    this.spare.length = 0;
    // A failure, or commands still in flight (a time-out): release every rank through the error word.
    if (this.failure !== null || Atomics.load(this.arena.control, ERROR) !== ErrorCode.NONE || this.inFlight.length > 0)
      signalError(this.arena.control, ErrorCode.ABORTED);
    else {
      // Nothing is in flight here (fit and evaluate are done), so the next slot is free.
      const seq = ++this.seq,
        slot = seq % this.slots;
      this.blocks[slot * P.STEP_BLOCK_SIZE + P.S_CMD] = P.Cmd.STOP;
      Atomics.store(this.arena.control, P.SEQ, seq);
      Atomics.notify(this.arena.control, P.SEQ);
    }
    let fallback: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled(this.tasks), new Promise((r) => (fallback = setTimeout(r, 2000)))]);
    clearTimeout(fallback); // else it holds the process open for 2 s after close()
    for (const port of this.ports) port.close();
    await this.pool.destroy();
  }

  get isClosed(): boolean {
    return this.closed;
  }
}
