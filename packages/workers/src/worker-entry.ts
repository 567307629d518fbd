// One rank of the data-parallel trainer. piscina runs this as one long-lived task per rank: it
// builds the model, binds its parameters and gradients to the shared arena, then loops over the
// commands main publishes in shared memory until STOP, an error, or main's abort.
import { type MessagePort, receiveMessageOnPort, threadId } from "node:worker_threads";
import {
  type Region,
  type Tensor,
  type WasmKernels,
  type WasmMemory,
  type nn,
  createWasmKernels,
  runInStepRegion,
  setDefaultWasmKernels,
} from "@threadgrad/core";
import type { OptimizerName, ScheduleConfig } from "@threadgrad/optim";
import { type ArenaHandle, type BufferSlot, SharedArena, bufferViews } from "./arena.js";
import { type Collective, SharedMemoryCollective } from "./collective.js";
import { ERROR, ErrorCode, signalError } from "./control.js";
import type { SharedDataset } from "./dataset.js";
import { HierarchicalCollective } from "./distributed.js";
import * as P from "./protocol.js";
import { type RunState, evalStep, lrOf, trainStep, update } from "./rank-step.js";
import { segment, shardRange } from "./shard.js";
import { float32Update } from "./update-f32.js";
import { type SegmentUpdate, wasmSegmentSum } from "./wasm-arena.js";
import { type LossFn, type LossSpec, type ModelSpec, buildLoss, buildModel } from "./spec.js";

export interface WorkerInit {
  rank: number;
  arena: ArenaHandle;
  stepBlock: SharedArrayBuffer;
  /** indices of each slot's batch: slot k at k * maxBatchSize */
  batch: SharedArrayBuffer;
  maxBatchSize: number;
  /** commands main may have in flight: the step block, batch buffer and scalars have this many slots */
  slots: number;
  predictions: SharedArrayBuffer;
  port: MessagePort;
  model: ModelSpec;
  loss: LossSpec;
  classification: boolean;
  /** the loss takes a class index per token: outputs [rows, T, classes], accuracy per token, no predictions kept */
  tokens: boolean;
  optimizer: { name: OptimizerName; options: Record<string, unknown> };
  schedule: ScheduleConfig | null;
  skipNonFinite: boolean;
  seed: number;
  barrierTimeoutMs: number;
  /** false when ranks outnumber cores: barriers then wait without spinning */
  spin: boolean;
  /** tensors made during a step live in this rank's scratch, reset after the step (see TrainerOptions) */
  stepRegion: boolean;
  /** the arena's shared WebAssembly.Memory and this rank's scratch in it, when the wasm backend is on */
  wasm: { memory: WasmMemory; scratch: Region } | null;
  /** the model's buffers in shared memory: rank 0 uses them in place, the other ranks keep copies */
  buffers: { block: SharedArrayBuffer; slots: BufferSlot[] };
  /** shared memory for the collective's all-reduce of a few float64 values (several ranks), or null */
  scalars: { block: SharedArrayBuffer; capacity: number } | null;
  /** BatchNorm normalises with the statistics of the whole batch, reduced across ranks inside the step */
  syncBatchNorm: boolean;
  /**
   * Training across processes (distributed: "mpi"): this process's rank among `size`, and the MPI
   * communicator this rank shares with the same-index ranks of the other processes; null: one process.
   */
  processGroup: { rank: number; size: number; comm: number; timeoutMs: number } | null;
}

/** Waits (blocking: this is a worker) until main has published command `next`, watching ERROR. */
function waitForCommand(control: Int32Array, next: number, spins: number): void {
  for (let spin = 0; spin < spins; spin++) if (Atomics.load(control, P.SEQ) >= next) return;
  for (;;) {
    const seq = Atomics.load(control, P.SEQ);
    if (seq >= next) return;
    if (Atomics.load(control, ERROR) !== ErrorCode.NONE) throw new Error("aborted");
    // Main bumps SEQ and notifies it; a missed notify is caught by the 200 ms re-check.
    Atomics.wait(control, P.SEQ, seq, 200);
  }
}

/** What a rank posts on its port when its command loop ends: at STOP, or with the error that ended it. */
export type RankEnd = { stopped: number } | { failed: Error };

/**
 * Sets the rank up (model, shared arena, READY) and settles, then runs the command loop on its own,
 * posting a RankEnd on `init.port` when it ends. piscina counts a pending task as work that keeps
 * the process alive: as one task for the whole loop, an idle trainer would keep a script that
 * forgot close() running forever.
 */
