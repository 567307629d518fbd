import { readFileSync } from "node:fs";
import { readCsvRecords, type CsvRecord } from "./csv-records.js";
import { splitDataset } from "./shuffle.js";
import { sharedFloat32, sharedInt32, type DataSplit, type Dataset, type Task } from "./types.js";

export interface CsvOptions {
  /** Header name of the column to predict; every other column is a numeric feature. */
  target: string;
  /** Default: classification when every target is an integer in 0..MAX_AUTO_CLASSES-1, else regression. */
  task?: Task;
}

export interface LoadCsvOptions extends CsvOptions {
  /** Fraction of rows held out for testing, default 0.2. */
  testSplit?: number;
  /** Seed for the split's shuffle, default 0. */
  seed?: number;
}

// Auto-detection caps the class count: integer prices or years would otherwise become a
// classification problem with hundreds of thousands of outputs. task: "classification" lifts it.
export const MAX_AUTO_CLASSES = 1000;

function parseCell(raw: string, file: string, line: number, column: string): number {
  const text = raw.trim();
  const value = Number(text);
  // Number("") is 0 and Number("Infinity") is finite-looking input we never want as data.
  if (text === "" || !Number.isFinite(value)) {
    const shown = text === "" ? "an empty cell" : JSON.stringify(raw);
    throw new Error(`csv: ${file} line ${line}, column "${column}": ${shown} is not a number`);
  }
  return value;
}

function readHeader(records: CsvRecord[], file: string, target: string): { names: string[]; targetCol: number } {
  if (records.length === 0) throw new Error(`csv: ${file} is empty`);
  const names = records[0]!.fields.map((name) => name.trim());
  names.forEach((name, i) => {
    if (names.indexOf(name) !== i) throw new Error(`csv: ${file} line 1: column "${name}" appears twice`);
  });
  const targetCol = names.indexOf(target);
  if (targetCol < 0) {
    throw new Error(`csv: ${file} has no target column "${target}" (columns: ${names.join(", ")})`);
  }
  if (names.length < 2) throw new Error(`csv: ${file} has no feature columns besides "${target}"`);
  if (records.length === 1) throw new Error(`csv: ${file} has a header but no data rows`);
  return { names, targetCol };
}

function chooseTask(targets: Float64Array, requested: Task | undefined): Task {
  if (requested) return requested;
  const isClassLike = targets.every((t) => Number.isInteger(t) && t >= 0 && t < MAX_AUTO_CLASSES);
  return isClassLike ? "classification" : "regression";
}

function checkClassLabels(targets: Float64Array, lines: Int32Array, file: string, column: string): number {
  let largest = 0;
  targets.forEach((t, i) => {
    if (!Number.isInteger(t) || t < 0 || t > 2 ** 31 - 1) {
      throw new Error(
        `csv: ${file} line ${lines[i]}, column "${column}": classification labels must be integers >= 0, got ${t}`,
      );
    }
    largest = Math.max(largest, t);
  });
  return largest + 1;
}

/**
 * Parses CSV text with a header row into a data set; errors name the file, line and column.
 * @example parseCsv("a,b,label\n1,2,0\n3,4,1\n", "toy.csv", { target: "label" }).numClasses // 2
 */
export function parseCsv(text: string, file: string, opts: CsvOptions): Dataset {
  const records = readCsvRecords(text.replace(/^\uFEFF/, ""), file);
  const { names, targetCol } = readHeader(records, file, opts.target);
  const rows = records.slice(1);
  const features = names.length - 1;
  const x = sharedFloat32(rows.length * features);
  const targets = new Float64Array(rows.length);
  const lineNumbers = new Int32Array(rows.length);
  rows.forEach(({ fields, line }, r) => {
    if (fields.length !== names.length) {
      throw new Error(`csv: ${file} line ${line} has ${fields.length} fields, but the header has ${names.length}`);
    }
    lineNumbers[r] = line;
    let f = r * features;
    fields.forEach((raw, c) => {
      const value = parseCell(raw, file, line, names[c]!); // fields.length === names.length, checked above
      if (c === targetCol) targets[r] = value;
      else x[f++] = value;
    });
  });
  const task = chooseTask(targets, opts.task);
  const base = { name: file, x, length: rows.length, features, lineNumbers };
  if (task === "regression") {
    const y = sharedFloat32(rows.length);
    y.set(targets);
    return { ...base, y, task, numClasses: 0 };
  }
  const numClasses = checkClassLabels(targets, lineNumbers, file, opts.target);
  const y = sharedInt32(rows.length);
  y.set(targets);
  return { ...base, y, task, numClasses };
}

/**
 * Reads a CSV file and splits it into train and test by a seeded shuffle.
 * @example loadCsv("iris.csv", { target: "species", testSplit: 0.2, seed: 1 }).test.length // 30 of 150
 */
export function loadCsv(file: string, opts: LoadCsvOptions): DataSplit {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new Error(`csv: cannot read ${file} (${(err as Error).message})`);
  }
  const all = parseCsv(text, file, opts);
  return splitDataset(all, opts.testSplit ?? 0.2, opts.seed ?? 0);
}
