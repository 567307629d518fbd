// `threadgrad predict --checkpoint FILE --data SPEC [--out FILE]`: the model's prediction for every
// input row, as CSV (header row, one row per input, in input order) or JSON lines. A csv is streamed
// through the model a batch at a time, so it may be larger than memory; its target column, if
// present, is ignored. The run's preprocessing stored in the checkpoint is applied to the inputs,
// and predictions come back as class names or as values in the target's units.
import { closeSync, fstatSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { Command } from "commander";
import { type TrainerCheckpoint, loadModel, predictOutputs, readTrainerCheckpoint } from "@threadgrad/workers";
import type { nn } from "@threadgrad/core";
import type { CategoricalColumn } from "../data/csv-categories.js";
import { CsvTokenizer, type CsvSink } from "../data/csv-records.js";
import { describeColumn, isShownName } from "../data/csv-task.js";
import { MAX_CSV_COLUMNS, readChunks, readDecimal } from "../data/csv.js";
import { loadDataset } from "../data/index.js";
import { type Preprocess, applyScaling, toTargetUnits } from "../data/preprocess.js";
import { EXIT_OK, UsageError, asUsage } from "../errors.js";
import { absoluteDataSpec, parserOf, readStoredRun } from "../settings.js";
import { moduleToLoad } from "../stored-run.js";
import { ValueError, isModuleModel, parseChoice, parseModel } from "../values.js";

/** What turns model outputs into output rows. */
interface Decoder {
  /** column names, the prediction last */
  header: string[];
  /** output width of the model */
  width: number;
  /** the row's values, in header order */
  row(out: Float32Array): (string | number)[];
}

const isClassification = (loss: unknown): boolean =>
  loss === "crossEntropy" ||
  (typeof loss === "object" && loss !== null && "name" in loss && loss.name === "crossEntropy");

/** A CSV field, quoted when it holds a comma, quote, line break or edge spaces. */
export function csvField(v: string | number): string {
  const text = String(v);
  return /[",\r\n]|^\s|\s$/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

const short = (v: number, digits: number): number => Number(v.toPrecision(digits));

function decoder(ckpt: TrainerCheckpoint, pre: Preprocess | null, width: number, proba: boolean): Decoder {
  const target = pre?.targetName ?? "prediction";
  if (!isClassification(ckpt.config.loss)) {
    if (proba) throw new UsageError(`--proba needs a classification model; ${ckpt.path} predicts a number`);
    return { header: [target], width, row: (out) => [short(pre ? toTargetUnits(pre, out[0]!) : out[0]!, 7)] };
  }
  const names = Array.from({ length: width }, (_, c) => pre?.classes?.[c] ?? String(c));
  const header = proba ? [...names.map((n) => `p(${n})`), target] : [target];
  return {
    header,
    width,
    row(out) {
      let best = 0;
      for (let c = 1; c < width; c++) if (out[c]! > out[best]!) best = c;
      if (!proba) return [names[best]!];
      // Softmax, shifted by the largest logit so no exp overflows.
      const exps = Array.from(out, (v) => Math.exp(v - out[best]!));
      const total = exps.reduce((a, b) => a + b, 0);
      return [...exps.map((e) => short(e / total, 6)), names[best]!];
    },
  };
}

/** Where output text goes: a file written whole or not at all, or stdout (waiting when the pipe is full). */
class Output {
  private readonly fd: number | null;
  private readonly temp: string | null;
  /** a failed stdout write (EPIPE when the reader, say `head`, has gone) */
  private failure: Error | null = null;
  private readonly onError = (err: Error) => {
    this.failure = err;
  };

  constructor(
    private readonly out: string | null,
    force: boolean,
  ) {
    if (out === null) {
      this.fd = null;
      this.temp = null;
      process.stdout.on("error", this.onError);
      return;
    }
    this.temp = `${out}.partial-${process.pid}`;
    try {
      if (!force) {
        // Checked here for the command line's wording; the rename below replaces only with --force.
        let exists = true;
        try {
          closeSync(openSync(out, "r"));
        } catch {
          exists = false;
        }
        if (exists) throw new UsageError(`--out ${out} already exists; pass --force to replace it`);
      }
      this.fd = openSync(this.temp, "wx");
    } catch (err) {
      if (err instanceof UsageError) throw err;
      throw new UsageError(`--out: cannot write ${out} (${(err as Error).message})`);
    }
  }

  async write(text: string): Promise<void> {
    if (text === "") return;
    if (this.fd !== null) {
      writeSync(this.fd, text);
      return;
    }
    this.check();
    if (!process.stdout.write(text)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          process.stdout.off("drain", done).off("error", done);
          resolve();
        };
        process.stdout.once("drain", done).once("error", done);
      });
    }
    this.check();
  }

  private check(): void {
    if (this.failure !== null) throw new Error(`predict: cannot write to stdout (${this.failure.message})`);
  }

  /** Renames the finished file into place; `ok` false removes the partial one instead. */
  finish(ok: boolean): void {
    if (this.fd === null) {
      process.stdout.off("error", this.onError);
      return;
    }
    closeSync(this.fd);
    if (ok) renameSync(this.temp!, this.out!);
    else rmSync(this.temp!, { force: true });
  }
}

