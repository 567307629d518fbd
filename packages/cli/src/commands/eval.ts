// `threadgrad eval --checkpoint FILE`: loss and accuracy of a checkpoint on a data set (by
// default the test set of the data it was trained on), with per-class accuracy and the confusion
// matrix for classification.
import {
  DataParallel,
  type ModelSpec,
  type TrainerCheckpoint,
  readTrainerCheckpoint,
  safeText,
} from "@threadgrad/workers";
import { type Dataset, checkLabels } from "../data/index.js";
import { isShownName } from "../data/csv-task.js";
import { type Preprocess, applyToSplit, mseInTargetUnits } from "../data/preprocess.js";
import { EXIT_FAILED, EXIT_OK, UsageError, asUsage } from "../errors.js";
import { formatPercent } from "../progress.js";
import { evaluationBatchSize, loadRunData } from "../setup.js";
import { DEFAULT_SETTINGS, dataSettings } from "../settings.js";
import { moduleToLoad } from "../stored-run.js";
import { type ModelChoice, isModuleModel, parseChoice, parseModel, parseWorkers } from "../values.js";

/** Rows are true classes, columns predicted ones. */
export function confusionMatrix(
  labels: ArrayLike<number>,
  predictions: ArrayLike<number>,
  numClasses: number,
): number[][] {
  const m = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  for (let i = 0; i < labels.length; i++) m[labels[i]!]![predictions[i]!]!++;
  return m;
}

/** A csv must give the features the model was trained on, in that order. */
function checkColumns(pre: Preprocess | null, ds: Dataset, path: string): void {
  const trained = pre?.featureNames;
  if (!trained || !ds.featureNames || trained.join("\n") === ds.featureNames.join("\n")) return;
  const show = (names: string[]) => (names.every(isShownName) ? names.join(", ") : `${names.length} columns`);
  throw new UsageError(
    `data: ${ds.name} has feature columns ${show(ds.featureNames)}, but ${path} was trained on ${show(trained)}`,
  );
}

function checkModel(model: ModelSpec, ds: Dataset, path: string, data: string): void {
  // Token ids are checked against a language model's vocabulary and context by the trainer.
  if (!("kind" in model) || ds.isTokens || model.kind === "gpt") return;
  if (model.kind !== "mlp") {
    const want = [model.inChannels, model.height, model.width];
    if (ds.sampleShape?.join("×") !== want.join("×")) {
      const has = ds.sampleShape ? `images of ${ds.sampleShape.join("×")}` : `flat rows of ${ds.features} features`;
      throw new UsageError(
        `model: the ${model.kind} in ${path} takes images of ${want.join("×")}, but ${data} has ${has}`,
      );
    }
    asUsage(() => checkLabels(ds, model.classes));
    return;
  }
  if (model.sizes[0] !== ds.features) {
    throw new UsageError(
      `model: the mlp in ${path} takes ${model.sizes[0]} inputs, but ${data} has ${ds.features} features`,
    );
  }
  asUsage(() => checkLabels(ds, model.sizes[model.sizes.length - 1]!));
}

/**
 * The batches training evaluated in (evaluationBatchSize), from the batch size the checkpoint
 * recorded; one saved before it trained counts as trained with the default --batch-size.
 */
function evalBatchSize(ckpt: TrainerCheckpoint, ds: Dataset): number {
  const trained = ckpt.progress.batchSize > 0 ? ckpt.progress.batchSize : DEFAULT_SETTINGS.batchSize;
  return evaluationBatchSize(trained, ds);
}

