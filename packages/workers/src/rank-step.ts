// The steps a rank runs for main's commands: a training micro-step (forward and backward on its
// shard), the update at the end of an accumulation window (reduce, clip, sharded optimizer step),
// and an evaluation batch.
import {
  Tensor,
  type WasmKernels,
  type nn,
  isTensor,
  noGrad,
  segmentSumSquares,
  setBatchNormReducer,
  setSampleContext,
  tensor,
} from "@threadgrad/core";
import { clipCoef, combineNorms, flatStep, lrAt, scaleRange } from "@threadgrad/optim";
import type { SharedArena } from "./arena.js";
import type { Collective } from "./collective.js";
import type { SharedDataset } from "./dataset.js";
import * as P from "./protocol.js";
import type { SegmentUpdate } from "./wasm-arena.js";
import type { WorkerInit } from "./worker-entry.js";
export function gatherRows(ds: SharedDataset, idx: Int32Array, start: number, end: number): { x: Tensor; y: Tensor } {
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
export function checkLabels(out: Tensor, y: Tensor, idx: Int32Array, start: number, tokens: boolean): void {
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
export function countCorrect(out: Tensor, y: Tensor, preds: Int32Array | null, offset: number): number {
  const pred = out.argmax(-1).data as Int32Array;
  let correct = 0;
  for (let i = 0; i < pred.length; i++) {
    if (pred[i] === y.data[i]) correct++;
    if (preds) preds[offset + i] = pred[i]!;
  }
  return correct;
}

export interface RunState {
  optCount: number;
  windowNonFinite: boolean;
  halted: boolean;
}

export function lrOf(init: WorkerInit, optCount: number): number {
  const base = init.optimizer.options.lr as number;
  return init.schedule ? lrAt(init.schedule, base, optCount) : base;
}

export interface StepCtx {
  init: WorkerInit;
  model: nn.Module;
  lossFn: (o: Tensor, y: Tensor) => Tensor;
  ds: SharedDataset;
  batch: Int32Array;
  start: number;
  end: number;
  scalars: Float64Array;
}

/** One virtual shard of a rank's rows and the gradient slice it accumulates into (a view per parameter). */
export interface ShardPart {
  start: number;
  end: number;
  grads: Float32Array[];
}

/**
 * `sync`: the collective BatchNorm reduces its statistics through, when it is synchronised over
 * several ranks. `parts`: the rank's virtual shards, each run on its own into its own gradient
 * slice; null when the rank's rows are one shard accumulating into its one slice.
 */
export type TrainCtx = StepCtx & {
  block: Float64Array;
  params: Tensor[];
  sync: Collective | null;
  parts: ShardPart[] | null;
};

export function trainStep(c: TrainCtx): void {
  if (c.parts === null) {
    shardStep(c);
    return;
  }
  for (const part of c.parts) {
    c.params.forEach((p, i) => {
      p.bindGrad(part.grads[i]!);
    });
    shardStep({ ...c, start: part.start, end: part.end });
  }
}

function shardStep(c: TrainCtx): void {
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

export function forwardBackward(c: TrainCtx): void {
  const { block, start, end, scalars } = c;
  const t0 = performance.now();
  // Padding: the batch's first sample stands in, and everything it contributes is multiplied by 0.
  const padding = end <= start;
  const { x, y } = padding ? gatherRows(c.ds, c.batch, 0, 1) : gatherRows(c.ds, c.batch, start, end);
  c.model.train();
  setSampleContext({ seed: c.init.seed, step: block[P.S_STEP]!, firstSample: start });
  const sync = c.sync;
  if (sync !== null) setBatchNormReducer({ allReduce: (v) => sync.allReduceScalars(v), padding });
  try {
    const out = (c.model.forward as (x: Tensor) => Tensor)(x);
    if (!isTensor(out)) throw new Error("model.forward did not return a Tensor");
    if (c.init.classification && !padding) checkLabels(out, y, c.batch, start, c.init.tokens);
    let lossSum = c.lossFn(out, y);
    if (!isTensor(lossSum) || lossSum.numel !== 1)
      throw new Error("the loss function must return a scalar Tensor (the sum over the shard)");
    // Added up: a rank with virtual shards runs this once per shard (the command zeroed its scalars).
    if (!padding) {
      const value = lossSum.item();
      scalars[P.R_LOSS]! += value;
      if (!Number.isFinite(value)) scalars[P.R_NONFINITE] = 1;
      if (c.init.classification) scalars[P.R_CORRECT]! += noGrad(() => countCorrect(out, y, null, 0));
    }
    // The same ops on every rank, padding or not, so the backward passes meet the reductions in one order.
    if (sync !== null) lossSum = lossSum.mul(padding ? 0 : 1);
    lossSum.div(block[P.S_DENOM]!).backward();
    scalars[P.R_T_COMPUTE]! += performance.now() - t0;
  } finally {
    if (sync !== null) setBatchNormReducer(null);
    setSampleContext(null);
  }
}

export function update(c: {
  init: WorkerInit;
  arena: SharedArena;
  collective: Collective;
  block: Float64Array;
  state: Float32Array[];
  segStart: number;
  segEnd: number;
  scalars: Float64Array;
  optimizerStep: SegmentUpdate | null;
  kernels: WasmKernels | null;
  run: RunState;
}): void {
  const { arena, block, segStart, segEnd, scalars } = c;
  const t0 = performance.now();
  c.collective.barrier(); // every rank's gradient slice is complete (timed apart: load imbalance)
  const t1 = performance.now();
  // reduce-scatter: after it, segment [segStart, segEnd) of grads slice 0 holds the global gradient.
  const reduced = c.collective.reduceScatter(arena.grads(arena.firstSlice(c.init.rank)));
  const sq = segmentSumSquares(reduced, segStart, segEnd, c.kernels);
  scalars[P.R_SQNORM] = sq;
  if (!Number.isFinite(sq)) scalars[P.R_NONFINITE] = 1;
  // A non-finite loss in any of the window's micro-steps, or a non-finite gradient, blocks the update.
  const windowNonFinite = c.run.windowNonFinite || !Number.isFinite(sq);
  // The global squared norm and whether any rank met a non-finite value: summed in rank order, so
  // every rank gets the same bits and takes the same decision.
  // Processes that hold the same segments count their squared norm once (see Collective.replica).
  const totals = Float64Array.of((c.collective.replica ?? 0) === 0 ? sq : 0, windowNonFinite ? 1 : 0);
  c.collective.allReduceScalars(totals);
  const nonFinite = totals[1]! > 0;
  const clip = block[P.S_CLIP]!;
  const t2 = performance.now();
  scalars[P.R_T_WAIT] = t1 - t0;
  scalars[P.R_T_REDUCE] = t2 - t1;
  if (nonFinite) {
    // Every rank has the same totals, so they all skip, and without skipNonFinite all halt.
    scalars[P.R_SKIPPED] = 1;
    if (!c.init.skipNonFinite) c.run.halted = true;
    return;
  }
  const t = c.run.optCount + 1,
    lr = scalars[P.R_LR]!;
  if (clip > 0) scaleRange(reduced, segStart, segEnd, clipCoef(combineNorms([totals[0]!], 2), clip));
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

export function evalStep(c: StepCtx & { preds: Int32Array }): void {
  const { start, end, scalars } = c;
  if (end <= start) return;
  const { x, y } = gatherRows(c.ds, c.batch, start, end);
  c.model.eval();
  noGrad(() => {
    const out = (c.model.forward as (x: Tensor) => Tensor)(x);
    if (c.init.classification) checkLabels(out, y, c.batch, start, c.init.tokens);
    // Added up: with virtual shards a rank evaluates its parts one by one (the command zeroed its scalars).
    scalars[P.R_LOSS]! += c.lossFn(out, y).item();
    if (c.init.classification) scalars[P.R_CORRECT]! += countCorrect(out, y, c.init.tokens ? null : c.preds, start);
  });
}