export default async function runRank(init: WorkerInit): Promise<{ rank: number; threadId: number }> {
  const { rank } = init;
  // With the wasm backend the arena lies in the kernels' memory: attach to that memory's own buffer
  // object, so the kernels recognise parameter and gradient views as already in place.
  const kernels = init.wasm ? createWasmKernels({ memory: init.wasm.memory, scratch: init.wasm.scratch }) : null;
  if (kernels) setDefaultWasmKernels(kernels);
  const arena = SharedArena.attach(kernels?.buffer ?? init.arena.buffer, init.arena.layout, init.arena.byteOffset);
  const control = arena.control;
  const fail = (err: unknown): Error => {
    const aborted = Atomics.load(control, ERROR) !== ErrorCode.NONE && (err as Error).message === "aborted";
    if (!aborted) {
      Atomics.compareExchange(control, P.FAILED_RANK, 0, rank + 1);
      signalError(control, ErrorCode.WORKER_FAILED);
    }
    const e = err instanceof Error ? err : new Error(String(err));
    e.message = `rank ${rank}: ${e.message}`;
    return e;
  };
  let loop: () => number;
  try {
    loop = await prepareRank(init, arena, kernels);
  } catch (err) {
    throw fail(err);
  }
  // After piscina has posted this task's result (microtasks run before an immediate).
  setImmediate(() => {
    let end: RankEnd;
    try {
      end = { stopped: loop() };
    } catch (err) {
      end = { failed: fail(err) };
    }
    init.port.postMessage(end);
  });
  return { rank, threadId };
}

/** What a rank keeps from its set-up to STOP. */
interface Rank {
  init: WorkerInit;
  rank: number;
  ranks: number;
  arena: SharedArena;
  control: Int32Array;
  blocks: Float64Array;
  batches: Int32Array;
  preds: Int32Array;
  model: nn.Module;
  lossFn: LossFn;
  params: Tensor[];
  state: Float32Array[];
  /** copies the shared module buffers into this rank's private ones (a no-op for rank 0) */
  loadBuffers: () => void;
  collective: Collective;
  /** the collective across processes (the same object as `collective`), or null in a single process */
  crossProcess: HierarchicalCollective | null;
  /** this process's rank and the number of processes (0 and 1 in a single process) */
  processRank: number;
  processCount: number;
  /** the collective BatchNorm reduces its statistics through, or null (see WorkerInit.syncBatchNorm) */
  sync: Collective | null;
  optimizerStep: SegmentUpdate | null;
  kernels: WasmKernels | null;
  /** the kernels whose step region holds the tensors a step makes, or null */
  stepRegion: WasmKernels | null;
  datasets: Map<number, SharedDataset>;
  /** this rank's segment of the parameters, which it reduces and updates */
  segStart: number;
  segEnd: number;
  // What the ranks keep in step between commands: the optimizer's update count, whether the
  // current accumulation window met a non-finite value, and whether they halted on one.
  run: RunState;
  /** training steps run so far */
  steps: number;
  /** with virtual shards, each of this rank's gradient slices as a view per parameter; else empty */
  partGrads: Float32Array[][];
}

/** One command as a rank finds it in its slot of the step block, the batch buffer and its scalars. */
interface Command {
  slot: number;
  block: Float64Array;
  batch: Int32Array;
  scalars: Float64Array;
}