/** Formats one batch of outputs as CSV rows or JSON lines. */
function formatRows(outputs: Float32Array, rows: number, dec: Decoder, json: boolean): string {
  let text = "";
  for (let r = 0; r < rows; r++) {
    const values = dec.row(outputs.subarray(r * dec.width, (r + 1) * dec.width));
    text += json
      ? `${JSON.stringify(Object.fromEntries(dec.header.map((h, i) => [h, values[i]])))}\n`
      : `${values.map(csvField).join(",")}\n`;
  }
  return text;
}

interface Run {
  model: nn.Module;
  pre: Preprocess | null;
  /** the run's one-hot columns and their categories, as fitted on its training rows */
  categories: CategoricalColumn[] | null;
  dec: Decoder;
  features: number;
  batchSize: number;
  json: boolean;
  output: Output;
  /** the CSV header line ("" for JSON lines), written once the input is known to be readable */
  headerText: string;
}

/**
 * Streams a csv through the model: header checked against the trained feature columns, each row's
 * features parsed into a batch buffer, and every full batch predicted and formatted at once.
 */
class PredictSink implements CsvSink {
  private names: string[] = [];
  private hasHeader = false;
  /** per file column: its model input index, or -1 for the ignored target */
  private slot: Int32Array = new Int32Array(0);
  /** per file column read as categories: category → its one-hot input (from slot), and their count */
  private oneHot: ({ codes: Map<string, number>; width: number } | undefined)[] = [];
  private readonly batch: Float32Array;
  private filled = 0;
  rows = 0;
  pending = "";

  constructor(
    private readonly file: string,
    private readonly run: Run,
  ) {
    this.batch = new Float32Array(run.batchSize * run.features);
  }

  field(text: string, index: number, line: number): void {
    if (!this.hasHeader) {
      if (index === MAX_CSV_COLUMNS)
        throw new Error(`csv: ${this.file} line ${line}: the header has more than ${MAX_CSV_COLUMNS} columns`);
      this.names.push(text.trim());
      return;
    }
    if (index >= this.names.length) return;
    const to = this.slot[index]!;
    if (to < 0) return;
    const row = this.filled * this.run.features;
    const hot = this.oneHot[index];
    if (hot !== undefined) {
      // A category the training rows never had, or an empty cell, sets none of the column's inputs.
      this.batch.fill(0, row + to, row + to + hot.width);
      const at = hot.codes.get(text.trim());
      if (at !== undefined) this.batch[row + to + at] = 1;
      return;
    }
    const value = readDecimal(text);
    if (typeof value === "string")
      throw new Error(`csv: ${this.file} line ${line}, ${describeColumn(this.names, index)}: ${value}`);
    this.batch[row + to] = value;
  }

  endRecord(count: number, line: number): void {
    if (!this.hasHeader) {
      this.readHeader();
      return;
    }
    if (count !== this.names.length)
      throw new Error(`csv: ${this.file} line ${line} has ${count} fields, but the header has ${this.names.length}`);
    this.filled++;
    if (this.filled === this.run.batchSize) this.flush();
  }

  /** Predicts the rows in the batch buffer and queues their output text. */
  flush(): void {
    const n = this.filled;
    if (n === 0) return;
    const x = this.batch.subarray(0, n * this.run.features);
    if (this.run.pre?.features) applyScaling(x, this.run.pre.features);
    const out = predictOutputs(this.run.model, x, { sampleShape: [this.run.features] });
    this.pending += formatRows(out, n, this.run.dec, this.run.json);
    this.rows += n;
    this.filled = 0;
  }

