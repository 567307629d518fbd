import { describe, expect, it } from "vitest";
import { holdOut, shuffledIndices, splitDataset, takeRows } from "./shuffle.js";
import { sharedFloat32, sharedInt32, type Dataset } from "./types.js";

function toy(length: number): Dataset {
  const x = sharedFloat32(length * 2);
  const y = sharedInt32(length);
  for (let i = 0; i < length; i++) {
    x[2 * i] = i;
    x[2 * i + 1] = -i;
    y[i] = i % 3;
  }
  return { name: "toy", x, y, length, features: 2, task: "classification", numClasses: 3 };
}

describe("shuffledIndices", () => {
  it("gives pinned orders: the same seed must split a data set the same way in every version", () => {
    // Pinned output, not a computed expectation: a change to the generator or the shuffle would
    // silently move rows between a user's train and test splits, so these orders never change.
    expect(Array.from(shuffledIndices(5, 1))).toEqual([4, 2, 1, 0, 3]);
    expect(Array.from(shuffledIndices(10, 42))).toEqual([0, 7, 3, 5, 2, 1, 8, 9, 4, 6]);
    expect(Array.from(shuffledIndices(12, 2026))).toEqual([10, 2, 0, 9, 8, 4, 7, 1, 11, 6, 3, 5]);
  });

  it("is a seeded permutation", () => {
    const order = Array.from(shuffledIndices(100, 7)).sort((a, b) => a - b);
    expect(order).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });
});

describe("splitDataset", () => {
  it("puts round(length * testSplit) rows in test and keeps every row once, features with labels", () => {
    const { train, test } = splitDataset(toy(10), 0.25, 3);
    expect([train.length, test.length]).toEqual([7, 3]);
    expect(train.name).toBe("toy (train)");
    const seen = [...train.x.filter((_, i) => i % 2 === 0), ...test.x.filter((_, i) => i % 2 === 0)];
    expect(seen.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for (const part of [train, test]) {
      for (let r = 0; r < part.length; r++) {
        expect(part.x[2 * r + 1]).toBe(-part.x[2 * r]!);
        expect(part.y[r]).toBe(part.x[2 * r]! % 3);
      }
      expect(part.x.buffer).toBeInstanceOf(SharedArrayBuffer);
      expect(part.y.buffer).toBeInstanceOf(SharedArrayBuffer);
    }
  });

  it("rejects a test fraction outside [0, 1)", () => {
    expect(() => splitDataset(toy(4), 1, 0)).toThrow(/split: testSplit must be in \[0, 1\), got 1/);
    expect(() => splitDataset(toy(4), -0.1, 0)).toThrow(/got -0.1/);
    expect(() => splitDataset(toy(1), 0.9, 0)).toThrow(/leaves no training rows out of 1 in toy/);
  });
});

describe("takeRows", () => {
  it("copies the given rows in order and refuses a row the data set does not have", () => {
    const taken = takeRows(toy(5), Int32Array.from([4, 1]), "two");
    expect([taken.name, taken.length, Array.from(taken.x), Array.from(taken.y)]).toEqual([
      "two",
      2,
      [4, -4, 1, -1],
      [1, 1],
    ]);
    expect(() => takeRows(toy(5), Int32Array.from([0, 5]), "bad")).toThrow(
      /data: takeRows: row 5 is out of range for toy \(5 rows\)/,
    );
    expect(() => takeRows(toy(5), Int32Array.from([-1]), "bad")).toThrow(/row -1 is out of range/);
  });
});

describe("holdOut", () => {
  const labels = (ds: Dataset) => Array.from(ds.y);
  const count = (ys: number[], c: number) => ys.filter((y) => y === c).length;

  it("holds out each class in proportion, seeded, and keeps every row exactly once", () => {
    // 90 rows of class 0, 10 of class 1: an unstratified 10% could easily miss class 1.
    const ds = toy(100);
    for (let i = 0; i < 100; i++) ds.y[i] = i < 90 ? 0 : 1;
    const { kept, held } = holdOut(ds, 0.1, 5);
    expect(held.length).toBe(10);
    expect(count(labels(held), 1)).toBe(1);
    expect(count(labels(kept), 1)).toBe(9);
    const rows = [
      ...Array.from(kept.x).filter((_, i) => i % 2 === 0),
      ...Array.from(held.x).filter((_, i) => i % 2 === 0),
    ];
    expect(rows.sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(held.name).toBe("toy (validation)");
    expect(Array.from(holdOut(ds, 0.1, 5).held.x)).toEqual(Array.from(held.x));
    expect(Array.from(holdOut(ds, 0.1, 6).held.x)).not.toEqual(Array.from(held.x));
  });

  it("rounds the class shares so they add up to the total, largest remainders first", () => {
    const ds = toy(10); // labels 0,1,2,0,1,2,0,1,2,0: 4, 3 and 3 rows
    const { held } = holdOut(ds, 0.5, 0);
    expect(held.length).toBe(5);
    // Shares 2, 1.5 and 1.5: class 1 (the first of the equal remainders) gets the extra row.
    expect([0, 1, 2].map((c) => count(labels(held), c))).toEqual([2, 2, 1]);
  });

  it("splits a regression set without strata", () => {
    const ds = { ...toy(20), task: "regression" as const, numClasses: 0, y: sharedFloat32(20).map((_, i) => i / 2) };
    const { kept, held } = holdOut(ds, 0.25, 1);
    expect([kept.length, held.length]).toEqual([15, 5]);
  });

  it("refuses a fraction that leaves no validation or no training rows, naming the data set", () => {
    expect(() => holdOut(toy(10), 0.01, 0)).toThrow(
      "split: --val-split 0.01 of the 10 training rows of toy leaves no validation rows",
    );
    expect(() => holdOut(toy(1), 0.6, 0)).toThrow("leaves no training rows");
  });
});