/** Builds the rank's model and state, counts it READY and returns its command loop (steps run, at STOP). */
async function prepareRank(init: WorkerInit, arena: SharedArena, kernels: WasmKernels | null): Promise<() => number> {
  const { rank } = init;
  const ranks = arena.layout.ranks;
  const control = arena.control;
  const model: nn.Module = await buildModel(init.model);
  const lossFn = await buildLoss(init.loss);
  const params = bindParameters(model, arena, rank);
  const inProcess = new SharedMemoryCollective(arena, rank, {
    timeoutMs: init.barrierTimeoutMs,
    spinIterations: init.spin ? undefined : 0,
    segmentSum: kernels ? wasmSegmentSum(kernels, arena) : undefined,
    scalars: init.scalars ?? undefined,
  });
  const group = init.processGroup;
  const crossProcess = group ? new HierarchicalCollective(inProcess, group.comm, group.rank, group.timeoutMs) : null;
  const collective: Collective = crossProcess ?? inProcess;
  const [segStart, segEnd] = segment(arena.layout.paddedLength, ranks, rank);
  const r: Rank = {
    init,
    rank,
    ranks,
    arena,
    control,
    blocks: new Float64Array(init.stepBlock),
    batches: new Int32Array(init.batch),
    preds: new Int32Array(init.predictions),
    model,
    lossFn,
    params,
    state: Array.from({ length: arena.layout.stateBuffers }, (_, k) => arena.state(k)),
    loadBuffers: bindBuffers(model, init.buffers, rank),
    collective,
    crossProcess,
    processRank: group?.rank ?? 0,
    processCount: group?.size ?? 1,
    sync: init.syncBatchNorm ? collective : null,
    optimizerStep: float32Update(kernels, arena, init.optimizer),
    kernels,
    stepRegion: kernels && init.stepRegion ? kernels : null,
    datasets: new Map(),
    segStart,
    segEnd,
    run: { optCount: 0, windowNonFinite: false, halted: false },
    steps: 0,
    partGrads:
      arena.slicesPerRank > 1
        ? Array.from({ length: arena.slicesPerRank }, (_, j) => {
            const slice = arena.grads(arena.firstSlice(rank) + j);
            return params.map((_, i) => arena.paramIn(slice, i));
          })
        : [],
  };
  Atomics.add(control, P.READY, 1);
  Atomics.notify(control, P.READY);
  return () => rankLoop(r);
}

/** Views the model's parameters on the arena's and binds their gradients to this rank's slice. */
function bindParameters(model: nn.Module, arena: SharedArena, rank: number): Tensor[] {
  const params = model.parameters();
  if (
    params.length !== arena.layout.paramSizes.length ||
    params.some((p, i) => p.numel !== arena.layout.paramSizes[i])
  ) {
    throw new Error("the model built in this worker does not match the main thread's (different parameter shapes)");
  }
  const ownGrads = arena.grads(arena.firstSlice(rank));
  params.forEach((p, i) => {
    p.setStorage(arena.paramView(i));
    p.bindGrad(arena.paramIn(ownGrads, i));
  });
  return params;
}

/** Runs main's commands in order until STOP; returns the training steps run. */
function rankLoop(r: Rank): number {
  for (let next = 1; ; next++) {
    waitForCommand(r.control, next, r.init.spin ? 2000 : 0);
    const c = commandIn(r, next % r.init.slots);
    const cmd = c.block[P.S_CMD];
    if (cmd === P.Cmd.STOP) return r.steps;
    c.scalars.fill(0);
    if (c.block[P.S_LOAD_BUFFERS] === 1) reloadBuffers(r);
    if (cmd === P.Cmd.RECEIVE) receiveDatasets(r, c);
    else runOnShard(r, c, cmd === P.Cmd.TRAIN);
    reportDone(r, c);
  }
}

function commandIn(r: Rank, slot: number): Command {
  const { init } = r;
  return {
    slot,
    block: r.blocks.subarray(slot * P.STEP_BLOCK_SIZE, (slot + 1) * P.STEP_BLOCK_SIZE),
    batch: r.batches.subarray(slot * init.maxBatchSize, (slot + 1) * init.maxBatchSize),
    scalars: slotScalars(r, r.rank, slot),
  };
}

function slotScalars(r: Rank, rank: number, slot: number): Float64Array {
  return r.arena.rankScalars(rank).subarray(slot * P.SCALAR_SLOTS, (slot + 1) * P.SCALAR_SLOTS);
}

/**
 * Main replaced the shared buffers (a restored checkpoint): the copies follow, and no rank starts
 * the command (rank 0 updating the shared ones in place) before every copy is made.
 */
function reloadBuffers(r: Rank): void {
  r.loadBuffers();
  if (r.ranks > 1) r.collective.barrier();
}

/** Reads the port's messages: a data set to keep, or { forget: ids } of data sets main no longer uses. */
function receiveDatasets(r: Rank, c: Command): void {
  const { port } = r.init;
  for (let msg = receiveMessageOnPort(port); msg !== undefined; msg = receiveMessageOnPort(port)) {
    const m = msg.message as SharedDataset | { forget: number[] };
    if ("forget" in m) for (const id of m.forget) r.datasets.delete(id);
    else r.datasets.set(m.id, m);
  }
  c.scalars[P.R_DATASETS_HELD] = r.datasets.size;
}

