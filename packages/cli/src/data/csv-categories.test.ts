import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadCsv, parseCsv } from "./csv.js";

const dir = mkdtempSync(join(tmpdir(), "threadgrad-categories-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function writeCsv(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

/** Rows of a split as [size, one-hot...] arrays, found by their line numbers. */
function rowsByLine(ds: { x: Float32Array | Int32Array; features: number; length: number; lineNumbers?: Int32Array }) {
  const rows = new Map<number, number[]>();
  for (let r = 0; r < ds.length; r++) {
    rows.set(ds.lineNumbers![r]!, Array.from(ds.x.subarray(r * ds.features, (r + 1) * ds.features)));
  }
  return rows;
}

describe("--categorical", () => {
  it("auto one-hot encodes a text column with the training rows' categories, sorted; unseen ones are all zeros", () => {
    // Line 2 holds the only "violet"; seed 2 puts rows 0 and 9 (lines 2 and 11) in the test set.
    const colors = ["violet", "red", "green", "blue", "red", "green", "blue", "red", "green", "blue"];
    const lines = colors.map((c, i) => `${i},${c},${i % 2}`);
    const file = writeCsv("colors.csv", `size,color,y\n${lines.join("\n")}\n`);
    const split = loadCsv(file, { target: "y", testSplit: 0.2, seed: 2, categorical: "auto" });
    expect(Array.from(split.test.lineNumbers!)).toEqual([2, 11]);
    const trainColors = new Set(Array.from(split.train.lineNumbers!).map((line) => colors[line - 2]!));
    const categories = [...trainColors].sort();
    expect(categories).toEqual(["blue", "green", "red"]);
    expect(rowsByLine(split.test).get(2)).toEqual([0, 0, 0, 0]); // violet: never seen in training
    expect(split.train.categorical).toEqual([{ name: "color", feature: 1, values: categories }]);
    expect(split.test.categorical).toEqual(split.train.categorical);
    expect(split.train.features).toBe(1 + categories.length);
    for (const ds of [split.train, split.test]) {
      for (const [line, row] of rowsByLine(ds)) {
        const color = colors[line - 2]!;
        const onehot = categories.map((c) => (c === color ? 1 : 0));
        expect(row).toEqual([line - 2, ...onehot]);
      }
    }
  });

  it("encodes with given categories (a trained model's) instead of fitting them; refuses a column it lacks", () => {
    const file = writeCsv("given.csv", "size,color,y\n1,red,0\n2,pink,1\n3,blue,0\n4,,1\n");
    const given = [{ name: "color", feature: 1, values: ["blue", "green", "red"] }];
    const split = loadCsv(file, {
      target: "y",
      testSplit: 0,
      categorical: ["color"],
      impute: "mean",
      categories: given,
    });
    expect(split.train.categorical).toEqual(given);
    expect(split.train.featureNames).toEqual(["size", "color=blue", "color=green", "color=red"]);
    // pink is not a trained category and the last cell is empty: both set none of the inputs.
    const rows = rowsByLine(split.train);
    expect([2, 3, 4, 5].map((line) => rows.get(line))).toEqual([
      [1, 0, 0, 1],
      [2, 0, 0, 0],
      [3, 1, 0, 0],
      [4, 0, 0, 0],
    ]);
    const other = [{ name: "shade", feature: 1, values: ["dark"] }];
    expect(() =>
      loadCsv(file, { target: "y", testSplit: 0, categorical: ["color"], impute: "mean", categories: other }),
    ).toThrow(
      `csv: ${file} (train): column "color" holds categories, but the model was not trained on its categories ` +
        '(its categorical columns: "shade")',
    );
  });

  it("reads named columns as categories even when they hold numbers; others must still be numbers", () => {
    const text = "zip,rooms,y\n10115,2,0\n80331,3,1\n10115,4,1\n";
    const ds = parseCsv(text, "homes.csv", { target: "y", categorical: ["zip"] });
    expect(ds.categorical).toEqual([{ name: "zip", feature: 0, values: ["10115", "80331"] }]);
    expect(Array.from(ds.x)).toEqual([0, 2, 1, 3, 0, 4]); // codes until the split is encoded
    expect(() => parseCsv("a,b,y\nx,1,0\n", "t.csv", { target: "y", categorical: ["b"] })).toThrow(
      't.csv line 2, column 1 ("a"): not a decimal number',
    );
    expect(() => parseCsv(text, "homes.csv", { target: "y", categorical: ["city"] })).toThrow(
      'csv: homes.csv: --categorical names "city", which is no column (columns: zip, rooms, y)',
    );
    expect(() => parseCsv(text, "homes.csv", { target: "y", categorical: ["y"] })).toThrow(
      'csv: homes.csv: --categorical names the target column "y"',
    );
  });

  it("auto refuses a mostly numeric column with a few text cells, naming their lines and the flag", () => {
    const rows = Array.from({ length: 20 }, (_, i) => `${i === 4 || i === 9 ? "n/a" : i},${i % 2}`);
    expect(() => parseCsv(`amount,y\n${rows.join("\n")}\n`, "m.csv", { target: "y", categorical: "auto" })).toThrow(
      'csv: m.csv column 1 ("amount"): 18 of 20 cells are numbers, but line 6, line 11 are not; ' +
        "fix them, or pass --categorical amount to read the column as categories",
    );
  });

  it("an empty categorical cell encodes as all zeros under --impute mean, and is refused without a policy", () => {
    const text = "c,v,y\na,1,0\n,2,1\nb,3,0\na,4,1\nb,5,0\n";
    const file = writeCsv("empty.csv", text);
    const split = loadCsv(file, { target: "y", testSplit: 0, categorical: "auto", impute: "mean" });
    expect(rowsByLine(split.train).get(3)).toEqual([0, 0, 2]);
    expect(rowsByLine(split.train).get(4)).toEqual([0, 1, 3]);
    expect(() => parseCsv(text, "empty.csv", { target: "y", categorical: "auto" })).toThrow(
      'csv: empty.csv line 3, column 1 ("c"): the cell is empty',
    );
  });
});
