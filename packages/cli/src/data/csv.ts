import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { StringDecoder } from "node:string_decoder";
import {
  type CategoricalColumn,
  CategoricalFound,
  type CategoricalSpec,
  MAX_CATEGORIES,
  encodeCategories,
  textColumns,
} from "./csv-categories.js";
import { type CsvDelimiter, CsvTokenizer, type CsvSink, detectDelimiter } from "./csv-records.js";
import { splitDataset } from "./shuffle.js";
import { MAX_AUTO_CLASSES, chooseTask, describeColumn, isShownName } from "./csv-task.js";
import { sharedFloat32, sharedInt32, type DataSplit, type Dataset, type Task } from "./types.js";

export { MAX_AUTO_CLASSES, UNCLEAR_TASK_SHARE } from "./csv-task.js";

export interface CsvOptions {
  /** Header name of the column to predict; every other column is a numeric feature. */
  target: string;
  /** Default: inferred from the targets, see chooseTask; a column with any text label is classification. */
  task?: Task;
  /**
   * Class names a model was trained on (eval, predict): labels map to their index here, and a label
   * not in the list is an error. Default: the sorted distinct labels of the file.
   */
  classes?: readonly string[];
  /** The field separator; default `auto`: detected from the first lines (detectDelimiter). */
  delimiter?: CsvDelimiter | "auto";
  /**
   * Empty feature cells: `drop` leaves their rows out; `mean` and `median` keep them as NaN here,
   * and loadCsv fills them with the column's statistic over the training rows (imputeSplit).
   * Without a policy an empty cell is an error. An empty target is always one.
   */
  impute?: ImputePolicy;
  /**
   * Feature columns read as categories (one-hot encoded by loadCsv, see encodeCategories): their
   * names, or `auto`: the columns whose non-empty cells are not all decimal numbers. Default none:
   * every feature cell must be a number.
   */
  categorical?: CategoricalSpec;
}

export type ImputePolicy = "mean" | "median" | "drop";

export interface LoadCsvOptions extends CsvOptions {
  /** Fraction of rows held out for testing, default 0.2. */
  testSplit?: number;
  /** Seed for the split's shuffle, default 0. */
  seed?: number;
  /** The categories a model was trained on (eval): used instead of fitting them on the training rows. */
  categories?: readonly CategoricalColumn[];
}

/** Bytes read from a CSV file at a time: memory follows the numbers parsed, not the file's size. */
export const CSV_CHUNK_BYTES = 1 << 20;
/** The most feature values one CSV file may give (2 GiB of float32). */
export const MAX_CSV_VALUES = 2 ** 29;
/** The most columns a header may have: a binary file's first "line" could otherwise hold millions. */
export const MAX_CSV_COLUMNS = 1 << 16;
/** The most distinct text labels a target column may hold (MAX_AUTO_CLASSES unless classification is asked). */
export const MAX_CSV_CLASSES = 1 << 16;

// Optional sign, digits with an optional fraction (or a fraction alone), optional exponent: no hex,
// binary, Infinity, NaN or digit separators, which Number() would accept or turn into something else.
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const NOT_DECIMAL = "not a decimal number (digits with an optional sign, fraction and exponent)";
const TOO_LARGE = "the number is too large for float32 (largest magnitude about 3.4e38)";

/**
 * A cell's number, or what is wrong with it: empty, not a decimal number, or too large for float32.
 * @example readDecimal(" 1e3 ") // 1000
 */
export function readDecimal(raw: string): number | string {
  const text = raw.trim();
  if (text === "") return "the cell is empty";
  if (!DECIMAL.test(text)) return NOT_DECIMAL;
  const value = Number(text);
  // Every value ends up as float32, targets too; past 3.4e38 it would become Infinity.
  return Number.isFinite(Math.fround(value)) ? value : TOO_LARGE;
}

/** A typed array that doubles when full, so parsed values take 4 or 8 bytes each, not a string. */
class Growing<A extends Float32Array | Float64Array | Int32Array> {
  length = 0;
  constructor(
    private data: A,
    private readonly make: (n: number) => A,
  ) {}