  private readHeader(): void {
    const { names, file, run } = this;
    const trained = run.pre?.featureNames ?? null;
    const target = run.pre?.targetName;
    const show = (list: string[]) => (list.every(isShownName) ? list.join(", ") : `${list.length} columns`);
    const seen = new Set<string>();
    const covered = new Set<string>();
    this.slot = new Int32Array(names.length).fill(-1);
    // A one-hot column's inputs are named `column=category`: the file has the column itself.
    const categorical = new Map((trained === null ? null : run.categories)?.map((c) => [c.name, c]));
    const owner = new Map([...categorical.values()].flatMap((c) => c.values.map((v) => [`${c.name}=${v}`, c.name])));
    const columns = (list: string[]) => [...new Set(list.map((n) => owner.get(n) ?? n))];
    names.forEach((name, i) => {
      if (seen.has(name)) throw new Error(`csv: ${file}: ${describeColumn(names, i)} repeats an earlier column's name`);
      seen.add(name);
      const column = categorical.get(name);
      if (trained === null) this.slot[i] = i;
      else if (column !== undefined) {
        this.slot[i] = column.feature;
        this.oneHot[i] = { codes: new Map(column.values.map((v, k) => [v, k])), width: column.values.length };
        for (const v of column.values) covered.add(`${name}=${v}`);
      } else if (name !== target) {
        const at = trained.indexOf(name);
        if (at < 0) {
          const expected = show(columns(trained));
          throw new Error(
            `csv: ${file}: ${describeColumn(names, i)} is not a feature the model was trained on (${expected})`,
          );
        }
        this.slot[i] = at;
      }
    });
    const missing = columns((trained ?? []).filter((n) => !seen.has(n) && !covered.has(n)));
    if (missing.length > 0) throw new Error(`csv: ${file} lacks the feature columns ${show(missing)}`);
    if (trained === null && names.length !== run.features) {
      throw new Error(`csv: ${file} has ${names.length} columns; the model takes ${run.features} features`);
    }
    this.hasHeader = true;
    this.pending = run.headerText;
  }
}

async function predictCsv(file: string, run: Run): Promise<number> {
  // Problems with the file are usage errors (exit 2); a failing output write is not.
  const fd = asUsage(() => {
    try {
      return openSync(file, "r");
    } catch (err) {
      throw new Error(`csv: cannot read ${file} (${(err as Error).message})`);
    }
  });
  try {
    if (!fstatSync(fd).isFile()) throw new UsageError(`csv: ${file} is not a regular file`);
    const sink = new PredictSink(file, run);
    const tokenizer = new CsvTokenizer(file, sink);
    const chunks = readChunks(fd, file)[Symbol.iterator]();
    let isFirst = true;
    for (;;) {
      const next = asUsage(() => chunks.next());
      if (next.done) break;
      const chunk = next.value;
      if (chunk === "") continue;
      asUsage(() => tokenizer.write(isFirst && chunk.charCodeAt(0) === 0xfeff ? chunk.slice(1) : chunk));
      isFirst = false;
      await run.output.write(sink.pending);
      sink.pending = "";
    }
    asUsage(() => {
      tokenizer.end();
      sink.flush();
    });
    await run.output.write(sink.pending);
    if (sink.rows === 0) throw new UsageError(`csv: ${file} has no data rows`);
    return sink.rows;
  } finally {
    closeSync(fd);
  }
}

async function predictImages(spec: string, split: "train" | "test", run: Run): Promise<number> {
  const ds = asUsage(() => loadDataset(spec))[split];
  if (ds.features !== run.features)
    throw new UsageError(`data: ${spec} has ${ds.features} features; the model takes ${run.features}`);
  const { features, batchSize } = run;
  await run.output.write(run.headerText);
  for (let start = 0; start < ds.length; start += batchSize) {
    const n = Math.min(batchSize, ds.length - start);
    const out = predictOutputs(run.model, ds.x.subarray(start * features, (start + n) * features), {
      sampleShape: [features],
    });
    await run.output.write(formatRows(out, n, run.dec, run.json));
  }
  return ds.length;
}

function flag<T>(name: string, read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof ValueError) throw new UsageError(`${name} ${err.message}`);
    throw err;
  }
}

