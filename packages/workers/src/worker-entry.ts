// One rank of the data-parallel trainer. piscina runs this as one long-lived task per rank: it
// builds the model, binds its parameters and gradients to the shared arena, then loops over the
// commands main publishes in shared memory until STOP, an error, or main's abort.
import { type MessagePort, receiveMessageOnPort, threadId } from "node:worker_threads";
import {
  type Region,
  Tensor,
  type WasmKernels,
  type WasmMemory,
  type nn,
  createWasmKernels,
  isTensor,
  noGrad,
  runInStepRegion,
  setBatchNormReducer,
  setDefaultWasmKernels,
  setSampleContext,
  tensor,
} from "@threadgrad/core";
import {
  type OptimizerName,
  type ScheduleConfig,
  combineNorms,
  clipCoef,
  flatStep,
  lrAt,
  partialNorm,
  scaleRange,
} from "@threadgrad/optim";
import { type ArenaHandle, type BufferSlot, SharedArena, bufferViews } from "./arena.js";
import { SharedMemoryCollective, SharedSmallAllReduce } from "./collective.js";
import { ERROR, ErrorCode, signalError } from "./control.js";
import type { SharedDataset } from "./dataset.js";
import * as P from "./protocol.js";
import { segment, shardRange } from "./shard.js";
import { type SegmentUpdate, wasmSegmentSum, wasmUpdate } from "./wasm-arena.js";
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

function gatherRows(ds: SharedDataset, idx: Int32Array, start: number, end: number): { x: Tensor; y: Tensor } {
  const rows = end - start,
    f = ds.features,
    d = ds.targetDim;
  // Tensor storage, so inside the step region the rows land where the SIMD kernels read them.
  // Token ids stay int32: they are indices, not values to compute with.
  const x = Tensor.empty([rows * f], ds.x instanceof Int32Array ? "int32" : "float32").data as
    | Float32Array
    | Int32Array;
  const y = ds.y instanceof Int32Array ? new Int32Array(rows * d) : new Float32Array(rows * d);
  for (let r = 0; r < rows; r++) {
    const i = idx[start + r]!;
    if (i < 0 || i >= ds.length) throw new Error(`sample index ${i} is out of range for a data set of ${ds.length}`);
    x.set(ds.x.subarray(i * f, (i + 1) * f), r * f);
    y.set(ds.y.subarray(i * d, (i + 1) * d), r * d);
  }
  const yShape = ds.y instanceof Int32Array && d === 1 ? [rows] : [rows, d];
  const xShape = ds.sampleShape === null ? [rows, f] : [rows, ...ds.sampleShape];
  return { x: tensor(x, { shape: xShape }), y: tensor(y, { shape: yShape }) };
}

/**
 * Main checks labels against the model's outputs when the spec tells them (a built-in mlp); for a
 * module model the ranks check them here, naming the sample's index in the data set rather than
 * its position in this rank's shard.
 */
function checkLabels(out: Tensor, y: Tensor, idx: Int32Array, start: number, tokens: boolean): void {
  if (out.ndim !== (tokens ? 3 : 2)) return;
  const classes = out.shape.at(-1)!;
  const perSample = y.numel / Math.max(1, y.shape[0] ?? 1);
  for (let i = 0; i < y.numel; i++) {
    const c = y.data[i]!;
    if (c >= 0 && c < classes) continue;
    const sample = idx[start + Math.floor(i / perSample)];
    throw new Error(
      tokens
        ? `target ${i % perSample} of sample ${sample} is ${c}, but the model has ${classes} outputs (its vocabulary)`
        : `the label of sample ${sample} is ${c}, but the model has ${classes} outputs (classes)`,
    );
  }
}

