import { existsSync } from "node:fs";
import { loadCsv } from "./csv.js";
import { loadIdxDir } from "./idx.js";
import { loadImageFolder } from "./images.js";
import { loadMnistDigits } from "./mnist-digits.js";
import { loadText } from "./text.js";
import type { CsvDelimiter } from "./csv-records.js";
import type { ImputePolicy } from "./csv.js";
import type { CategoricalColumn, CategoricalSpec } from "./csv-categories.js";
import type { DataSplit, Dataset, Task } from "./types.js";

export {
  loadCsv,
  imputeSplit,
  parseCsv,
  parseCsvChunks,
  CSV_CHUNK_BYTES,
  MAX_AUTO_CLASSES,
  MAX_CSV_CLASSES,
  MAX_CSV_COLUMNS,
  MAX_CSV_VALUES,
  UNCLEAR_TASK_SHARE,
  type CsvOptions,
  type ImputePolicy,
  type LoadCsvOptions,
} from "./csv.js";
export { CSV_DELIMITERS, detectDelimiter, type CsvDelimiter } from "./csv-records.js";
export {
  MAX_CATEGORIES,
  encodeCategories,
  textColumns,
  type CategoricalColumn,
  type CategoricalSpec,
} from "./csv-categories.js";
export {
  encodeIdx,
  loadIdxDir,
  parseIdx,
  readIdxFile,
  IDX_IMAGES_MAGIC,
  IDX_LABELS_MAGIC,
  MAX_IDX_DATA_BYTES,
  type IdxArray,
} from "./idx.js";
export { loadMnistDigits, loadAllDigits, digitsDir, DIGITS_TEST_FRACTION, type DigitsOptions } from "./mnist-digits.js";
export {
  loadImageFolder,
  resizeInto,
  IMAGES_TEST_FRACTION,
  MAX_IMAGE_PIXELS,
  type ImageFolderOptions,
} from "./images.js";
export { holdOut, shuffledIndices, splitDataset, takeRows } from "./shuffle.js";
export {
  loadText,
  readTextCorpus,
  splitCorpus,
  validationWindows,
  windowStart,
  windowsPerEpoch,
  BINARY_PROBE_BYTES,
  MAX_TEXT_BYTES,
  TEXT_VAL_FRACTION,
  TEXT_VOCAB,
  type TextCorpus,
  type TextOptions,
} from "./text.js";
export { sharedFloat32, sharedInt32, type DataSplit, type Dataset, type Task } from "./types.js";

/** Where Debian's `dataset-fashion-mnist` package installs the four gzipped IDX files. */
export const FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist";
export const FASHION_MNIST_CLASSES = [
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
];
export const DEFAULT_DATASET = "digits";
export const DATASET_FORMS = [
  "digits",
  "idx:DIR",
  "mnist:DIR",
  "fashion-mnist[:DIR]",
  "csv:FILE",
  "images:DIR",
  "text:FILE|DIR",
];
const SCHEMES = ["digits", "idx", "mnist", "fashion-mnist", "csv", "images", "text"];

export interface LoadDatasetOptions {
  /** csv only: the column to predict. */
  target?: string;
  /** csv only; other sets are classification. */
  task?: Task;
  /** images only: [height, width] every image is resized to (default: the first image's size). */
  imageSize?: number[];
  /** Test fraction for digits, csv and images; IDX sets ignore it, their files already split train and test. */
  testSplit?: number;
  /** Seed of the train/test shuffle, default 0. */
  seed?: number;
  /** csv classification: the class names a model was trained on, to map the labels into. */
  classes?: readonly string[];
  /** csv only: the field separator, default `auto` (detected from the first lines). */
  delimiter?: CsvDelimiter | "auto";
  /** csv only: what to do with empty feature cells (see CsvOptions.impute); default: refuse them. */
  impute?: ImputePolicy;
  /** csv only: the categorical feature columns (see CsvOptions.categorical); default none. */
  categorical?: CategoricalSpec;
  /** csv only: a trained model's categories, instead of those of the training rows (LoadCsvOptions). */
  categories?: readonly CategoricalColumn[];
  /** text only: tokens per window, and the seed of the training windows (the run's --seed) */
  text?: { context: number; seed: number };
}

function fashionMnist(dir: string | undefined): DataSplit {
  const folder = dir ?? FASHION_MNIST_DIR;
  if (!existsSync(folder)) {
    throw new Error(
      `data: Fashion-MNIST not found in ${folder}; install it with \`apt-get install dataset-fashion-mnist\` ` +
        `(files go to ${FASHION_MNIST_DIR}) or pass a folder of IDX files as fashion-mnist:DIR`,
    );
  }
  return loadIdxDir(folder, "fashion-mnist", FASHION_MNIST_CLASSES);
}