/** Runs `threadgrad eval` with commander's option values; returns the exit status. */
export async function runEval(cli: Record<string, unknown>): Promise<number> {
  if (typeof cli.checkpoint !== "string") throw new UsageError("--checkpoint FILE is required");
  const path = cli.checkpoint;
  const split = (() => {
    try {
      return parseChoice(cli.split ?? "test", ["train", "test"] as const);
    } catch (e) {
      throw new UsageError(`--split ${(e as Error).message}`);
    }
  })();
  const workers = (() => {
    try {
      return cli.workers === undefined ? "auto" : parseWorkers(cli.workers);
    } catch (e) {
      throw new UsageError(`--workers ${(e as Error).message}`);
    }
  })();
  let given: ModelChoice | undefined;
  try {
    given = cli.model === undefined ? undefined : parseModel(cli.model);
  } catch (e) {
    throw new UsageError(`--model ${(e as Error).message}`);
  }
  if (given !== undefined && !isModuleModel(given))
    throw new UsageError(
      `--model ${cli.model}: eval takes --model only as a module path (./net.mjs[#export]), for a checkpoint ` +
        "of a module's model; a built-in model comes from the checkpoint",
    );
  const ckpt = asUsage(() => readTrainerCheckpoint(path));
  // A module's model is rebuilt from the module given with --model, never from one the file names.
  const model = moduleToLoad(ckpt, given);
  const { settings, stored, isTrainedData } = dataSettings(cli, ckpt, given);
  // The data spec comes from the file: say which data is read, before reading it.
  if (isTrainedData)
    process.stderr.write(
      `eval: reading ${settings.data}, the data ${path} was trained on (--data chooses other data)\n`,
    );
  // The run's preprocessing (scaling fitted on its training split, class names, one-hot categories)
  // applies to any data: the stored categorical columns are read as categories, and encoded as trained.
  const pre = stored?.preprocess ?? null;
  const categories = stored?.categories ?? undefined;
  const data = loadRunData(settings, pre?.classes ?? undefined, categories);
  checkColumns(pre, data.train, path);
  if (pre !== null) applyToSplit(data, pre);
  const ds = data[split];
  checkModel(ckpt.config.model, ds, path, settings.data);
  const trainer = await DataParallel.load(ckpt, { workers, model });
  try {
    const ev = await trainer.evaluate(ds, { batchSize: evalBatchSize(ckpt, ds) });
    const progress = ckpt.progress;
    const result: Record<string, unknown> = {
      checkpoint: path,
      data: settings.data,
      split,
      step: progress.globalStep,
      epoch: progress.epoch,
      samples: ev.samples,
      loss: mseInTargetUnits(pre, ev.loss),
      accuracy: ev.accuracy,
    };
    if (ev.predictions !== null && ds.task === "classification") {
      const matrix = confusionMatrix(ds.y, ev.predictions, ds.numClasses);
      result.perClass = matrix.map((row, c) => {
        const samples = row.reduce((a, b) => a + b, 0);
        return {
          class: c,
          name: ds.classNames?.[c] ?? String(c),
          samples,
          correct: row[c],
          accuracy: samples > 0 ? row[c]! / samples : null,
        };
      });
      result.confusionMatrix = matrix;
    } else if (ds.isTokens) {
      // Text: nats per character, and bits; the test split is the run's validation text.
      result.bpc = ev.loss / Math.LN2;
      if (split === "test") Object.assign(result, { valLoss: ev.loss, valBpc: result.bpc });
    } else {
      result.rmse = Math.sqrt(result.loss as number);
    }
    if (cli.json === true) process.stdout.write(`${JSON.stringify({ event: "eval", ...result })}\n`);
    else for (const line of describe(result, ds)) process.stdout.write(`${line}\n`);
    if (!Number.isFinite(ev.loss)) {
      // The figures are printed (a user may want the accuracy), but a script must not take them as a pass.
      process.stderr.write(
        `threadgrad eval: error: the loss on ${settings.data} (${split}) is ${ev.loss}: ` +
          "the model's outputs overflow or are NaN on this data\n",
      );
      return EXIT_FAILED;
    }
    return EXIT_OK;
  } finally {
    await trainer.close();
  }
}

function describe(r: Record<string, unknown>, ds: Dataset): string[] {
  const lines = [
    `checkpoint ${r.checkpoint} (step ${r.step}, ${r.epoch} epochs done)`,
    `data ${r.data} (${r.split}): ${r.samples} samples`,
    r.accuracy === null
      ? `mse ${Number((r.loss as number).toPrecision(4))}  rmse ${Number((r.rmse as number).toPrecision(4))} (target units)`
      : `loss ${(r.loss as number).toFixed(4)}  accuracy ${formatPercent(r.accuracy as number)}`,
  ];
  if (r.bpc !== undefined) lines.push(`${(r.bpc as number).toFixed(4)} bits per character`);
  const perClass = r.perClass as
    | { class: number; name: string; samples: number; correct: number; accuracy: number | null }[]
    | undefined;
  if (perClass === undefined) return lines;
  // Class names come from the data (or a checkpoint): control characters are shown escaped.
  const names = perClass.map((c) => safeText(c.name));
  const nameWidth = Math.max(5, ...names.map((n) => n.length));
  lines.push("", `${"class".padEnd(nameWidth)}  samples  correct  accuracy`);
  for (const [i, c] of perClass.entries()) {
    lines.push(
      `${names[i]!.padEnd(nameWidth)}  ${String(c.samples).padStart(7)}  ${String(c.correct).padStart(7)}  ` +
        formatPercent(c.accuracy).padStart(8),
    );
  }
  const matrix = r.confusionMatrix as number[][];
  if (ds.numClasses > 30) {
    lines.push("", `confusion matrix: ${ds.numClasses} classes, too wide to print; use --json`);
    return lines;
  }
  const width = Math.max(4, ...matrix.flat().map((v) => String(v).length + 1));
  lines.push("", "confusion matrix (rows: true class, columns: predicted class)");
  lines.push(`${"".padStart(width)}${matrix.map((_, c) => String(c).padStart(width)).join("")}`);
  matrix.forEach((row, c) => {
    lines.push(`${String(c).padStart(width)}${row.map((v) => String(v).padStart(width)).join("")}`);
  });
  return lines;
}