  push(value: number): void {
    if (this.length === this.data.length) {
      const next = this.make(Math.max(1024, this.data.length * 2));
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = value;
  }

  values(): A {
    return this.data.subarray(0, this.length) as A;
  }

  /** Forgets the values from `length` on. */
  truncate(length: number): void {
    this.length = Math.min(this.length, length);
  }
}

/** Collects the header and the numbers of each row from a CsvTokenizer. */
class CsvTable implements CsvSink {
  names: string[] = [];
  hasHeader = false;
  targetCol = -1;
  readonly x = new Growing(new Float32Array(0), (n) => new Float32Array(n));
  readonly targets = new Growing(new Float64Array(0), (n) => new Float64Array(n));
  readonly lines = new Growing(new Int32Array(0), (n) => new Int32Array(n));
  /** Per row: the index of its text label in `texts`, or -1 for a numeric target. */
  readonly textIds = new Growing(new Int32Array(0), (n) => new Int32Array(n));
  readonly texts = new Map<string, number>();
  firstTextLine = 0;
  /** rows left out for an empty cell (impute: drop) */
  dropped = 0;
  private hasEmptyCell = false;
  /** per categorical column (index in the file): text → code, in order of first appearance */
  readonly categories = new Map<number, Map<string, number>>();

  constructor(
    readonly file: string,
    readonly target: string,
    readonly impute: ImputePolicy | undefined,
    /** the file's categorical columns by index, or by name (resolved when the header is read) */
    private categorical: Set<number> | readonly string[],
    /** whether text in another feature column means it is categorical too (CategoricalFound) */
    readonly isAuto: boolean,
  ) {}

  field(text: string, index: number, line: number): void {
    if (!this.hasHeader) {
      if (index === MAX_CSV_COLUMNS) {
        throw new Error(`csv: ${this.file} line ${line}: the header has more than ${MAX_CSV_COLUMNS} columns`);
      }
      this.names.push(text.trim());
      return;
    }
    // Fields past the header's width only count; endRecord reports the ragged row.
    if (index >= this.names.length) return;
    if (index === this.targetCol) {
      this.readTarget(text.trim(), line, index);
      return;
    }
    const value = this.parseCell(text, line, index);
    if (index === this.targetCol) this.targets.push(value);
    else {
      if (this.x.length === MAX_CSV_VALUES) {
        throw new Error(`csv: ${this.file} line ${line}: more than ${MAX_CSV_VALUES} feature values`);
      }
      this.x.push(value);
    }
  }

  endRecord(count: number, line: number): void {
    if (!this.hasHeader) {
      this.readHeader(line);
      return;
    }
    if (count !== this.names.length) {
      throw new Error(`csv: ${this.file} line ${line} has ${count} fields, but the header has ${this.names.length}`);
    }
    if (this.hasEmptyCell && this.impute === "drop") {
      // Take the row's values back out: it had a target and one value per feature.
      const rows = this.lines.length;
      this.x.truncate(rows * (this.names.length - 1));
      this.targets.truncate(rows);
      this.textIds.truncate(rows);
      this.dropped++;
    } else this.lines.push(line);
    this.hasEmptyCell = false;
  }

  private parseCell(raw: string, line: number, index: number): number {
    const text = raw.trim();
    if (text === "") {
      if (this.impute === undefined) {
        throw this.cellError(
          line,
          index,
          "the cell is empty (pass --impute mean, median or drop to fill or skip such cells)",
        );
      }
      if (index === this.targetCol && this.impute !== "drop") {
        throw this.cellError(line, index, "the target is empty; only --impute drop skips rows without a target");
      }
      this.hasEmptyCell = true;
      return Number.NaN;
    }
    const codes = this.categories.get(index);
    if (codes !== undefined) {
      let code = codes.get(text);
      if (code === undefined) {
        if (codes.size === MAX_CATEGORIES) {
          throw this.cellError(line, index, `the column has more than ${MAX_CATEGORIES} categories`);
        }
        code = codes.size;
        codes.set(text, code);
      }
      return code;
    }
    if (this.isAuto && index !== this.targetCol && !DECIMAL.test(text)) throw new CategoricalFound();
    const value = readDecimal(text);
    if (typeof value === "string") throw this.cellError(line, index, value);
    return value;
  }

  // A target is a number or, for class labels, any text; texts are kept once each.
  private readTarget(text: string, line: number, index: number): void {
    if (text === "" || DECIMAL.test(text)) {
      this.targets.push(this.parseCell(text, line, index));
      this.textIds.push(-1);
      return;
    }
    let id = this.texts.get(text);
    if (id === undefined) {
      if (this.texts.size === MAX_CSV_CLASSES) {
        throw this.cellError(line, index, `more than ${MAX_CSV_CLASSES} distinct text labels`);
      }
      id = this.texts.size;
      this.texts.set(text, id);
    }
    if (this.firstTextLine === 0) this.firstTextLine = line;
    this.targets.push(Number.NaN);
    this.textIds.push(id);
  }

