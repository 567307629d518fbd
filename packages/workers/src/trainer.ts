import { MessageChannel, type MessagePort } from "node:worker_threads";
import { Piscina } from "piscina";
import { type Tensor, isTensor, manualSeed, type nn } from "@threadgrad/core";
import { type OptimizerName, resolveFlatOptions, stateBuffers } from "@threadgrad/optim";
import { SharedArena, bufferViews, planArena, planBuffers } from "./arena.js";
import { SharedSmallAllReduce } from "./collective.js";
import { CommandChannel } from "./command-channel.js";
import { type TrainerCheckpoint, readTrainerCheckpoint, restoreTrainer, saveTrainer } from "./persist.js";
import { ERROR, ErrorCode, signalError } from "./control.js";
import type { DatasetLike } from "./dataset.js";
import {
  type ProcessGroup,
  agreeWithFirst,
  broadcastFromFirst,
  initMpi,
  joinProcessGroup,
  leaveProcessGroup,
  processBarrier,
  processesSharingCores,
} from "./distributed.js";
import { DatasetRegistry } from "./dataset-registry.js";
import { runEvaluate } from "./evaluate.js";
import { runFit } from "./fit-loop.js";
import * as P from "./protocol.js";
import { type PredictOptions, predictOutputs } from "./load-model.js";
import { defaultLoss, isSequenceLoss } from "./sequence-loss.js";
import { buildModel, isClassification } from "./spec.js";
import { availableWorkers, resolveWorkers } from "./threads.js";
import {
  asyncDispose,
  batchNormChannels,
  holdOpen,
  postable,
  requireGivenCode,
  startRank,
  workerEntry,
} from "./trainer-setup.js";
import type { EvalResult, FitOptions, FitResult, Progress, ResolvedOptions, TrainerOptions } from "./trainer-types.js";
import { placeInWasm } from "./wasm-arena.js";
import type { WorkerInit } from "./worker-entry.js";

export type {
  EpochLog,
  EvalResult,
  FitOptions,
  FitResult,
  OptimizerConfig,
  Progress,
  StepInfo,
  TrainerOptions,
} from "./trainer-types.js";

/**
 * The young generation (MiB) of a worker whose steps allocate on the JavaScript heap (no step
 * region). Every op's result is then a new ArrayBuffer whose memory V8 counts as external; with
 * V8's default young generation (tens of MiB) the short-lived buffers pile up between scavenges
 * until external-memory pressure forces full mark-compacts. Measured by benchmarks/scripts/w4-heap.mjs
 * (W4 on 2 workers, 2-core VM): V8's default 165 and 175 mark-compacts while timed, 22,093 and
 * 21,855 samples/s; 3 MiB 28–35 mark-compacts, 27,651–28,552 samples/s.
 */
