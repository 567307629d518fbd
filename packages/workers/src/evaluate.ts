import type { DatasetLike } from "./dataset.js";
import { sumOverProcesses } from "./distributed.js";
import { lossDenominator, targetCount } from "./fit-loop.js";
import * as P from "./protocol.js";
import { isSequenceLoss } from "./sequence-loss.js";
import { isClassification } from "./spec.js";
import type { EvalResult, TrainerParts } from "./trainer-types.js";

/** Rows per evaluation batch for a trainer without a batch size of its own (it has never trained). */
export const DEFAULT_EVAL_BATCH_SIZE = 1024;

/**
 * DataParallel.evaluate: the ranks run the data set in batches, in eval mode; main adds up their
 * results. The batches default to the trainer's own batch size (its last fit's, or the one its
 * checkpoint recorded): a forward that fits wherever a training step does. A larger one can outgrow
 * a rank's step scratch (1,024 images through a cnn on one worker do), and then runs far slower.
 */
export async function runEvaluate(
  t: TrainerParts,
  data: DatasetLike,
  opts: { batchSize?: number },
): Promise<EvalResult> {
  if (t.busy) throw new Error("DataParallel: fit or evaluate is already running");
  t.busy = true;
  try {
    const ds = await t.datasets.register(data);
    const own = t.progress.batchSize > 0 ? t.progress.batchSize : DEFAULT_EVAL_BATCH_SIZE;
    const bs = Math.min(opts.batchSize ?? own, t.options.maxBatchSize);
    if (!Number.isInteger(bs) || bs < 1)
      throw new Error(`DataParallel.evaluate: batchSize must be a positive integer, got ${opts.batchSize}`);
    const classification = isClassification(t.options.loss);
    // A sequence loss predicts a class per token: too many to keep; its accuracy is per token.
    const predictions = classification && !isSequenceLoss(t.options.loss) ? new Int32Array(ds.length) : null;
    let lossSum = 0,
      correct = 0;
    for (let start = 0; start < ds.length; start += bs) {
      const n = Math.min(bs, ds.length - start);
      // Across processes each writes the predictions of its share only: zeros elsewhere, then a sum.
      if (t.processGroup) t.predictions.fill(0, 0, n);
      const slot = await t.channel.command(P.Cmd.EVAL, "evaluation", (b, batch) => {
        for (let i = 0; i < n; i++) batch[i] = start + i;
        b[P.S_BATCH] = n;
        b[P.S_DATASET] = ds.id;
      });
      for (let r = 0; r < t.channel.numWorkers; r++) {
        const s = t.channel.scalars(r, slot);
        lossSum += s[P.R_LOSS]!;
        correct += s[P.R_CORRECT]!;
      }
      if (predictions === null) continue;
      const batchPredictions = t.predictions.subarray(0, n);
      if (t.processGroup) await sumOverProcesses(t.processGroup, batchPredictions);
      predictions.set(batchPredictions, start);
    }
    const all = { length: ds.length } as ArrayLike<number>;
    return {
      loss: lossSum / lossDenominator(t.options.loss, ds, all, (i) => i),
      accuracy: classification ? correct / targetCount(t.options.loss, ds, ds.length) : null,
      samples: ds.length,
      predictions,
    };
  } finally {
    t.busy = false;
  }
}
