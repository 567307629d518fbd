import { combineNorms } from "@threadgrad/optim";
import type { DatasetLike, SharedDataset } from "./dataset.js";
import { sumOverProcesses } from "./distributed.js";
import * as P from "./protocol.js";
import { isSequenceLoss } from "./sequence-loss.js";
import { type LossSpec, isClassification } from "./spec.js";
import { epochOrder } from "./step-math.js";
import type { EpochLog, FitOptions, FitResult, TrainerParts } from "./trainer-types.js";

// The training loop main runs for DataParallel.fit: it hands steps out through the command channel,
// several at a time, gathers each step's results from the ranks and keeps the progress.

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

/**
 * The global denominator that turns the ranks' summed losses into the mean loss over `indices`:
 * the sample count, times the target size for MSE, or the summed class weights of the targets.
 */
export function lossDenominator(
  loss: LossSpec,
  ds: SharedDataset,
  indices: ArrayLike<number>,
  sample: (i: number) => number = (i) => indices[i]!,
): number {
  if (loss === "mse" || isSequenceLoss(loss)) return indices.length * ds.targetDim;
  if (typeof loss === "object" && "name" in loss && loss.weight) {
    let total = 0;
    for (let i = 0; i < indices.length; i++) total += loss.weight[ds.y[sample(i)]!] ?? 0;
    return total;
  }
  return indices.length;
}

/** The class labels in `samples` samples: one per token for a sequence loss, else one per sample. */
export function targetCount(loss: LossSpec, ds: SharedDataset, samples: number): number {
  return isSequenceLoss(loss) ? samples * ds.targetDim : samples;
}

export async function runFit(t: TrainerParts, data: DatasetLike, opts: FitOptions): Promise<FitResult> {
  if (t.busy) throw new Error("DataParallel: fit or evaluate is already running");
  const { epochs, batchSize, signal } = opts;
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > t.options.maxBatchSize) {
    throw new Error(
      `DataParallel.fit: batchSize must be an integer from 1 to ${t.options.maxBatchSize} (maxBatchSize), got ${batchSize}`,
    );
  }
  if (!Number.isInteger(epochs) || epochs < 0)
    throw new Error(`DataParallel.fit: epochs must be a non-negative integer, got ${epochs}`);
  t.busy = true;
  try {
    const ds = await t.datasets.register(data);
    const stepsPerEpoch = Math.ceil(ds.length / batchSize);
    const k = t.options.accumulateSteps;
    const pr = t.progress;
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
    let isStopAsked = false;
    while (pr.epoch < epochs) {
      const order = epochOrder(ds.length, t.options.seed, pr.epoch);
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
          if (refill && !stopping && next < stepsPerEpoch) isStopAsked = await stopAsked(t, signal, isStopAsked);
          while (refill && !stopping && pending.length < t.channel.slots && next < stepsPerEpoch) {
            const stop = isStopAsked || pr.globalStep + pending.length + 1 > until;
            if (stop && next % k === 0) stopping = true;
            else pending.push(publishStep(t, ds, order, next++, batchSize, stepsPerEpoch, pending.length === 0));
          }
          const step = pending.shift();
          if (step === undefined) break;
          if (pending.length > 0) await t.channel.waitForNewest(`step ${pending.at(-1)!.globalStep + 1}`);
          const info = await finishStep(t, ds, step);
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
          if (t.channel.closed || t.channel.inFlight.length === 0) break;
          const slot = await t.channel.completeOldest("finishing the steps in flight").catch(() => null);
          // After any other error (onStep threw, say) the ranks ran these steps: count them, so
          // progress matches the parameters, up to a non-finite one (which halted the ranks).
          if (nonFinite || slot === null || t.channel.scalars(0, slot)[P.R_RAN] !== 1) continue;
          if (!t.options.skipNonFinite && t.channel.anyNonFinite(slot)) {
            nonFinite = true;
            continue;
          }
          pr.globalStep++;
          pr.stepInEpoch++;
          if (step.update && t.channel.scalars(0, slot)[P.R_SKIPPED] !== 1) pr.optimizerStep++;
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
        accuracy: isClassification(t.options.loss) ? tally.correct / tally.samples : null,
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
    t.busy = false;
  }
}

