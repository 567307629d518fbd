import { mulberry32 } from "@threadgrad/core";
import { sharedFloat32, sharedInt32, type DataSplit, type Dataset } from "./types.js";

/**
 * A seeded Fisher–Yates permutation of 0..n-1, from core's mulberry32: splits never depend on
 * Math.random, so the same seed gives the same train/test split on every machine and in every version.
 * @example shuffledIndices(5, 1) // [4, 2, 1, 0, 3]
 */
export function shuffledIndices(n: number, seed: number): Int32Array {
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  const rand = mulberry32(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const tmp = order[i]!;
    order[i] = order[j]!;
    order[j] = tmp;
  }
  return order;
}

/** Copies the given rows, in that order, into a new data set on fresh shared buffers. */
export function takeRows(ds: Dataset, rows: Int32Array, name: string): Dataset {
  const { features } = ds;
  const x = sharedFloat32(rows.length * features);
  const y = ds.y instanceof Int32Array ? sharedInt32(rows.length) : sharedFloat32(rows.length);
  const lineNumbers = ds.lineNumbers ? new Int32Array(rows.length) : undefined;
  // A subarray per row costs more than copying a few values one by one.
  const isNarrow = features < 32;
  rows.forEach((row, i) => {
    const target = ds.y[row];
    if (target === undefined) {
      throw new Error(`data: takeRows: row ${row} is out of range for ${ds.name} (${ds.length} rows)`);
    }
    if (isNarrow) for (let f = 0; f < features; f++) x[i * features + f] = ds.x[row * features + f]!;
    else x.set(ds.x.subarray(row * features, (row + 1) * features), i * features);
    y[i] = target;
    if (lineNumbers && ds.lineNumbers) lineNumbers[i] = ds.lineNumbers[row]!;
  });
  const taken: Dataset = { ...ds, name, x, y, length: rows.length };
  if (lineNumbers) taken.lineNumbers = lineNumbers;
  return taken;
}

/**
 * Shuffles rows with `seed` and puts round(length * testSplit) of them in the test set.
 * @example splitDataset(all, 0.2, 0) // 80% train, 20% test, the same rows every run
 */
export function splitDataset(ds: Dataset, testSplit: number, seed: number): DataSplit {
  if (!(testSplit >= 0 && testSplit < 1)) {
    throw new Error(`split: testSplit must be in [0, 1), got ${testSplit}`);
  }
  if (!Number.isInteger(seed)) throw new Error(`split: seed must be an integer, got ${seed}`);
  const numTest = Math.round(ds.length * testSplit);
  if (numTest >= ds.length) {
    throw new Error(`split: testSplit ${testSplit} leaves no training rows out of ${ds.length} in ${ds.name}`);
  }
  const order = shuffledIndices(ds.length, seed);
  return {
    train: takeRows(ds, order.subarray(numTest), `${ds.name} (train)`),
    test: takeRows(ds, order.subarray(0, numTest), `${ds.name} (test)`),
  };
}

/**
 * Holds out round(length * fraction) rows, shuffled with `seed`. A classification set is
 * stratified: each class gives its own share (rounded so the counts add up to the total, largest
 * remainders first), so a rare class is not left out of either part by chance. Rows keep their
 * order of the shuffle within each part.
 * @example holdOut(train, 0.1, 0) // { kept: 90% of the rows, held: 10%, classes in proportion }
 */
export function holdOut(ds: Dataset, fraction: number, seed: number): { kept: Dataset; held: Dataset } {
  if (!(fraction > 0 && fraction < 1))
    throw new Error(`split: the validation fraction must be in (0, 1), got ${fraction}`);
  const total = Math.round(ds.length * fraction);
  if (total === 0 || total >= ds.length) {
    throw new Error(
      `split: --val-split ${fraction} of the ${ds.length} training rows of ${ds.name} leaves ` +
        `${total === 0 ? "no validation rows" : "no training rows"}`,
    );
  }
  const order = shuffledIndices(ds.length, seed);
  const isHeld = new Uint8Array(ds.length);
  if (ds.task === "classification") {
    const byClass = new Map<number, number[]>();
    for (const row of order) {
      const label = ds.y[row]!;
      const rows = byClass.get(label) ?? [];
      rows.push(row);
      byClass.set(label, rows);
    }
    const classes = [...byClass.entries()].sort((a, b) => a[0] - b[0]);
    const share = classes.map(([, rows]) => rows.length * fraction);
    const counts = share.map(Math.floor);
    let left = total - counts.reduce((a, b) => a + b, 0);
    const byRemainder = share.map((v, i) => [v - Math.floor(v), i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
    for (const [, i] of byRemainder) {
      if (left === 0) break;
      counts[i]!++;
      left--;
    }
    classes.forEach(([, rows], i) => {
      for (const row of rows.slice(0, counts[i])) isHeld[row] = 1;
    });
  } else for (const row of order.subarray(0, total)) isHeld[row] = 1;
  const kept = order.filter((row) => isHeld[row] === 0);
  const held = order.filter((row) => isHeld[row] === 1);
  return {
    kept: takeRows(ds, kept, ds.name),
    held: takeRows(ds, held, `${ds.name.replace(/ \(train\)$/, "")} (validation)`),
  };
}