const HEAP_STEP_YOUNG_MB = 3;

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
  /** @internal */
  busy = false;
  /** @internal */
  closing = false;
  private running: Promise<unknown> | null = null;
  /** @internal */
  readonly channel: CommandChannel;
  /** @internal */
  readonly datasets: DatasetRegistry;

  private constructor(
    readonly options: ResolvedOptions,
    readonly model: nn.Module,
    readonly arena: SharedArena,
    readonly numWorkers: number,
    readonly optimizer: { name: OptimizerName; options: Record<string, unknown> },
    private readonly pool: Piscina,
    private readonly ports: MessagePort[],
    blocks: Float64Array,
    batches: Int32Array,
    /** @internal */
    readonly predictions: Int32Array,
    private tasks: Promise<unknown>[],
    /** @internal */
    readonly processGroup: ProcessGroup | null,
  ) {
    const stepTimeoutMs = options.stepTimeoutMs ?? 600_000;
    if (processGroup) processGroup.timeoutMs = stepTimeoutMs;
    const { stepsInFlight, maxBatchSize } = options;
    this.channel = new CommandChannel(
      arena,
      numWorkers,
      stepsInFlight,
      maxBatchSize,
      blocks,
      batches,
      stepTimeoutMs,
      () => this.shutdown(),
    );
    this.datasets = new DatasetRegistry(this.channel, ports, options.model, options.loss);
  }

  /**
   * Set when the module buffers in shared memory were replaced while the workers run (a restored
   * checkpoint): the next command tells the ranks that keep private copies to read them again.
   * @internal
   */
  get buffersChanged(): boolean {
    return this.channel.loadBuffers;
  }

  set buffersChanged(changed: boolean) {
    this.channel.loadBuffers = changed;
  }

  /** This process's rank among the trainer's processes (distributed: "mpi"); 0 in a single process. */
  get processRank(): number {
    return this.processGroup?.rank ?? 0;
  }

  /** How many processes train together (distributed: "mpi"); 1 in a single process. */
  get processCount(): number {
    return this.processGroup?.size ?? 1;
  }

  /** Builds the model, lays out the shared arena and starts one worker per rank. */
  static async create(opts: TrainerOptions): Promise<DataParallel> {
    if (opts.distributed !== undefined && opts.distributed !== "mpi")
      throw new Error(`DataParallel: distributed must be "mpi" or absent, got ${JSON.stringify(opts.distributed)}`);
    // Processes of an MPI job on one host share its cores: 'auto' gives each its part.
    const processesOnHost = opts.distributed === "mpi" ? processesSharingCores(initMpi()) : 1;
    const numWorkers = autoDivisor(resolveWorkers(opts.workers, processesOnHost), opts.workers, opts.shards);
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
    const startTimeoutMs = opts.startTimeoutMs ?? 120_000;
    const { name = "adam", ...rest } = opts.optimizer ?? { name: "adam" };
    const optOptions = resolveFlatOptions(name, { lr: 1e-3, ...rest } as never) as unknown as Record<string, unknown>;
    manualSeed(seed);
    const model = await buildModel(opts.model);
    const params = model.parameters();
    if (params.length === 0) throw new Error("DataParallel: the model has no parameters");
    if (params.some((p) => p.dtype !== "float32")) throw new Error("DataParallel: parameters must be float32");
    const buffers = stateBuffers(name, optOptions as never);
    const shards = opts.shards ?? numWorkers;
    checkShards(shards, numWorkers, opts.distributed !== undefined, batchNormChannels(model) > 0);
    const layout = planArena({
      paramSizes: params.map((p) => p.numel),
      ranks: numWorkers,
      gradSlices: shards,
      stateBuffers: buffers.length,
      scalarSlotsPerRank: P.SCALAR_SLOTS * slots,
      userControlWords: P.TRAINER_CONTROL_WORDS,
    });
    const wasm = placeInWasm(layout, numWorkers);
    const arena = wasm
      ? SharedArena.attach(wasm.kernels.buffer, layout, wasm.placement.arenaOffset)
      : SharedArena.create(layout);
    // Joined once what may refuse the options has run: a create that throws before here holds no communicator,
    // and from here on the trainer's shutdown frees them.
    const group = opts.distributed === "mpi" ? await joinProcessGroup(numWorkers, startTimeoutMs) : null;
    params.forEach((p, i) => {
      const view = arena.paramView(i);
      view.set(p.data as Float32Array);
      p.setStorage(view);
    });
    // Every process built the model from the same seed; a module model might draw otherwise.
    if (group) broadcastFromFirst(group, arena.params);
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
    // The ranks all-reduce a few float64 values inside the step: the update's norm and flags, and
    // with BatchNorm over several ranks the global batch's statistics (it normalises with those).
    const channels = batchNormChannels(model);
    const capacity = Math.max(channels, P.UPDATE_TOTALS);
    const scalars =
      numWorkers > 1
        ? { block: new SharedArrayBuffer(SharedSmallAllReduce.bytes(numWorkers, capacity)), capacity }
        : null;
    const maxBatchSize = opts.maxBatchSize ?? 8192;
    const blocks = new Float64Array(new SharedArrayBuffer(slots * P.STEP_BLOCK_SIZE * 8));
    const batches = new Int32Array(new SharedArrayBuffer(slots * maxBatchSize * 4));
    const predictions = new Int32Array(new SharedArrayBuffer(maxBatchSize * 4));
    const stepRegion = opts.stepRegion ?? "kind" in opts.model;
    const pool = new Piscina({
      // Without a step region every op's result is a fresh ArrayBuffer; see HEAP_STEP_YOUNG_MB.
      ...(stepRegion && wasm ? {} : { resourceLimits: { maxYoungGenerationSizeMb: HEAP_STEP_YOUNG_MB } }),
      filename: workerEntry(),
      minThreads: numWorkers,
      maxThreads: numWorkers,
      idleTimeout: Infinity,
      concurrentTasksPerWorker: 1,
      atomics: "disabled",
    });
    const loss = opts.loss ?? defaultLoss(opts.model);
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
      group,
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
        tokens: isSequenceLoss(loss),
        optimizer: { name, options: optOptions },
        schedule: opts.schedule ?? null,
        skipNonFinite: trainerOpts.skipNonFinite,
        seed,
        barrierTimeoutMs: opts.barrierTimeoutMs ?? 60_000,
        // Spinning at a barrier only pays while every rank (this host's other processes' too) has a core of its own.
        spin: numWorkers * processesOnHost <= availableWorkers(),
        stepRegion,
        wasm: wasm ? { memory: wasm.placement.memory, scratch: wasm.placement.scratch[rank]! } : null,
        buffers: { block: bufferBlock, slots: bufferPlan.slots },
        scalars,
        syncBatchNorm: numWorkers * (group?.size ?? 1) > 1 && channels > 0,
        processGroup: group
          ? { rank: group.rank, size: group.size, comm: group.comms[rank]!, timeoutMs: opts.barrierTimeoutMs ?? 60_000 }
          : null,
      };
      tasks.push(startRank(pool, init, port1, trainer.channel));
    }
    // A thread that fails with no task pending is reported by startRank's listeners, with its rank.
    pool.on("error", () => undefined);
    // shuts down on failure
    await holdOpen(trainer.channel.waitFor(P.READY, numWorkers, startTimeoutMs, "starting workers", "startTimeoutMs"));
    // The processes start their first step together, so the ranks' time-outs measure steps, not start-up.
    if (group) await holdOpen(processBarrier(group));
    return trainer;
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
    this.busy = true;
    try {
      return await holdOpen(this.datasets.forget(data));
    } finally {
      this.busy = false;
    }
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
    return this.track(runFit(this, data, opts));
  }

  private async track<T>(work: Promise<T>): Promise<T> {
    this.running = work;
    try {
      return await holdOpen(work);
    } finally {
      if (this.running === work) this.running = null;
    }
  }

  /**
   * Mean loss (and accuracy and predictions for classification) over a data set, in eval mode, in
   * batches of `batchSize` rows: by default the trainer's own batch size (that of its last fit, or
   * recorded in the checkpoint it was loaded from), or 1,024 for a trainer that has never trained;
   * never more than maxBatchSize.
   * @example const { loss, accuracy } = await trainer.evaluate(testSet);
   */
  async evaluate(data: DatasetLike, opts: { batchSize?: number } = {}): Promise<EvalResult> {
    return this.track(runEvaluate(this, data, opts));
  }

  /**
   * The model's outputs for `x` (no targets), row-major [N, outDim], computed on this thread with
   * the trained parameters in eval mode. A flat x needs `sampleShape` unless the model is an mlp.
   * @example const logits = await trainer.predict(testX) // [N * classes]
   */
  async predict(x: Float32Array | Int32Array | Tensor, opts: PredictOptions = {}): Promise<Float32Array> {
    if (this.busy) throw new Error("DataParallel.predict: wait for fit or evaluate to finish");
    this.channel.assertOpen();
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
   * stored alongside (e.g. metrics). Across processes (distributed: "mpi") only process 0 writes
   * (every process holds the same parameters); every process returns once it has, and throws if
   * it could not, so all of them may read the file next.
   */
  async save(path: string, extra: Record<string, unknown> = {}): Promise<void> {
    if (this.busy) throw new Error("DataParallel.save: wait for fit or evaluate to finish");
    const group = this.processGroup;
    if (group === null) return saveTrainer(this, path, extra);
    let failure: unknown = null;
    if (group.rank === 0) {
      try {
        saveTrainer(this, path, extra);
      } catch (err) {
        failure = err;
      }
    }
    const written = await holdOpen(agreeWithFirst(group, failure === null));
    if (failure !== null) throw failure;
    if (!written) throw new Error(`DataParallel.save: process 0 could not write ${path} (its error says why)`);
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
    const channel = this.channel;
    if (channel.closed) return;
    channel.closed = true;
    this.datasets.clear();
    // A failure, or commands still in flight (a time-out): release every rank through the error word.
    if (
      channel.failure !== null ||
      Atomics.load(this.arena.control, ERROR) !== ErrorCode.NONE ||
      channel.inFlight.length > 0
    )
      signalError(this.arena.control, ErrorCode.ABORTED);
    // Nothing is in flight here (fit and evaluate are done), so the next slot is free.
    else channel.stop();
    let fallback: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled(this.tasks), new Promise((r) => (fallback = setTimeout(r, 2000)))]);
    clearTimeout(fallback); // else it holds the process open for 2 s after close()
    for (const port of this.ports) port.close();
    await this.pool.destroy();
    if (this.processGroup) leaveProcessGroup(this.processGroup);
  }

  get isClosed(): boolean {
    return this.channel.closed;
  }
}