function requireArg(scheme: string, arg: string | undefined, what: string): string {
  if (!arg) throw new Error(`data: "${scheme}:" needs a ${what}, as in ${scheme}:${what.toUpperCase()}`);
  return arg;
}

function checkOptions(scheme: string, opts: LoadDatasetOptions): void {
  if (opts.imageSize !== undefined && scheme !== "images")
    throw new Error(`data: --image-size only applies to images:DIR, not ${scheme}`);
  if (scheme === "csv") {
    if (!opts.target) throw new Error(`data: csv:FILE needs --target COLUMN, the column to predict`);
    return;
  }
  if (opts.target !== undefined) throw new Error(`data: --target only applies to csv:FILE, not ${scheme}`);
  if (opts.delimiter !== undefined) throw new Error(`data: --delimiter only applies to csv:FILE, not ${scheme}`);
  if (opts.impute !== undefined) throw new Error(`data: --impute only applies to csv:FILE, not ${scheme}`);
  if (opts.categorical !== undefined) throw new Error(`data: --categorical only applies to csv:FILE, not ${scheme}`);
  if (opts.task === "regression") throw new Error(`data: ${scheme} is a classification set, not regression`);
}

/**
 * Loads a data set named on the command line: `digits` (the built-in, the default), `idx:DIR`,
 * `mnist:DIR`, `fashion-mnist[:DIR]`, `csv:FILE` or `images:DIR` (a subfolder of PNG/JPEG files per class).
 * @example loadDataset("csv:houses.csv", { target: "price", testSplit: 0.1, seed: 7 })
 */
export function loadDataset(spec: string = DEFAULT_DATASET, opts: LoadDatasetOptions = {}): DataSplit {
  const colon = spec.indexOf(":");
  const scheme = colon < 0 ? spec : spec.slice(0, colon);
  const arg = colon < 0 ? undefined : spec.slice(colon + 1);
  if (!SCHEMES.includes(scheme)) {
    throw new Error(`data: unknown data set "${spec}"; use one of ${DATASET_FORMS.join(", ")}`);
  }
  checkOptions(scheme, opts);
  switch (scheme) {
    case "digits":
      if (arg !== undefined) throw new Error(`data: "digits" takes no argument, got "${spec}"`);
      return loadMnistDigits({ testSplit: opts.testSplit, seed: opts.seed });
    case "idx":
      return loadIdxDir(requireArg(scheme, arg, "dir"), `idx:${arg}`);
    case "mnist":
      return loadIdxDir(
        requireArg(scheme, arg, "dir"),
        "mnist",
        Array.from({ length: 10 }, (_, d) => String(d)),
      );
    case "fashion-mnist":
      if (arg === "")
        throw new Error(
          `data: "fashion-mnist:" needs a dir, as in fashion-mnist:DIR (or fashion-mnist for ${FASHION_MNIST_DIR})`,
        );
      return fashionMnist(arg);
    case "csv":
      return loadCsv(requireArg(scheme, arg, "file"), {
        target: opts.target as string,
        task: opts.task,
        delimiter: opts.delimiter,
        impute: opts.impute,
        categorical: opts.categorical,
        categories: opts.categories,
        testSplit: opts.testSplit,
        seed: opts.seed,
        classes: opts.classes,
      });
    case "text": {
      const path = requireArg(scheme, arg, "file");
      if (opts.text === undefined) throw new Error(`data: text:${path} needs a context (tokens per window)`);
      return loadText(path, opts.text);
    }
    case "images":
      return loadImageFolder(requireArg(scheme, arg, "dir"), {
        imageSize: opts.imageSize,
        testSplit: opts.testSplit,
        seed: opts.seed,
      });
    default:
      throw new Error(`data: scheme "${scheme}" is listed but not handled`);
  }
}

function rowOrigin(ds: Dataset, row: number): string {
  const line = ds.lineNumbers?.[row];
  return line === undefined ? "" : ` (line ${line})`;
}

/**
 * Throws before training when a label cannot match the model's output: a class index outside
 * 0..numOutputs-1, or a regression set fed to a model without exactly one output. Rows are 0-based.
 * @example checkLabels(split.train, 10)
 */
export function checkLabels(ds: Dataset, numOutputs: number): void {
  if (ds.task === "regression") {
    if (numOutputs !== 1) {
      throw new Error(`data: ${ds.name} has one regression target per row, but the model has ${numOutputs} outputs`);
    }
    return;
  }
  for (let row = 0; row < ds.length; row++) {
    const label = ds.y[row]!;
    if (label < 0 || label >= numOutputs) {
      throw new Error(
        `data: label ${label} at row ${row}${rowOrigin(ds, row)} of ${ds.name} is out of range ` +
          `for a model with ${numOutputs} outputs`,
      );
    }
  }
}