/** Right predictions: the class of the largest output (the last dim) against each label, per sample or per token. */
function countCorrect(out: Tensor, y: Tensor, preds: Int32Array | null, offset: number): number {
  const pred = out.argmax(-1).data as Int32Array;
  let correct = 0;
  for (let i = 0; i < pred.length; i++) {
    if (pred[i] === y.data[i]) correct++;
    if (preds) preds[offset + i] = pred[i]!;
  }
  return correct;
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

interface RunState {
  optCount: number;
  windowNonFinite: boolean;
  halted: boolean;
}

function lrOf(init: WorkerInit, optCount: number): number {
  const base = init.optimizer.options.lr as number;
  return init.schedule ? lrAt(init.schedule, base, optCount) : base;
}

interface StepCtx {
  init: WorkerInit;
  model: nn.Module;
  lossFn: (o: Tensor, y: Tensor) => Tensor;
  ds: SharedDataset;
  batch: Int32Array;
  start: number;
  end: number;
  scalars: Float64Array;
}

type TrainCtx = StepCtx & { block: Float64Array; params: Tensor[]; sync: SharedSmallAllReduce | null };

function trainStep(c: TrainCtx): void {
  const { block, start, end } = c;
  if (block[P.S_ZERO] === 1) for (const p of c.params) p.grad = null; // zeroes the bound slice (lazily)
  try {
    // With synchronised BatchNorm a rank with no samples still runs the step (on padding), or the
    // others would wait for it in the in-step reductions.
    if (end > start || c.sync !== null) forwardBackward(c);
  } finally {
    for (const p of c.params) p.syncGrad(); // the reduction reads the arena directly
  }
}

function forwardBackward(c: TrainCtx): void {
  const { block, start, end, scalars } = c;
  const t0 = performance.now();
  // Padding: the batch's first sample stands in, and everything it contributes is multiplied by 0.
  const padding = end <= start;
  const { x, y } = padding ? gatherRows(c.ds, c.batch, 0, 1) : gatherRows(c.ds, c.batch, start, end);
  c.model.train();
  setSampleContext({ seed: c.init.seed, step: block[P.S_STEP]!, firstSample: start });
  const sync = c.sync;
  if (sync !== null) setBatchNormReducer({ allReduce: (v) => sync.allReduce(v), padding });
  try {
    const out = (c.model.forward as (x: Tensor) => Tensor)(x);
    if (!isTensor(out)) throw new Error("model.forward did not return a Tensor");
    if (c.init.classification && !padding) checkLabels(out, y, c.batch, start, c.init.tokens);
    let lossSum = c.lossFn(out, y);
    if (!isTensor(lossSum) || lossSum.numel !== 1)
      throw new Error("the loss function must return a scalar Tensor (the sum over the shard)");
    if (!padding) {
      const value = lossSum.item();
      scalars[P.R_LOSS] = value;
      if (!Number.isFinite(value)) scalars[P.R_NONFINITE] = 1;
      if (c.init.classification) scalars[P.R_CORRECT] = noGrad(() => countCorrect(out, y, null, 0));
    }
    // The same ops on every rank, padding or not, so the backward passes meet the reductions in one order.
    if (sync !== null) lossSum = lossSum.mul(padding ? 0 : 1);
    lossSum.div(block[P.S_DENOM]!).backward();
    scalars[P.R_T_COMPUTE] = performance.now() - t0;
  } finally {
    if (sync !== null) setBatchNormReducer(null);
    setSampleContext(null);
  }
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

function update(c: {
  init: WorkerInit;
  arena: SharedArena;
  collective: SharedMemoryCollective;
  block: Float64Array;
  state: Float32Array[];
  segStart: number;
  segEnd: number;
  scalars: Float64Array;
  ranks: number;
  optimizerStep: SegmentUpdate | null;
  kernels: WasmKernels | null;
  run: RunState;
  scalarsOf: (rank: number) => Float64Array;
}): void {
  const { arena, block, segStart, segEnd, scalars } = c;
  const t0 = performance.now();
  c.collective.barrier(); // every rank's gradient slice is complete (timed apart: load imbalance)
  const t1 = performance.now();
  // reduce-scatter: after it, segment [segStart, segEnd) of grads slice 0 holds the global gradient.
  const reduced = c.collective.reduceScatter(arena.grads(c.init.rank));
  const sq =
    c.kernels && reduced.buffer === c.kernels.buffer
      ? c.kernels.exports.sumSquares(reduced.byteOffset, segStart, segEnd)
      : partialNorm(reduced, segStart, segEnd, 2);
  scalars[P.R_SQNORM] = sq;
  if (!Number.isFinite(sq)) scalars[P.R_NONFINITE] = 1;
  // A non-finite loss in any of the window's micro-steps, or a non-finite gradient, blocks the update.
  scalars[P.R_WINDOW_NONFINITE] = c.run.windowNonFinite || !Number.isFinite(sq) ? 1 : 0;
  c.collective.barrier(); // every rank's partial norm and flags are written
  let nonFinite = false;
  const partials: number[] = [];
  for (let r = 0; r < c.ranks; r++) {
    const s = c.scalarsOf(r);
    partials.push(s[P.R_SQNORM]!);
    if (s[P.R_WINDOW_NONFINITE] === 1) nonFinite = true;
  }
  const clip = block[P.S_CLIP]!;
  const t2 = performance.now();
  scalars[P.R_T_WAIT] = t1 - t0;
  scalars[P.R_T_REDUCE] = t2 - t1;
  if (nonFinite) {
    // Every rank reads the same flags, so they all skip, and without skipNonFinite all halt.
    scalars[P.R_SKIPPED] = 1;
    if (!c.init.skipNonFinite) c.run.halted = true;
    return;
  }
  const t = c.run.optCount + 1,
    lr = scalars[P.R_LR]!;
  if (clip > 0) scaleRange(reduced, segStart, segEnd, clipCoef(combineNorms(partials, 2), clip));
  if (c.optimizerStep) c.optimizerStep(segStart, segEnd, t, lr);
  else {
    flatStep(c.init.optimizer.name, c.init.optimizer.options as never, {
      params: arena.params,
      grads: reduced,
      state: c.state,
      start: segStart,
      end: segEnd,
      step: t,
      lr,
    });
  }
  c.run.optCount = t;
  scalars[P.R_T_UPDATE] = performance.now() - t2;
}

function evalStep(c: StepCtx & { preds: Int32Array }): void {
  const { start, end, scalars } = c;
  if (end <= start) return;
  const { x, y } = gatherRows(c.ds, c.batch, start, end);
  c.model.eval();
  noGrad(() => {
    const out = (c.model.forward as (x: Tensor) => Tensor)(x);
    if (c.init.classification) checkLabels(out, y, c.batch, start, c.init.tokens);
    scalars[P.R_LOSS] = c.lossFn(out, y).item();
    if (c.init.classification) scalars[P.R_CORRECT] = countCorrect(out, y, c.init.tokens ? null : c.preds, start);
  });
}
