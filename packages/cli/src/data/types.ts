// Row-major data sets on shared memory. Worker threads receive x and y and take their shard of rows
// with subarray(), so both must sit on a SharedArrayBuffer: an ArrayBuffer would be copied into
// every worker instead of shared.

import type { CategoricalColumn } from "./csv-categories.js";

export type Task = "classification" | "regression";

/** One table of samples: row i is x[i*features .. (i+1)*features) with target y[i]. */
export interface Dataset {
  /** Shown in error messages, e.g. `fashion-mnist (train)`. */
  name: string;
  /** float32 features, or int32 token ids (text) */
  x: Float32Array | Int32Array;
  /** Class index (Int32Array) for classification, one target per row (Float32Array) for regression. */
  y: Int32Array | Float32Array;
  length: number;
  features: number;
  /**
   * Image sets: each row's shape, [channels, height, width] (the rows stay flat in x, channel-major);
   * absent for tabular data. Built-in image models read their input size from it.
   */
  sampleShape?: number[];
  task: Task;
  /** 0 for regression. */
  numClasses: number;
  /** Class names in index order (csv: the sorted distinct labels). */
  classNames?: string[];
  /** CSV sets only: the header names of the feature columns, in order. */
  featureNames?: string[];
  /** CSV sets only: the header name of the target column. */
  targetName?: string;
  /** CSV sets only: the file line each row came from (header = line 1), so later errors can point into the file. */
  lineNumbers?: Int32Array;
  /** CSV sets only: the categorical columns, as codes (parsed) or one-hot features (encoded). */
  categorical?: CategoricalColumn[];
  /** Token data (text:): x holds int32 ids, `features` per row, and y the next id at each position. */
  isTokens?: boolean;
  /**
   * A training set drawn anew each epoch (text windows): rewrites x and y in place with the rows
   * of `epoch`, the same for any worker count.
   */
  redraw?: (epoch: number) => void;
  /** What loading found doubtful but not wrong (e.g. a guessed task), for the command to show. */
  warnings?: string[];
}

export interface DataSplit {
  train: Dataset;
  test: Dataset;
  /** rows held out of `train` for validation (--val-split), when asked for */
  val?: Dataset;
}

/** A zeroed Float32Array of `n` elements backed by a SharedArrayBuffer, e.g. `sharedFloat32(rows * features)`. */
export function sharedFloat32(n: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(n * Float32Array.BYTES_PER_ELEMENT));
}

/** A zeroed Int32Array of `n` elements backed by a SharedArrayBuffer, e.g. `sharedInt32(rows)`. */
export function sharedInt32(n: number): Int32Array {
  return new Int32Array(new SharedArrayBuffer(n * Int32Array.BYTES_PER_ELEMENT));
}