  labels(): { names: string[]; index: (row: number) => number } | null {
    if (this.texts.size === 0) return null;
    const ids = this.textIds.values();
    const targets = this.targets.values();
    const byText = [...this.texts.keys()];
    const nameOf = (row: number): string => {
      const id = ids[row]!;
      return id >= 0 ? byText[id]! : String(targets[row]);
    };
    const names = new Set<string>(byText);
    for (let row = 0; row < ids.length; row++) if (ids[row]! < 0) names.add(nameOf(row));
    const sorted = [...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const indexOf = new Map(sorted.map((n, i) => [n, i]));
    return { names: sorted, index: (row) => indexOf.get(nameOf(row))! };
  }

  cellError(line: number, index: number, problem: string): Error {
    return new Error(`csv: ${this.file} line ${line}, ${describeColumn(this.names, index)}: ${problem}`);
  }

  private readHeader(line: number): void {
    const { names, file, target } = this;
    const firstOf = new Map<string, number>();
    names.forEach((name, i) => {
      const first = firstOf.get(name);
      if (first !== undefined) {
        const shown = isShownName(name) ? ` ("${name}")` : "";
        throw new Error(`csv: ${file} line ${line}: columns ${first + 1} and ${i + 1} have the same name${shown}`);
      }
      firstOf.set(name, i);
    });
    this.targetCol = firstOf.get(target) ?? -1;
    if (this.targetCol < 0) {
      throw new Error(`csv: ${file} has no target column ${JSON.stringify(target)}${listed(names)}`);
    }
    if (names.length < 2) throw new Error(`csv: ${file} has no feature columns besides ${JSON.stringify(target)}`);
    const columns = new Set<number>();
    for (const c of this.categorical) {
      const index = typeof c === "number" ? c : (firstOf.get(c) ?? -1);
      if (index < 0)
        throw new Error(`csv: ${file}: --categorical names ${JSON.stringify(c)}, which is no column${listed(names)}`);
      if (index === this.targetCol) {
        throw new Error(`csv: ${file}: --categorical names the target column ${JSON.stringify(target)}`);
      }
      columns.add(index);
    }
    this.categorical = columns;
    for (const index of columns) this.categories.set(index, new Map());
    this.hasHeader = true;
  }
}

// The header's names, when they look like column names; a file that is no CSV (a checkpoint can
// name any path) gets only its field count, so its first line is not echoed.
function listed(names: string[]): string {
  if (!names.every(isShownName)) {
    return ` (its first line has ${names.length} fields, not all of which look like column names)`;
  }
  const more = names.length > 20 ? `, ... (${names.length} columns)` : "";
  return ` (columns: ${names.slice(0, 20).join(", ")}${more})`;
}

/**
 * Parses CSV text, given in chunks of any size, with a header row into a data set; errors name the
 * file, line and column.
 * @example parseCsvChunks(["a,b,label\n1,2", ",0\n3,4,1\n"], "toy.csv", { target: "label" }).numClasses // 2
 */
export function parseCsvChunks(chunks: Iterable<string>, file: string, opts: CsvOptions): Dataset {
  const spec = opts.categorical ?? [];
  const found = { delimiter: "," as CsvDelimiter };
  if (spec !== "auto") return parseTable(chunks, file, opts, spec, found);
  try {
    return parseTable(chunks, file, opts, new Set(), found);
  } catch (err) {
    if (!(err instanceof CategoricalFound)) throw err;
  }
  // Text in a feature column: find every such column in one pass, then read the file again.
  return parseTable(chunks, file, opts, textColumns(chunks, file, opts.target, found.delimiter), found);
}

function parseTable(
  chunks: Iterable<string>,
  file: string,
  opts: CsvOptions,
  categorical: Set<number> | readonly string[],
  found: { delimiter: CsvDelimiter },
): Dataset {
  const table = new CsvTable(file, opts.target, opts.impute, categorical, opts.categorical === "auto");
  let tokenizer: CsvTokenizer | null = null;
  for (const chunk of chunks) {
    if (chunk === "") continue;
    if (tokenizer === null) {
      const text = chunk.charCodeAt(0) === 0xfeff ? chunk.slice(1) : chunk;
      const given = opts.delimiter ?? "auto";
      found.delimiter = given === "auto" ? detectDelimiter(text) : given;
      tokenizer = new CsvTokenizer(file, table, found.delimiter);
      tokenizer.write(text);
    } else tokenizer.write(chunk);
  }
  tokenizer?.end();
  if (!table.hasHeader && table.names.length === 0) throw new Error(`csv: ${file} is empty`);
  const length = table.lines.length;
  if (length === 0 && table.dropped > 0) {
    throw new Error(`csv: ${file}: every one of its ${table.dropped} rows has an empty cell (--impute drop)`);
  }
  if (length === 0) throw new Error(`csv: ${file} has a header but no data rows`);
  const features = table.names.length - 1;
  const x = sharedFloat32(length * features);
  x.set(table.x.values());
  const lineNumbers = table.lines.values().slice();
  const column = describeColumn(table.names, table.targetCol);
  const { task, numClasses, classNames, y, warning } = readTargets(table, lineNumbers, opts, column);
  const featureNames = table.names.filter((_, i) => i !== table.targetCol);
  const targetName = table.names[table.targetCol]!;
  const ds: Dataset = { name: file, x, y, length, features, task, numClasses, lineNumbers, featureNames, targetName };
  if (classNames !== undefined) ds.classNames = classNames;
  if (warning !== undefined) ds.warnings = [warning];
  if (table.categories.size > 0) {
    const feature = (column: number) => (column < table.targetCol ? column : column - 1);
    ds.categorical = [...table.categories.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(
        ([column, codes]): CategoricalColumn => ({
          name: table.names[column]!,
          feature: feature(column),
          values: [...codes.keys()],
        }),
      );
  }
  return ds;
}

interface Targets {
  task: Task;
  numClasses: number;
  classNames?: string[];
  y: Int32Array | Float32Array;
  warning?: string;
}

/**
 * Targets as the model sees them: regression values, or class indices 0..K-1 of the sorted
 * distinct labels (numbers in numeric order, text in code-point order), so labels 1..3 make 3
 * classes and "cat"/"dog" make 2; with `opts.classes` the labels map into that list instead.
 */
function readTargets(table: CsvTable, lines: Int32Array, opts: CsvOptions, column: string): Targets {
  const length = lines.length;
  const source = `csv: ${table.file}`;
  const targets = table.targets.values();
  const text = table.labels();
  if (text !== null) {
    if (opts.task === "regression") throw table.cellError(table.firstTextLine, table.targetCol, NOT_DECIMAL);
    if (opts.task === undefined && text.names.length > MAX_AUTO_CLASSES) {
      throw new Error(
        `${source} ${column}: ${text.names.length} distinct labels (more than ${MAX_AUTO_CLASSES}); ` +
          "for that many classes pass --task classification",
      );
    }
    return mapClasses(text.names, text.index, lines, opts.classes, source, column);
  }
  const { task, warning } = chooseTask(targets, lines, opts.task, source, column);
  if (task === "regression") {
    const y = sharedFloat32(length);
    y.set(targets);
    return { task, numClasses: 0, y, warning };
  }
  const distinct = [...new Set(targets)].sort((a, b) => a - b);
  const indexOf = new Map(distinct.map((v, i) => [v, i]));
  const classes = mapClasses(
    distinct.map(String),
    (row) => indexOf.get(targets[row]!)!,
    lines,
    opts.classes,
    source,
    column,
  );
  return { ...classes, warning };
}

function mapClasses(
  names: string[],
  index: (row: number) => number,
  lines: Int32Array,
  classes: readonly string[] | undefined,
  source: string,
  column: string,
): Targets {
  const y = sharedInt32(lines.length);
  if (classes === undefined) {
    for (let row = 0; row < y.length; row++) y[row] = index(row);
    return { task: "classification", numClasses: names.length, classNames: names, y };
  }
  const known = new Map(classes.map((n, i) => [n, i]));
  const into = names.map((n) => known.get(n) ?? -1);
  for (let row = 0; row < y.length; row++) {
    const c = into[index(row)]!;
    if (c < 0) {
      const name = names[index(row)]!;
      const shown = isShownName(name) ? ` "${name}"` : "";
      const list = classes.length <= 20 && classes.every(isShownName) ? `: ${classes.join(", ")}` : "";
      throw new Error(
        `${source} line ${lines[row]}, ${column}: the label${shown} is not one of the ${classes.length} classes ` +
          `the model was trained on${list}`,
      );
    }
    y[row] = c;
  }
  return { task: "classification", numClasses: classes.length, classNames: [...classes], y };
}

/**
 * Parses CSV text with a header row into a data set; errors name the file, line and column.
 * @example parseCsv("a,b,label\n1,2,0\n3,4,1\n", "toy.csv", { target: "label" }).numClasses // 2
 */
export function parseCsv(text: string, file: string, opts: CsvOptions): Dataset {
  return parseCsvChunks([text], file, opts);
}

/**
 * The UTF-8 text of the file at `fd` from its start, CSV_CHUNK_BYTES at a time; a character split
 * between reads stays whole. Each iteration reads the file again (parseCsvChunks may need two passes).
 */
export const readChunks = (fd: number, file: string): Iterable<string> => ({
  [Symbol.iterator]: () => chunksOf(fd, file),
});

function* chunksOf(fd: number, file: string): Generator<string> {
  const decoder = new StringDecoder("utf8");
  const buf = Buffer.alloc(CSV_CHUNK_BYTES);
  for (let position = 0; ; ) {
    let n: number;
    try {
      n = readSync(fd, buf, 0, buf.length, position);
      position += n;
    } catch (err) {
      throw new Error(`csv: cannot read ${file} (${(err as Error).message})`);
    }
    if (n === 0) break;
    yield decoder.write(buf.subarray(0, n));
  }
  yield decoder.end();
}

/**
 * Reads a CSV file in chunks and splits it into train and test by a seeded shuffle.
 * @example loadCsv("iris.csv", { target: "species", testSplit: 0.2, seed: 1 }).test.length // 30 of 150
 */
export function loadCsv(file: string, opts: LoadCsvOptions): DataSplit {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (err) {
    throw new Error(`csv: cannot read ${file} (${(err as Error).message})`);
  }
  let all: Dataset;
  try {
    // A FIFO or device would block or never end.
    if (!fstatSync(fd).isFile()) throw new Error(`csv: ${file} is not a regular file`);
    all = parseCsvChunks(readChunks(fd, file), file, opts);
  } finally {
    closeSync(fd);
  }
  const split = splitDataset(all, opts.testSplit ?? 0.2, opts.seed ?? 0);
  if (opts.impute === "mean" || opts.impute === "median") imputeSplit(split, opts.impute);
  return encodeCategories(split, opts.categories);
}

/**
 * Fills the empty (NaN) feature cells of a split with each column's mean or median over the
 * training rows' values, the same number in train and test; returns the filled columns' values
 * (NaN for a column without empty cells). A column with no value in the training rows is an error.
 * @example imputeSplit(loadCsv("f.csv", { target: "y", impute: "median" }), "median")
 */
export function imputeSplit(split: DataSplit, policy: "mean" | "median"): Float64Array {
  const { train } = split;
  const parts = [train, split.test];
  const features = train.features;
  const fill = new Float64Array(features).fill(Number.NaN);
  // An empty categorical cell stays NaN: encodeCategories makes it all zeros.
  const coded = new Set((train.categorical ?? []).map((c) => c.feature));
  for (let f = 0; f < features; f++) {
    if (coded.has(f)) continue;
    const hasEmpty = parts.some((ds) => {
      for (let r = 0; r < ds.length; r++) if (Number.isNaN(ds.x[r * features + f]!)) return true;
      return false;
    });
    if (!hasEmpty) continue;
    const values: number[] = [];
    for (let r = 0; r < train.length; r++) {
      const v = train.x[r * features + f]!;
      if (!Number.isNaN(v)) values.push(v);
    }
    if (values.length === 0) {
      throw new Error(`csv: ${train.name}: feature ${f + 1} has no value in any training row to take the ${policy} of`);
    }
    fill[f] = policy === "mean" ? values.reduce((a, b) => a + b, 0) / values.length : median(values);
    for (const ds of parts) {
      for (let r = 0; r < ds.length; r++) if (Number.isNaN(ds.x[r * features + f]!)) ds.x[r * features + f] = fill[f]!;
    }
  }
  return fill;
}

function median(values: number[]): number {
  values.sort((a, b) => a - b);
  const mid = values.length >> 1;
  return values.length % 2 === 1 ? values[mid]! : (values[mid - 1]! + values[mid]!) / 2;
}
