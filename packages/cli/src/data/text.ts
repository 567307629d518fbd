// `--data text:FILE|DIR`: the bytes of a file, or of a folder's regular files in sorted name order,
// as tokens (vocabulary 256, one per byte). The last 10% of the bytes are the validation split.
// Training windows of `context` tokens are drawn at random each epoch, window i of epoch e starting
// at a position drawn from the counter-based generator keyed by (seed, e, i): main draws them, so
// any worker count trains on the same windows, and a resumed run redraws its epoch exactly.
// y is x shifted by one token: the model learns to predict the next byte at every position.
import { closeSync, lstatSync, openSync, readFileSync, readSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { CounterGenerator } from "@threadgrad/core";
import { type DataSplit, type Dataset, sharedInt32 } from "./types.js";

/** One token per byte. */
export const TEXT_VOCAB = 256;
/** The share of the corpus, from its end, held out for validation. */
export const TEXT_VAL_FRACTION = 0.1;
/** A file with a NUL byte among its first this-many bytes is binary, and skipped. */
export const BINARY_PROBE_BYTES = 8192;
/** The largest corpus read (its windows take 8 bytes per training byte in shared memory). */
export const MAX_TEXT_BYTES = 256 * 2 ** 20;
/** The generator stream text windows draw from (augmentation and dropout use others). */
const WINDOW_STREAM = 0x74657874;

/** A corpus as read: its bytes and the files they came from, with what was skipped. */
export interface TextCorpus {
  bytes: Uint8Array;
  files: string[];
  skippedBinary: string[];
  skippedLinks: string[];
}

/** Whether the first BINARY_PROBE_BYTES of a file hold a NUL byte. */
function isBinary(path: string): boolean {
  const fd = openSync(path, "r");
  try {
    const head = new Uint8Array(BINARY_PROBE_BYTES);
    const n = readSync(fd, head, 0, head.length, 0);
    return head.subarray(0, n).includes(0);
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads the corpus at `path`: a text file, or a folder's regular files (not its subfolders), in
 * byte order of their names, skipping symbolic links and binary files.
 * @example readTextCorpus("/usr/share/games/fortunes").files // ["art", "ascii-art", ...]
 */
export function readTextCorpus(path: string): TextCorpus {
  let stat: ReturnType<typeof statSync>;
  try {
    stat = statSync(path);
  } catch {
    throw new Error(`text: ${path} does not exist (expected a text file or a folder of text files)`);
  }
  const corpus: TextCorpus = { bytes: new Uint8Array(0), files: [], skippedBinary: [], skippedLinks: [] };
  let candidates: string[];
  if (stat.isDirectory()) {
    const names = readdirSync(path).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    candidates = [];
    for (const name of names) {
      const file = join(path, name);
      const s = lstatSync(file);
      if (s.isSymbolicLink()) corpus.skippedLinks.push(file);
      else if (s.isFile()) candidates.push(file);
    }
  } else if (stat.isFile()) candidates = [path];
  else throw new Error(`text: ${path} is neither a file nor a folder`);
  let total = 0;
  const parts: Uint8Array[] = [];
  for (const file of candidates) {
    if (isBinary(file)) {
      corpus.skippedBinary.push(file);
      continue;
    }
    const bytes = readFileSync(file);
    total += bytes.length;
    if (total > MAX_TEXT_BYTES)
      throw new Error(`text: ${path} holds more than ${MAX_TEXT_BYTES} bytes of text, the most text: reads`);
    parts.push(bytes);
    corpus.files.push(file);
  }
  corpus.bytes = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    corpus.bytes.set(p, at);
    at += p.length;
  }
  if (total === 0) throw new Error(`text: ${path} holds no text: ${emptyReason(stat.isDirectory(), corpus)}`);
  return corpus;
}

function emptyReason(isFolder: boolean, c: TextCorpus): string {
  if (!isFolder) return c.skippedBinary.length > 0 ? `it is binary (a NUL byte in its first 8 KB)` : "it is empty";
  const skipped = [
    c.skippedBinary.length > 0 ? `${c.skippedBinary.length} binary` : "",
    c.skippedLinks.length > 0 ? `${c.skippedLinks.length} symbolic link${c.skippedLinks.length === 1 ? "" : "s"}` : "",
  ].filter((s) => s !== "");
  return c.files.length > 0
    ? "its text files are empty"
    : `no text file in the folder${skipped.length > 0 ? ` (skipped: ${skipped.join(", ")})` : ""}`;
}

/** The bytes before and after the validation split: the last TEXT_VAL_FRACTION of the corpus. */
export function splitCorpus(bytes: Uint8Array): { train: Uint8Array; val: Uint8Array } {
  const valBytes = Math.floor(bytes.length * TEXT_VAL_FRACTION);
  return { train: bytes.subarray(0, bytes.length - valBytes), val: bytes.subarray(bytes.length - valBytes) };
}

/** Training windows per epoch: as many as the split holds whole contexts. */
export const windowsPerEpoch = (trainBytes: number, context: number): number => Math.floor(trainBytes / context);

/** Where window `index` of `epoch` starts: uniform over 0..bytes - context - 1, keyed by (seed, epoch, index). */
export function windowStart(seed: number, epoch: number, index: number, bytes: number, context: number): number {
  const starts = bytes - context; // a window reads context + 1 bytes: its tokens and the next one
  return Math.floor(new CounterGenerator(seed).uniform(epoch, index, WINDOW_STREAM, 0) * starts);
}

/** Writes window k (tokens bytes[start..start+T), targets shifted by one) into row k of x and y. */
function writeWindow(bytes: Uint8Array, start: number, context: number, x: Int32Array, y: Int32Array, k: number) {
  for (let j = 0; j < context; j++) {
    x[k * context + j] = bytes[start + j]!;
    y[k * context + j] = bytes[start + j + 1]!;
  }
}

/** Redraws a training set's windows for `epoch`, in place (the trainer shares these arrays with its workers). */
export function drawWindows(bytes: Uint8Array, ds: Dataset, seed: number, epoch: number): void {
  const context = ds.features;
  for (let k = 0; k < ds.length; k++) {
    const start = windowStart(seed, epoch, k, bytes.length, context);
    writeWindow(bytes, start, context, ds.x as Int32Array, ds.y as Int32Array, k);
  }
}

/** Token windows as a data set: x ids [length, context], y the next id at each position. */
function tokenSet(name: string, length: number, context: number): Dataset {
  return {
    name,
    x: sharedInt32(length * context),
    y: sharedInt32(length * context),
    length,
    features: context,
    task: "classification",
    numClasses: TEXT_VOCAB,
    isTokens: true,
  };
}

/** The validation windows: consecutive, not overlapping, from the split's start. */
export function validationWindows(val: Uint8Array, context: number, name: string): Dataset {
  const ds = tokenSet(name, Math.floor((val.length - 1) / context), context);
  for (let k = 0; k < ds.length; k++) writeWindow(val, k * context, context, ds.x as Int32Array, ds.y as Int32Array, k);
  return ds;
}

export interface TextOptions {
  /** tokens per window */
  context: number;
  /** keys the training windows */
  seed: number;
}

/**
 * Loads `text:PATH`: training windows (redrawn every epoch, see drawWindows; those of epoch 0 to
 * start with) and the validation windows, which are also the split's test set.
 */
export function loadText(path: string, opts: TextOptions): DataSplit {
  const { context, seed } = opts;
  const corpus = readTextCorpus(path);
  const { train, val } = splitCorpus(corpus.bytes);
  const need = (what: string, bytes: number) =>
    new Error(
      `text: ${path} holds ${corpus.bytes.length} bytes; its ${what}, ${bytes} bytes, needs at least ` +
        `${context + 1} for one window of --context ${context}: give more text or a smaller --context`,
    );
  if (train.length < context + 1) throw need("training split (the first 90%)", train.length);
  if (val.length < context + 1) throw need("validation split (the last 10%)", val.length);
  const trainSet = tokenSet(`text:${path} (train)`, windowsPerEpoch(train.length, context), context);
  trainSet.redraw = (epoch) => drawWindows(train, trainSet, seed, epoch);
  trainSet.redraw(0);
  const warnings: string[] = [];
  const { files, skippedBinary, skippedLinks } = corpus;
  const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;
  if (skippedBinary.length + skippedLinks.length > 0) {
    warnings.push(
      `text: ${path}: read ${plural(files.length, "text file")}, skipped ` +
        `${skippedBinary.length} binary and ${plural(skippedLinks.length, "symbolic link")}`,
    );
  }
  trainSet.warnings = warnings;
  const valSet = validationWindows(val, context, `text:${path} (validation)`);
  return { train: trainSet, test: valSet, val: valSet };
}