/** A training micro-step or an evaluation batch on this rank's shard of the command's batch. */
function runOnShard(r: Rank, c: Command, isTrain: boolean): void {
  const { block } = c;
  const ds = r.datasets.get(block[P.S_DATASET]!);
  if (ds === undefined) throw new Error(`unknown data set ${block[P.S_DATASET]}`);
  // Across processes the batch is split over every process's ranks: process p takes a contiguous share.
  const [start, end] = shardRange(block[P.S_BATCH]!, r.ranks * r.processCount, r.processRank * r.ranks + r.rank);
  // Virtual shards (in one process): the batch is cut into ranks × k parts whatever the rank
  // count, and this rank runs its k: in training each into its own gradient slice.
  const k = r.partGrads.length;
  const parts =
    k > 1
      ? r.partGrads.map((grads, j) => {
          const [from, to] = shardRange(block[P.S_BATCH]!, r.ranks * k, r.rank * k + j);
          return { start: from, end: to, grads };
        })
      : null;
  const { init, model, lossFn, stepRegion } = r;
  if (!isTrain) {
    // By parts too, so that the loss sums meet in the same order whatever the rank count.
    for (const rows of parts ?? [{ start, end }]) {
      const ctx = { init, model, lossFn, ds, batch: c.batch, ...rows, scalars: c.scalars, preds: r.preds };
      if (stepRegion) runInStepRegion(stepRegion, () => evalStep(ctx));
      else evalStep(ctx);
    }
    r.crossProcess?.sumStepScalars(c.scalars);
    return;
  }
  const known = block[P.S_OPT_COUNT]!;
  if (known >= 0) Object.assign(r.run, { optCount: known, halted: false });
  if (r.run.halted) return;
  const ctx = {
    init,
    model,
    lossFn,
    ds,
    batch: c.batch,
    block,
    start,
    end,
    scalars: c.scalars,
    params: r.params,
    sync: r.sync,
    parts,
  };
  if (block[P.S_ZERO] === 1) r.run.windowNonFinite = false;
  if (stepRegion) runInStepRegion(stepRegion, () => trainStep(ctx));
  else trainStep(ctx);
  r.crossProcess?.sumStepScalars(c.scalars);
  r.run.windowNonFinite ||= c.scalars[P.R_NONFINITE] === 1;
  c.scalars[P.R_LR] = lrOf(init, r.run.optCount) * block[P.S_LR_SCALE]!;
  if (block[P.S_UPDATE] === 1) updateSegment(r, c);
  c.scalars[P.R_RAN] = 1;
  r.steps++;
}

/**
 * The end of an accumulation window: reduce the gradients, update this rank's segment, then gather
 * the updated segments. The next step may already be waiting: no rank reads parameters for it, or
 * writes its gradient slice, before every rank has updated its segment and read the slices.
 */
function updateSegment(r: Rank, c: Command): void {
  update({
    init: r.init,
    arena: r.arena,
    collective: r.collective,
    block: c.block,
    state: r.state,
    segStart: r.segStart,
    segEnd: r.segEnd,
    scalars: c.scalars,
    optimizerStep: r.optimizerStep,
    kernels: r.kernels,
    run: r.run,
  });
  r.collective.allGather(r.arena.params);
}

/** Marks the command done; the last rank to finish wakes main, which waits on DONE + slot with Atomics.waitAsync. */
function reportDone(r: Rank, c: Command): void {
  c.scalars[P.R_FINISHED_AT] = performance.timeOrigin + performance.now();
  if (Atomics.add(r.control, P.DONE + c.slot, 1) + 1 === r.ranks) Atomics.notify(r.control, P.DONE + c.slot);
}

/**
 * Binds the model's buffers to the shared block: rank 0's are views on it (it updates them in place,
 * once per step), the other ranks' are private copies, which synchronised BatchNorm keeps equal to
 * rank 0's (every rank applies the same global statistics). Returns the function that copies the
 * shared values into the private ones (a no-op for rank 0).
 */
function bindBuffers(model: nn.Module, buffers: WorkerInit["buffers"], rank: number): () => void {
  const named = [...model.namedBuffers()];
  const { slots } = buffers;
  if (
    named.length !== slots.length ||
    named.some(([name, b], i) => name !== slots[i]!.name || b.dtype !== slots[i]!.dtype || b.numel !== slots[i]!.length)
  ) {
    throw new Error("the model built in this worker does not match the main thread's (different buffers)");
  }
  const shared = bufferViews(buffers.block, slots);
  if (rank === 0) {
    named.forEach(([, b], i) => {
      b.setStorage(shared[i]!);
    });
    return () => undefined;
  }
  const load = () => {
    named.forEach(([, b], i) => {
      b.data.set(shared[i]!);
    });
  };
  load();
  return load;
}
