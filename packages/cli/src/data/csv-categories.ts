// Categorical feature columns of a CSV file: which columns hold categories (`--categorical`), and
// their one-hot encoding, fitted on the training rows. While parsing, a categorical cell is stored
// as the index of its text in the column's list of texts (in order of first appearance); after the
// train/test split, encodeCategories replaces each such column by one 0/1 column per category seen
// in the training rows, in sorted order. A category the training rows never had (or an empty cell
// under --impute mean or median) encodes as all zeros.
import { type CsvDelimiter, CsvTokenizer } from "./csv-records.js";
import { describeColumn } from "./csv-task.js";
import { sharedFloat32, type DataSplit, type Dataset } from "./types.js";

/** `auto`: a feature column whose non-empty cells are not all decimal numbers; or the named columns. */
export type CategoricalSpec = "auto" | readonly string[];

/** One categorical column of a data set, as parsing leaves it (codes in x) or as encoded (one-hot). */
export interface CategoricalColumn {
  /** the header's name */
  name: string;
  /** parsed: the feature index holding codes; encoded: the first of its one-hot features */
  feature: number;
  /** parsed: the texts the codes stand for; encoded: the categories, one feature each */
  values: string[];
}

/** The most categories one column may have: each becomes a feature. */
export const MAX_CATEGORIES = 1000;
/** Auto-detection refuses a column when at least this share of its cells, but not all, are numbers. */
export const MOSTLY_NUMERIC_SHARE = 0.9;

/** Thrown by the parser when auto-detection meets text in a column it took for numbers. */
export class CategoricalFound extends Error {}

const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/**
 * The feature columns (0-based, in the file) whose non-empty cells are not all decimal numbers,
 * from one pass over `chunks`. A column where most cells but not all are numbers is refused,
 * naming the odd lines: a stray `n/a` must not silently turn a numeric column into categories.
 */
export function textColumns(
  chunks: Iterable<string>,
  file: string,
  target: string,
  delimiter: CsvDelimiter,
): Set<number> {
  const numbers: number[] = [];
  const texts: number[] = [];
  const textLines: number[][] = [];
  let names: string[] = [];
  let header: string[] | null = [];
  const tokenizer = new CsvTokenizer(
    file,
    {
      field: (text, index, line) => {
        if (header !== null) {
          header.push(text.trim());
          return;
        }
        const cell = text.trim();
        if (cell === "" || index >= names.length) return;
        if (DECIMAL.test(cell)) numbers[index] = (numbers[index] ?? 0) + 1;
        else {
          texts[index] = (texts[index] ?? 0) + 1;
          const lines = textLines[index] ?? [];
          textLines[index] = lines;
          if (lines.length < 3) lines.push(line);
        }
      },
      endRecord: () => {
        if (header !== null) {
          names = header;
          header = null;
        }
      },
    },
    delimiter,
  );
  let isFirst = true;
  for (const chunk of chunks) {
    if (chunk === "") continue;
    tokenizer.write(isFirst && chunk.charCodeAt(0) === 0xfeff ? chunk.slice(1) : chunk);
    isFirst = false;
  }
  tokenizer.end();
  const columns = new Set<number>();
  names.forEach((name, index) => {
    const text = texts[index] ?? 0;
    if (name === target || text === 0) return;
    const cells = text + (numbers[index] ?? 0);
    if (cells - text >= MOSTLY_NUMERIC_SHARE * cells) {
      const shown = textLines[index]!.map((l) => `line ${l}`).join(", ");
      throw new Error(
        `csv: ${file} ${describeColumn(names, index)}: ${cells - text} of ${cells} cells are numbers, but ` +
          `${shown}${text > 3 ? ` (and ${text - 3} more)` : ""} ${text === 1 ? "is" : "are"} not; fix ` +
          `${text === 1 ? "it" : "them"}, or pass --categorical ${isSimpleName(name) ? name : "COLUMNS"} ` +
          "to read the column as categories",
      );
    }
    columns.add(index);
  });
  return columns;
}

const isSimpleName = (name: string): boolean => /^[\w.-]{1,64}$/.test(name);

/**
 * Replaces the code columns of a split by one-hot features: categories are those the training rows
 * hold, sorted, or those `given` (a trained model's, by column name); a category not among them
 * encodes as all zeros. Returns the split with new data sets (`categorical` now describes the
 * encoded columns).
 */
export function encodeCategories(split: DataSplit, given?: readonly CategoricalColumn[]): DataSplit {
  const coded = split.train.categorical;
  if (coded === undefined || coded.length === 0) return split;
  const seen = coded.map((c) => {
    if (given !== undefined) {
      const known = given.find((g) => g.name === c.name);
      if (known === undefined) {
        const trained = given.map((g) => JSON.stringify(g.name)).join(", ") || "none";
        throw new Error(
          `csv: ${split.train.name}: column ${JSON.stringify(c.name)} holds categories, but the model was not ` +
            `trained on its categories (its categorical columns: ${trained})`,
        );
      }
      return known.values;
    }
    const present = new Uint8Array(c.values.length);
    for (let r = 0; r < split.train.length; r++) {
      const code = split.train.x[r * split.train.features + c.feature]!;
      if (!Number.isNaN(code)) present[code] = 1;
    }
    return c.values.filter((_, code) => present[code] === 1).sort();
  });
  const encode = (ds: Dataset): Dataset => {
    const oldWidth = ds.features;
    const byFeature = new Map(coded.map((c, i) => [c.feature, i]));
    const width = oldWidth - coded.length + seen.reduce((a, s) => a + s.length, 0);
    const x = sharedFloat32(ds.length * width);
    // Per categorical column: code → position among its one-hot features (-1: not seen in training).
    const slots = coded.map((c, i) => c.values.map((v) => seen[i]!.indexOf(v)));
    const columns: CategoricalColumn[] = [];
    for (let f = 0, out = 0; f < oldWidth; f++) {
      const i = byFeature.get(f);
      if (i !== undefined) columns.push({ name: coded[i]!.name, feature: out, values: seen[i]! });
      out += i === undefined ? 1 : seen[i]!.length;
    }
    for (let r = 0; r < ds.length; r++) {
      let out = r * width;
      for (let f = 0; f < oldWidth; f++) {
        const v = ds.x[r * oldWidth + f]!;
        const i = byFeature.get(f);
        if (i === undefined) {
          x[out++] = v;
          continue;
        }
        const slot = Number.isNaN(v) ? -1 : slots[i]![v]!;
        if (slot >= 0) x[out + slot] = 1;
        out += seen[i]!.length;
      }
    }
    const encoded: Dataset = { ...ds, x, features: width, categorical: columns };
    // Feature names follow the columns: a categorical column gives one `name=value` per category.
    if (ds.featureNames !== undefined) {
      encoded.featureNames = ds.featureNames.flatMap((name, f) => {
        const i = byFeature.get(f);
        return i === undefined ? [name] : seen[i]!.map((value) => `${name}=${value}`);
      });
    }
    return encoded;
  };
  return { ...split, train: encode(split.train), test: encode(split.test) };
}