/**
 * Whether fit stops at this refill: its signal is aborted or the trainer is closing (`already`: it
 * was so at an earlier refill). Across processes the answer is every process's: each asks at the
 * same refill (they hand out the same steps), so one process's stop request stops them all after
 * the same step, and none waits at a collective for a process that has stopped.
 */
async function stopAsked(t: TrainerParts, signal: AbortSignal | undefined, already: boolean): Promise<boolean> {
  const isAsked = already || signal?.aborted === true || t.closing;
  if (t.processGroup === null) return isAsked;
  const cell = Int32Array.of(isAsked ? 1 : 0);
  await sumOverProcesses(t.processGroup, cell);
  return cell[0]! > 0;
}

/** Hands step `s` of the epoch to the workers; `isSync`: nothing is in flight, main's counts are current. */
function publishStep(
  t: TrainerParts,
  ds: SharedDataset,
  order: Int32Array,
  s: number,
  batchSize: number,
  stepsPerEpoch: number,
  isSync: boolean,
): PendingStep {
  const k = t.options.accumulateSteps;
  const indices = order.subarray(s * batchSize, Math.min(ds.length, (s + 1) * batchSize));
  // An accumulation window is k consecutive micro-steps of one epoch; the last may be shorter.
  const windowStart = s - (s % k);
  const windowEnd = Math.min(stepsPerEpoch, windowStart + k);
  const update = s + 1 === windowEnd;
  const window = order.subarray(windowStart * batchSize, Math.min(ds.length, windowEnd * batchSize));
  const globalStep = t.progress.globalStep + t.channel.inFlight.length;
  t.channel.publish(P.Cmd.TRAIN, (b, batch) => {
    batch.set(indices);
    b[P.S_BATCH] = indices.length;
    b[P.S_DENOM] = lossDenominator(t.options.loss, ds, window);
    b[P.S_OPT_COUNT] = isSync ? t.progress.optimizerStep : -1;
    b[P.S_ZERO] = s === windowStart ? 1 : 0;
    b[P.S_UPDATE] = update ? 1 : 0;
    b[P.S_STEP] = globalStep;
    b[P.S_DATASET] = ds.id;
    b[P.S_CLIP] = t.options.clipGradNorm ?? 0;
    b[P.S_LR_SCALE] = t.progress.lrScale ?? 1;
  });
  return { indices, update, globalStep };
}

/** Waits for the oldest step in flight and gathers the ranks' results. */
async function finishStep(t: TrainerParts, ds: SharedDataset, step: PendingStep) {
  const slot = await t.channel.completeOldest(`step ${step.globalStep + 1}`);
  let lossSum = 0,
    correct = 0,
    nonFinite = false;
  const partials: number[] = [];
  const timings = { computeMs: 0, waitMs: 0, reduceMs: 0, updateMs: 0 };
  let finishedAt = 0;
  for (let r = 0; r < t.channel.numWorkers; r++) {
    const s = t.channel.scalars(r, slot);
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
  const first = t.channel.scalars(0, slot);
  const skipped = step.update && first[P.R_SKIPPED] === 1;
  const loss = lossSum / lossDenominator(t.options.loss, ds, step.indices);
  if (nonFinite && !t.options.skipNonFinite) {
    const k = t.options.accumulateSteps;
    const redo =
      k > 1
        ? ` (the next fit recomputes its accumulation window from step ${step.globalStep + 1 - (t.progress.stepInEpoch % k)})`
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
    accuracy: isClassification(t.options.loss) ? correct / targetCount(t.options.loss, ds, step.indices.length) : null,
    gradNorm: step.update ? combineNorms(partials, 2) : null,
  };
}
