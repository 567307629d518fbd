// One rank of the data-parallel trainer. piscina runs this as one long-lived task per rank: it
// builds the model, binds its parameters and gradients to the shared arena, then loops over the
// commands main publishes in shared memory until STOP, an error, or main's abort.
import { type MessagePort, receiveMessageOnPort, threadId } from "node:worker_threads";
import {
  type Region,
  type WasmKernels,
  type WasmMemory,
  type nn,
  createWasmKernels,
  runInStepRegion,
  setDefaultWasmKernels,
} from "@threadgrad/core";
import type { OptimizerName, ScheduleConfig } from "@threadgrad/optim";
import { type ArenaHandle, type BufferSlot, SharedArena, bufferViews } from "./arena.js";
import { SharedMemoryCollective, SharedSmallAllReduce } from "./collective.js";
import { ERROR, ErrorCode, signalError } from "./control.js";
import type { SharedDataset } from "./dataset.js";
import * as P from "./protocol.js";
import { type RunState, evalStep, lrOf, trainStep, update } from "./rank-step.js";
import { segment, shardRange } from "./shard.js";
import { wasmSegmentSum, wasmUpdate } from "./wasm-arena.js";
import { type LossSpec, type ModelSpec, buildLoss, buildModel } from "./spec.js";

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
  /** BatchNorm statistics exchanged inside the step (several ranks, a model with BatchNorm), or null */
  syncBatchNorm: { block: SharedArrayBuffer; capacity: number } | null;
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

/** Builds the rank's model and state, counts it READY and returns its command loop (steps run, at STOP). */
async function prepareRank(init: WorkerInit, arena: SharedArena, kernels: WasmKernels | null): Promise<() => number> {
  const { rank } = init;
  const ranks = arena.layout.ranks;
  const control = arena.control;
  const blocks = new Float64Array(init.stepBlock);
  const batches = new Int32Array(init.batch);
  const preds = new Int32Array(init.predictions);
  const model: nn.Module = await buildModel(init.model);
  const lossFn = await buildLoss(init.loss);
  const params = model.parameters();
  if (
    params.length !== arena.layout.paramSizes.length ||
    params.some((p, i) => p.numel !== arena.layout.paramSizes[i])
  ) {
    throw new Error("the model built in this worker does not match the main thread's (different parameter shapes)");
  }
  const ownGrads = arena.grads(rank);
  params.forEach((p, i) => {
    p.setStorage(arena.paramView(i));
    p.bindGrad(arena.paramIn(ownGrads, i));
  });
  const state = Array.from({ length: arena.layout.stateBuffers }, (_, k) => arena.state(k));
  const loadBuffers = bindBuffers(model, init.buffers, rank);
  const collective = new SharedMemoryCollective(arena, rank, {
    timeoutMs: init.barrierTimeoutMs,
    spinIterations: init.spin ? undefined : 0,
    segmentSum: kernels ? wasmSegmentSum(kernels, arena) : undefined,
  });
  const barrierOptions = { timeoutMs: init.barrierTimeoutMs, spinIterations: init.spin ? undefined : 0 };
  const sync = init.syncBatchNorm
    ? new SharedSmallAllReduce(
        init.syncBatchNorm.block,
        control,
        ranks,
        rank,
        init.syncBatchNorm.capacity,
        barrierOptions,
      )
    : null;
  const optimizerStep = kernels ? wasmUpdate(kernels, arena, init.optimizer) : null;
  const stepRegion = kernels && init.stepRegion ? kernels : null;
  const datasets = new Map<number, SharedDataset>();
  const [segStart, segEnd] = segment(arena.layout.paddedLength, ranks, rank);
  const slotScalars = (r: number, slot: number) =>
    arena.rankScalars(r).subarray(slot * P.SCALAR_SLOTS, (slot + 1) * P.SCALAR_SLOTS);
  // What the ranks keep in step between commands: the optimizer's update count, whether the
  // current accumulation window met a non-finite value, and whether they halted on one.
  const run: RunState = { optCount: 0, windowNonFinite: false, halted: false };
  Atomics.add(control, P.READY, 1);
  Atomics.notify(control, P.READY);

  return () => {
    let steps = 0;
    for (let next = 1; ; next++) {
      waitForCommand(control, next, init.spin ? 2000 : 0);
      const slot = next % init.slots;
      const block = blocks.subarray(slot * P.STEP_BLOCK_SIZE, (slot + 1) * P.STEP_BLOCK_SIZE);
      const batch = batches.subarray(slot * init.maxBatchSize, (slot + 1) * init.maxBatchSize);
      const scalars = slotScalars(rank, slot);
      const cmd = block[P.S_CMD];
      if (cmd === P.Cmd.STOP) return steps;
      scalars.fill(0);
      if (block[P.S_LOAD_BUFFERS] === 1) {
        // Main replaced the shared buffers (a restored checkpoint): the copies follow, and no rank
        // starts the command (rank 0 updating the shared ones in place) before every copy is made.
        loadBuffers();
        if (ranks > 1) collective.barrier();
      }
      if (cmd === P.Cmd.RECEIVE) {
        // Messages: a data set to keep, or { forget: ids } of data sets main no longer uses.
        for (let msg = receiveMessageOnPort(init.port); msg !== undefined; msg = receiveMessageOnPort(init.port)) {
          const m = msg.message as SharedDataset | { forget: number[] };
          if ("forget" in m) for (const id of m.forget) datasets.delete(id);
          else datasets.set(m.id, m);
        }
        scalars[P.R_DATASETS_HELD] = datasets.size;
      } else {
        const ds = datasets.get(block[P.S_DATASET]!);
        if (ds === undefined) throw new Error(`unknown data set ${block[P.S_DATASET]}`);
        const n = block[P.S_BATCH]!;
        const [start, end] = shardRange(n, ranks, rank);
        if (cmd === P.Cmd.TRAIN) {
          const known = block[P.S_OPT_COUNT]!;
          if (known >= 0) Object.assign(run, { optCount: known, halted: false });
          if (!run.halted) {
            const ctx = { init, model, lossFn, ds, batch, block, start, end, scalars, params, sync };
            if (block[P.S_ZERO] === 1) run.windowNonFinite = false;
            if (stepRegion) runInStepRegion(stepRegion, () => trainStep(ctx));
            else trainStep(ctx);
            run.windowNonFinite ||= scalars[P.R_NONFINITE] === 1;
            scalars[P.R_LR] = lrOf(init, run.optCount) * block[P.S_LR_SCALE]!;
            if (block[P.S_UPDATE] === 1) {
              update({
                init,
                arena,
                collective,
                block,
                state,
                segStart,
                segEnd,
                scalars,
                ranks,
                optimizerStep,
                kernels,
                run,
                scalarsOf: (r: number) => slotScalars(r, slot),
              });
              // The next step may already be waiting: no rank reads parameters for it, or writes its
              // gradient slice, before every rank has updated its segment and read the slices.
              if (ranks > 1) collective.barrier();
            }
            scalars[P.R_RAN] = 1;
            steps++;
          }
        } else {
          const ctx = { init, model, lossFn, ds, batch, start, end, scalars, preds };
          if (stepRegion) runInStepRegion(stepRegion, () => evalStep(ctx));
          else evalStep(ctx);
        }
      }
      scalars[P.R_FINISHED_AT] = performance.timeOrigin + performance.now();
      // The last rank to finish wakes main, which waits on DONE + slot with Atomics.waitAsync.
      if (Atomics.add(control, P.DONE + slot, 1) + 1 === ranks) Atomics.notify(control, P.DONE + slot);
    }
  };
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