/** Runs `threadgrad predict` with commander's option values; returns the exit status. */
export async function runPredict(cli: Record<string, unknown>): Promise<number> {
  if (typeof cli.checkpoint !== "string") throw new UsageError("--checkpoint FILE is required");
  if (typeof cli.data !== "string") throw new UsageError("--data SPEC is required");
  const path = cli.checkpoint;
  const data = absoluteDataSpec(cli.data, process.cwd());
  const split = flag("--split", () => parseChoice(cli.split ?? "test", ["train", "test"] as const));
  const batchSize = flag("--batch-size", () =>
    cli.batchSize === undefined ? 1024 : parserOf("batchSize")(cli.batchSize),
  );
  const given = flag("--model", () => (cli.model === undefined ? undefined : parseModel(cli.model)));
  if (given !== undefined && !isModuleModel(given))
    throw new UsageError(
      `--model ${cli.model}: predict takes --model only as a module path (./net.mjs[#export]), for a checkpoint ` +
        "of a module's model; a built-in model comes from the checkpoint",
    );
  const ckpt = asUsage(() => readTrainerCheckpoint(path));
  const spec = ckpt.config.model;
  if ("kind" in spec && spec.kind === "gpt")
    throw new UsageError(`predict: ${path} holds a gpt, a token model; generate text from it with threadgrad sample`);
  const stored = readStoredRun(ckpt);
  const pre = stored?.preprocess ?? null;
  const categories = stored?.categories ?? null;
  // A checkpoint never chooses code to import: a module's model is built from the module given with
  // --model (refused without it, naming the module and the flag), then checked against the file.
  const moduleSpec = moduleToLoad(ckpt, given);
  const model = await loadModel(ckpt, moduleSpec === undefined ? {} : { model: moduleSpec }).catch((err: Error) => {
    throw new UsageError(err.message);
  });
  let features: number;
  let outputs: number;
  if ("kind" in spec) {
    outputs = spec.kind === "mlp" ? spec.sizes.at(-1)! : spec.classes;
    features = spec.kind === "mlp" ? spec.sizes[0]! : spec.inChannels * spec.height * spec.width;
  } else {
    // A module's sizes are its own: the inputs are the run's csv features, the outputs what it gives for them.
    const names = pre?.featureNames;
    if (names === undefined || names === null)
      throw new UsageError(
        `predict: ${path} does not record the features its module's model takes (it was trained before ` +
          "threadgrad stored them, or on image data); predict from code with loadModel(path, { model })",
      );
    features = names.length;
    outputs = predictOutputs(model, new Float32Array(features), { sampleShape: [features] }).length;
  }
  const isCsv = data.startsWith("csv:");
  if (isCsv && cli.split !== undefined) throw new UsageError("--split applies to image sets, not csv:FILE");
  const dec = decoder(ckpt, pre, outputs, cli.proba === true);
  const json = cli.json === true;
  const output = new Output(typeof cli.out === "string" ? cli.out : null, cli.force === true);
  let ok = false;
  try {
    const headerText = json ? "" : `${dec.header.map(csvField).join(",")}\n`;
    const run: Run = { model, pre, categories, dec, features, batchSize, json, output, headerText };
    const rows = await (isCsv ? predictCsv(data.slice(4), run) : predictImages(data, split, run));
    ok = true;
    if (typeof cli.out === "string") process.stderr.write(`predict: wrote ${rows} predictions to ${cli.out}\n`);
    return EXIT_OK;
  } finally {
    output.finish(ok);
  }
}

const PREDICT_EXAMPLES = `
Examples:
  $ threadgrad predict --checkpoint runs/<run>/checkpoint-best.msgpack --data csv:new.csv --out preds.csv
  $ threadgrad predict --checkpoint runs/<run>/checkpoint-best.msgpack --data csv:new.csv --proba --json
  $ threadgrad predict --checkpoint runs/<run>/checkpoint-best.msgpack --data digits --split test

Output: a header row, then one row per input in input order; the last column, named after the
target, is the predicted class (its name in the training data) or the value in the target's units.
--proba adds a p(CLASS) column per class before it. The csv needs the feature columns the model was
trained on (any order); its target column, if present, is ignored. Labels are never needed.`;

/** The `predict` subcommand for the program. */
export function predictCommand(onDone: (code: number) => void): Command {
  return new Command("predict")
    .description("predict a checkpoint's outputs for new data (no labels needed)")
    .requiredOption("--checkpoint <file>", "checkpoint written by threadgrad train (required)")
    .requiredOption("--data <spec>", "csv:FILE, or an image set: digits, idx:DIR, mnist:DIR, fashion-mnist[:DIR]")
    .option("--out <file>", "write the CSV here (default: stdout); an existing file is kept unless --force")
    .option("--force", "replace an existing --out file")
    .option("--proba", "classification: add one probability column per class")
    .option("--json", "print one JSON object per input instead of CSV")
    .option("--split <name>", "image sets: predict the test (default) or train split")
    .option("--batch-size <n>", "rows per forward pass (default 1024)")
    .option("--model <module>", "for a checkpoint of a module's model: that module again, ./net.mjs[#export]")
    .addHelpText("after", PREDICT_EXAMPLES)
    .action(async (opts: Record<string, unknown>) => onDone(await runPredict(opts)));
}