/** Refuses a virtual shard count the trainer cannot keep exact (see TrainerOptions.shards). */
function checkShards(shards: number, workers: number, distributed: boolean, batchNorm: boolean): void {
  if (!Number.isSafeInteger(shards) || shards < 1)
    throw new Error(`DataParallel: shards must be a positive integer, got ${shards}`);
  if (shards % workers !== 0)
    throw new Error(
      `DataParallel: shards (${shards}) must be a multiple of the number of workers (${workers}), ` +
        "so that every worker runs the same number of parts",
    );
  if (shards === workers) return;
  if (distributed)
    throw new Error(`DataParallel: shards (${shards}) cannot be combined with distributed training; leave it unset`);
  if (batchNorm)
    throw new Error(
      `DataParallel: shards (${shards}) cannot be used with a model that has BatchNorm layers: BatchNorm ` +
        "normalises over the rows of each forward, so cutting the batch into more parts than workers " +
        "would change the model; leave shards unset",
    );
}

/** With virtual shards, workers 'auto' is the largest divisor of the shard count within the usable cores. */
function autoDivisor(workers: number, given: TrainerOptions["workers"], shards: number | undefined): number {
  if ((given !== undefined && given !== "auto") || shards === undefined || !Number.isSafeInteger(shards) || shards < 1)
    return workers;
  let n = Math.min(workers, shards);
  while (shards % n !== 0) n--;
  return n;
}
