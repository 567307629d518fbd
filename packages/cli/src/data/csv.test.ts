import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CSV_CHUNK_BYTES, MAX_CSV_COLUMNS, UNCLEAR_TASK_SHARE, imputeSplit, loadCsv, parseCsv } from "./csv.js";
import { detectDelimiter, readCsvRecords } from "./csv-records.js";

const tempDirs: string[] = [];
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

function writeCsv(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), "threadgrad-csv-"));
  tempDirs.push(dir);
  const file = join(dir, "data.csv");
  writeFileSync(file, text);
  return file;
}

describe("readCsvRecords", () => {
  it(
    "keeps commas, doubled quotes and newlines inside quoted " + "fields, and numbers lines from each record's start",
    () => {
      const records = readCsvRecords('a,"b,c"\r\n"x""y","two\nlines"\r\n3,4\r\n\r\n', "f.csv");
      expect(records).toEqual([
        { fields: ["a", "b,c"], line: 1 },
        { fields: ['x"y', "two\nlines"], line: 2 },
        { fields: ["3", "4"], line: 4 },
      ]);
    },
  );

  it("names the line of a quote that never closes", () => {
    expect(() => readCsvRecords('a,b\n1,"2\n', "f.csv")).toThrow("csv: f.csv line 2: a quoted field is never closed");
  });
});

describe("--delimiter", () => {
  it("splits on ; or tab when told; the others are then plain characters, quotes still hold separators", () => {
    expect(readCsvRecords('a;"b;c";d,e\n', "f.csv", ";")).toEqual([{ fields: ["a", "b;c", "d,e"], line: 1 }]);
    // A tab separates even after a closing quote or where blanks are skipped; a space stays a blank.
    expect(readCsvRecords('"a"\t\tb \t c\n', "f.tsv", "\t")).toEqual([{ fields: ["a", "", "b ", " c"], line: 1 }]);
  });

  it("is detected as the candidate that splits the header into the most fields, consistently", () => {
    expect(detectDelimiter("a;b;c\n1,5;2;3\n")).toBe(";");
    expect(detectDelimiter("a\tb\tc\n1\t2\t3")).toBe("\t");
    expect(detectDelimiter("a,b,c\n1,2,3\n")).toBe(",");
    // Two commas in the header but decimal commas in the rows: only ; splits every line alike.
    expect(detectDelimiter("x,1;y;z\n1,5;2;3\n2;3,5;4\n")).toBe(";");
    // Quoted separators do not count; a header alone decides when it is all there is.
    expect(detectDelimiter('"a;b",c,d\n')).toBe(",");
    expect(detectDelimiter("a;b")).toBe(";");
    expect(detectDelimiter("single")).toBe(",");
    // The last line of a chunk may be cut short.
    expect(detectDelimiter("a;b;c\n1;2;3\n4;5")).toBe(";");
  });

  it("is detected by parseCsv and loadCsv unless given", () => {
    const ds = parseCsv("a;b;y\n1.5;2;0\n3;4;1\n", "semi.csv", { target: "y" });
    expect(Array.from(ds.x)).toEqual([1.5, 2, 3, 4]);
    // A comma decimal is no number: the error names the cell, so the separator was right.
    expect(() => parseCsv("a;b;y\n1,5;2;0\n", "semi.csv", { target: "y", delimiter: ";" })).toThrow(
      'csv: semi.csv line 2, column 1 ("a"): not a decimal number',
    );
    const file = writeCsv("a\tb\ty\n1\t2\t0\n3\t4\t1\n");
    expect(Array.from(loadCsv(file, { target: "y", testSplit: 0 }).train.x).sort()).toEqual([1, 2, 3, 4]);
    expect(() => parseCsv("a;b;y\n1;2;0\n", "semi.csv", { target: "y", delimiter: "," })).toThrow(
      'csv: semi.csv has no target column "y"',
    );
  });
});

describe("--impute", () => {
  const text = "a,b,y\n1,,0\n,4,1\n3,6,0\n5,8,1\n";

  it("refuses an empty cell without a policy, naming the flag; an empty target even with mean or median", () => {
    expect(() => parseCsv(text, "gaps.csv", { target: "y" })).toThrow(
      'csv: gaps.csv line 2, column 2 ("b"): the cell is empty (pass --impute mean, median or drop to fill or skip such cells)',
    );
    expect(() => parseCsv("a,y\n1,\n", "t.csv", { target: "y", impute: "mean" })).toThrow(
      'csv: t.csv line 2, column 2 ("y"): the target is empty; only --impute drop skips rows without a target',
    );
  });

  it("drop leaves out every row with an empty cell, target included, and keeps the others' lines", () => {
    const ds = parseCsv(`${text}7,,\n9,10,1\n`, "gaps.csv", { target: "y", impute: "drop" });
    expect(Array.from(ds.x)).toEqual([3, 6, 5, 8, 9, 10]);
    expect(Array.from(ds.y)).toEqual([0, 1, 1]);
    expect(Array.from(ds.lineNumbers!)).toEqual([4, 5, 7]);
    expect(() => parseCsv("a,y\n,1\n", "none.csv", { target: "y", impute: "drop" })).toThrow(
      "csv: none.csv: every one of its 1 rows has an empty cell (--impute drop)",
    );
  });

  it("mean and median are taken over the training rows only and fill train and test alike", () => {
    // 20 rows; column a is empty on every third row, column b never.
    const rows = Array.from({ length: 20 }, (_, i) => `${i % 3 === 0 ? "" : i * i},${i},${i % 2}`);
    const file = writeCsv(`a,b,y\n${rows.join("\n")}\n`);
    for (const policy of ["mean", "median"] as const) {
      const split = loadCsv(file, { target: "y", testSplit: 0.25, seed: 3, impute: policy });
      expect(split.train.length).toBe(15);
      // The training rows' values of column a, found through column b (= the row number).
      const seen: number[] = [];
      for (let r = 0; r < split.train.length; r++) {
        const i = split.train.x[2 * r + 1]!;
        if (i % 3 !== 0) seen.push(i * i);
      }
      seen.sort((p, q) => p - q);
      const mid = seen.length >> 1;
      const expected =
        policy === "mean"
          ? seen.reduce((p, q) => p + q, 0) / seen.length
          : seen.length % 2
            ? seen[mid]!
            : (seen[mid - 1]! + seen[mid]!) / 2;
      for (const ds of [split.train, split.test]) {
        for (let r = 0; r < ds.length; r++) {
          const i = ds.x[2 * r + 1]!;
          expect(ds.x[2 * r]).toBe(i % 3 === 0 ? Math.fround(expected) : i * i);
        }
      }
    }
  });

  it("refuses a column with no value in any training row", () => {
    const split = {
      train: parseCsv("a,b,y\n,1,0\n,2,1\n", "t.csv", { target: "y", impute: "mean" }),
      test: parseCsv("a,b,y\n5,1,0\n", "t.csv", { target: "y" }),
    };
    expect(() => imputeSplit(split, "median")).toThrow(
      "csv: t.csv: feature 1 has no value in any training row to take the median of",
    );
  });
});

describe("parseCsv", () => {
  it("reads quoted headers, CRLF lines and a blank trailing line; the target can be any column", () => {
    const ds = parseCsv('"size, m2",label,"rooms"\r\n50,1,"2"\r\n80,0,3\r\n\r\n', "homes.csv", { target: "label" });
    expect([ds.length, ds.features, ds.task, ds.numClasses]).toEqual([2, 2, "classification", 2]);
    expect(Array.from(ds.x)).toEqual([50, 2, 80, 3]);
    expect(ds.y).toBeInstanceOf(Int32Array);
    expect(Array.from(ds.y)).toEqual([1, 0]);
    expect(Array.from(ds.lineNumbers ?? [])).toEqual([2, 3]);
    expect(ds.x.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(ds.y.buffer).toBeInstanceOf(SharedArrayBuffer);
  });

  it("detects classification from non-negative integer targets, one class per distinct label", () => {
    const ds = parseCsv("a,y\n0.5,0\n1.5,4\n2.5,2\n", "c.csv", { target: "y" });
    expect([ds.task, ds.numClasses, ds.classNames]).toEqual(["classification", 3, ["0", "2", "4"]]);
    expect(Array.from(ds.y)).toEqual([0, 2, 1]);
    expect(ds.featureNames).toEqual(["a"]);
  });

  it("maps labels 1..3 to classes 0..2, keeping their names (no empty class 0)", () => {
    const ds = parseCsv("a,y\n1,3\n2,1\n3,2\n4,10\n", "c.csv", { target: "y" });
    expect([ds.numClasses, ds.classNames, Array.from(ds.y)]).toEqual([4, ["1", "2", "3", "10"], [2, 0, 1, 3]]);
  });

  it("accepts text labels as classes in sorted order, numbers among them by their value", () => {
    const ds = parseCsv("a,kind\n1, dog\n2,cat\n3,dog\n4,1.0\n", "t.csv", { target: "kind" });
    expect([ds.task, ds.numClasses, ds.classNames]).toEqual(["classification", 3, ["1", "cat", "dog"]]);
    expect(Array.from(ds.y)).toEqual([2, 1, 2, 0]);
    expect(() => parseCsv("a,y\n1,2.5\n2,big\n", "t.csv", { target: "y", task: "regression" })).toThrow(
      'csv: t.csv line 3, column 2 ("y"): not a decimal number',
    );
    const many = `a,id\n${Array.from({ length: 1001 }, (_, i) => `1,u${i}`).join("\n")}\n`;
    expect(() => parseCsv(many, "ids.csv", { target: "id" })).toThrow(
      'csv: ids.csv column 2 ("id"): 1001 distinct labels (more than 1000); for that many classes pass --task classification',
    );
    expect(parseCsv(many, "ids.csv", { target: "id", task: "classification" }).numClasses).toBe(1001);
  });

  it("maps labels into given classes, naming a label the model was not trained on", () => {
    const ds = parseCsv("a,y\n1,dog\n2,dog\n", "t.csv", { target: "y", classes: ["cat", "dog"] });
    expect([ds.numClasses, Array.from(ds.y), ds.classNames]).toEqual([2, [1, 1], ["cat", "dog"]]);
    expect(() => parseCsv("a,y\n1,dog\n2,cow\n", "t.csv", { target: "y", classes: ["cat", "dog"] })).toThrow(
      'csv: t.csv line 3, column 2 ("y"): the label "cow" is not one of the 2 classes the model was trained on: cat, dog',
    );
    expect(() => parseCsv("a,y\n1,4\n", "t.csv", { target: "y", classes: ["1", "2", "3"] })).toThrow(
      'csv: t.csv line 2, column 2 ("y"): the label "4" is not one of the 3 classes',
    );
  });

  it("warns, naming --task, when a guessed classification has gaps in its labels or many of them", () => {
    expect(parseCsv("a,y\n0.5,0\n1.5,1\n2.5,2\n", "c.csv", { target: "y" }).warnings).toBeUndefined();
    const ratings = parseCsv("a,y\n0.5,1\n1.5,5\n2.5,3\n", "r.csv", { target: "y" });
    expect(ratings.warnings).toEqual([
      'csv: r.csv column 2 ("y"): guessed classification from integer targets: 3 distinct labels; ' +
        "3 of the labels 0..5 never occur (0, 2, 4), so the 3 labels become classes 0..2. " +
        "If the column is a quantity, pass --task regression; " +
        "--task classification keeps the classes and silences this warning",
    ]);
    const rows = Array.from({ length: 60 }, (_, i) => `${i},${i}`).join("\n");
    const many = parseCsv(`a,age\n${rows}\n`, "ages.csv", { target: "age" });
    expect(many.warnings?.[0]).toContain(
      "guessed classification from integer targets: 60 distinct labels (more than 50).",
    );
    expect(
      parseCsv(`a,age\n${rows}\n`, "ages.csv", { target: "age", task: "classification" }).warnings,
    ).toBeUndefined();
  });

  it("detects regression from fractional or negative targets, y as Float32Array", () => {
    const frac = parseCsv("a,y\n1,0.5\n2,3\n", "r.csv", { target: "y" });
    expect([frac.task, frac.numClasses]).toEqual(["regression", 0]);
    expect(frac.y).toBeInstanceOf(Float32Array);
    expect(Array.from(frac.y)).toEqual([0.5, 3]);
    expect(parseCsv("a,y\n1,-1\n2,3\n", "r.csv", { target: "y" }).task).toBe("regression");
  });

  it("treats large integer targets (prices) as regression unless told otherwise", () => {
    const text = "a,price\n1,250000\n2,310000\n";
    expect(parseCsv(text, "p.csv", { target: "price" }).task).toBe("regression");
    expect(parseCsv(text, "p.csv", { target: "price", task: "classification" }).classNames).toEqual([
      "250000",
      "310000",
    ]);
    expect(parseCsv("a,y\n1,0\n2,1\n", "r.csv", { target: "y", task: "regression" }).task).toBe("regression");
  });

  describe("a few stray labels among class indices make the task unclear, not regression", () => {
    // 50 rows with labels 0..9 (lines 2..51), then the stray ones.
    const labels = (...stray: string[]) =>
      `a,y\n${[...Array.from({ length: 50 }, (_, i) => i % 10), ...stray].map((y, i) => `${i},${y}`).join("\n")}\n`;

    it("names the odd lines and the --task choice", () => {
      expect(() => parseCsv(labels("5000"), "s.csv", { target: "y" })).toThrow(
        'csv: s.csv column 2 ("y"): cannot tell the task: 50 of 51 targets are class indices (integers 0..999), ' +
          "but line 52 is 1000 or more; pass --task classification or --task regression",
      );
      expect(() => parseCsv(labels("-1", "4", "1.5"), "s.csv", { target: "y" })).toThrow(
        "cannot tell the task: 51 of 53 targets are class indices (integers 0..999), " +
          "but line 52 is negative, line 54 is not an integer;",
      );
      expect(() => parseCsv(labels("-1", "-2", "-3", "-4"), "s.csv", { target: "y" })).toThrow(
        "but line 52 is negative, line 53 is negative, line 54 is negative (and 1 more);",
      );
    });

    it("follows --task either way", () => {
      const cls = parseCsv(labels("5000"), "s.csv", { target: "y", task: "classification" });
      expect([cls.task, cls.numClasses, cls.classNames![cls.y[50]!]]).toEqual(["classification", 11, "5000"]);
      const reg = parseCsv(labels("-1", "1.5"), "s.csv", { target: "y", task: "regression" });
      expect([reg.task, reg.y[50], reg.y[51]]).toEqual(["regression", -1, 1.5]);
      expect(() => parseCsv(labels("-1"), "s.csv", { target: "y", task: "classification" })).toThrow(
        'csv: s.csv line 52, column 2 ("y"): classification labels must be integers >= 0; this one is negative',
      );
    });

    it("is regression when fewer than 90% of the targets are class indices", () => {
      expect(UNCLEAR_TASK_SHARE).toBe(0.9);
      // 27 of 30 class-like is exactly 90%: unclear; 26 of 30 is below: regression.
      const rows = (n: number) =>
        `a,y\n${Array.from({ length: 30 }, (_, i) => `${i},${i < n ? i % 10 : i + 0.5}`).join("\n")}\n`;
      expect(() => parseCsv(rows(27), "s.csv", { target: "y" })).toThrow("27 of 30 targets are class indices");
      expect(parseCsv(rows(26), "s.csv", { target: "y" }).task).toBe("regression");
    });
  });

  it("rejects non-integer labels when classification is requested, with line and column", () => {
    expect(() => parseCsv("a,y\n1,0\n2,1.5\n", "c.csv", { target: "y", task: "classification" })).toThrow(
      'csv: c.csv line 3, column 2 ("y"): classification labels must be integers >= 0; this one is not an integer',
    );
    expect(() => parseCsv("a,y\n1,0\n2,3\n3,-1\n", "c.csv", { target: "y", task: "classification" })).toThrow(
      'csv: c.csv line 4, column 2 ("y"): classification labels must be integers >= 0; this one is negative',
    );
  });

  it("names the file, line (header = line 1) and column of a non-numeric cell", () => {
    expect(() => parseCsv("age,height,y\n31,180,0\n42,tall,1\n", "people.csv", { target: "y" })).toThrow(
      'csv: people.csv line 3, column 2 ("height"): not a decimal number ' +
        "(digits with an optional sign, fraction and exponent)",
    );
    expect(() => parseCsv("age,y\n31,0\n  ,1\n", "people.csv", { target: "y" })).toThrow(
      'csv: people.csv line 3, column 1 ("age"): the cell is empty',
    );
  });

  it("rejects a ragged row, short or long", () => {
    expect(() => parseCsv("a,b,y\n1,2,0\n1,2\n", "r.csv", { target: "y" })).toThrow(
      "csv: r.csv line 3 has 2 fields, but the header has 3",
    );
    expect(() => parseCsv("a,b,y\n1,2,0\n1,2,3,4\n", "r.csv", { target: "y" })).toThrow(
      "csv: r.csv line 3 has 4 fields, but the header has 3",
    );
  });

  it("accepts decimal numbers only: sign, digits, fraction, exponent", () => {
    const good = ["7", "-7", "+7", "7.", ".5", "-0.25", "1e3", "1E-3", "+2.5e+2", " 4 "];
    const ds = parseCsv(`v,y\n${good.map((v, i) => `${v},${i % 2}`).join("\n")}\n`, "d.csv", { target: "y" });
    expect(Array.from(ds.x)).toEqual([7, -7, 7, 7, 0.5, -0.25, 1000, Math.fround(1e-3), 250, 4]);
    for (const bad of [
      "0x1F",
      "0b11",
      "0o7",
      "Infinity",
      "-Infinity",
      "NaN",
      "1_000",
      "1e",
      ".",
      "+",
      "1.5.2",
      "1,5",
    ]) {
      const text = `v,w,y\n1,2,0\n3,"${bad}",1\n`;
      expect(() => parseCsv(text, "d.csv", { target: "y" }), bad).toThrow(
        'csv: d.csv line 3, column 2 ("w"): not a decimal number',
      );
    }
  });

  it("refuses a number that overflows float32, in a feature or the target", () => {
    expect(parseCsv("v,y\n3.4e38,0.5\n1,-3.4e38\n", "f.csv", { target: "y" }).x[0]).toBe(Math.fround(3.4e38));
    expect(() => parseCsv("v,y\n1,0.5\n1e39,2\n", "f.csv", { target: "y" })).toThrow(
      'csv: f.csv line 3, column 1 ("v"): the number is too large for float32 (largest magnitude about 3.4e38)',
    );
    expect(() => parseCsv("v,y\n1,0.5\n2,-1e39\n", "f.csv", { target: "y" })).toThrow(
      'csv: f.csv line 3, column 2 ("y"): the number is too large for float32',
    );
  });

  it("refuses text after a closing quote, naming line and column", () => {
    expect(() => parseCsv('v,y\n1,0\n"2"3,1\n', "q.csv", { target: "y" })).toThrow(
      "csv: q.csv line 3, column 1: text after the closing quote of a field",
    );
  });

  it("lists the columns when the target is missing, if they look like column names", () => {
    expect(() => parseCsv("a,b\n1,2\n", "m.csv", { target: "label" })).toThrow(
      'csv: m.csv has no target column "label" (columns: a, b)',
    );
    expect(() => parseCsv("a,b=secret\n1,2\n", "m.csv", { target: "label" })).toThrow(
      'csv: m.csv has no target column "label" (its first line has 2 fields, not all of which look like column names)',
    );
  });

  it("refuses a header of more than MAX_CSV_COLUMNS columns", () => {
    const header = Array.from({ length: MAX_CSV_COLUMNS + 1 }, (_, i) => `c${i}`).join(",");
    expect(() => parseCsv(`${header}\n`, "w.csv", { target: "c0" })).toThrow(
      `csv: w.csv line 1: the header has more than ${MAX_CSV_COLUMNS} columns`,
    );
  });

  it("names duplicate columns by number", () => {
    expect(() => parseCsv("a,b,a,y\n1,2,3,0\n", "d.csv", { target: "y" })).toThrow(
      'csv: d.csv line 1: columns 1 and 3 have the same name ("a")',
    );
    expect(() => parseCsv("\n\na:1,b,a:1,y\n1,2,3,0\n", "d.csv", { target: "y" })).toThrow(
      new Error("csv: d.csv line 3: columns 1 and 3 have the same name"),
    );
  });

  it("rejects an empty file, a header with no rows and a file with no features", () => {
    expect(() => parseCsv("", "e.csv", { target: "y" })).toThrow("csv: e.csv is empty");
    expect(() => parseCsv("\r\n\n", "e.csv", { target: "y" })).toThrow("csv: e.csv is empty");
    expect(() => parseCsv("a,y\n", "h.csv", { target: "y" })).toThrow("csv: h.csv has a header but no data rows");
    expect(() => parseCsv("y\n1\n", "f.csv", { target: "y" })).toThrow('csv: f.csv has no feature columns besides "y"');
  });
});

describe("loadCsv", () => {
  const rows = Array.from({ length: 20 }, (_, i) => `${i},${i % 2}`).join("\n");

  it("splits by seed: the same seed gives the same rows, another seed others", () => {
    const file = writeCsv(`v,y\n${rows}\n`);
    const a = loadCsv(file, { target: "y", testSplit: 0.25, seed: 1 });
    const b = loadCsv(file, { target: "y", testSplit: 0.25, seed: 1 });
    const c = loadCsv(file, { target: "y", testSplit: 0.25, seed: 2 });
    expect([a.train.length, a.test.length]).toEqual([15, 5]);
    expect(Array.from(a.test.x)).toEqual(Array.from(b.test.x));
    expect(Array.from(a.test.x)).not.toEqual(Array.from(c.test.x));
    expect(a.test.name).toBe(`${file} (test)`);
    // Each row keeps its own line number through the shuffle: value v sits on line v + 2.
    a.test.x.forEach((v, r) => {
      expect(a.test.lineNumbers?.[r]).toBe(v + 2);
    });
  });

  it("names a file it cannot read", () => {
    expect(() => loadCsv("/nonexistent/x.csv", { target: "y" })).toThrow(
      /csv: cannot read \/nonexistent\/x.csv \(ENOENT/,
    );
  });
});

describe("loadCsv on a file of tens of MB", () => {
  const QUOTED_ROW = 100_000; // its id is quoted with a CRLF inside: the lines after it move down by one
  const lineOf = (row: number) => row + 2 + (row > QUOTED_ROW ? 1 : 0);

  // `rows` rows of id (padded with blanks), ratio = (id % 1000) / 8 with six decimals and
  // label = id % 10, about 25 bytes a row, CRLF lines, after a BOM; `bad` replaces one row's ratio.
  function writeBig(rows: number, bad?: { row: number; ratio: string }): { file: string; bytes: number } {
    const file = writeCsv("");
    const fd = openSync(file, "w");
    let bytes = writeSync(fd, "\uFEFFid,ratio,label\r\n");
    for (let from = 0; from < rows; from += 100_000) {
      const lines: string[] = [];
      for (let r = from; r < Math.min(rows, from + 100_000); r++) {
        const id = r === QUOTED_ROW ? `"${r}\r\n"` : String(r).padStart(10);
        const ratio = r === bad?.row ? bad.ratio : ((r % 1000) / 8).toFixed(6);
        lines.push(`${id},${ratio},${r % 10}\r\n`);
      }
      bytes += writeSync(fd, lines.join(""));
    }
    closeSync(fd);
    return { file, bytes };
  }

  it("reads every value and line number", () => {
    const rows = 900_000;
    const { file, bytes } = writeBig(rows);
    expect(bytes).toBeGreaterThan(20 * CSV_CHUNK_BYTES);
    const { train, test } = loadCsv(file, { target: "label", testSplit: 0.5 });
    expect([train.length + test.length, train.features, train.task, train.numClasses]).toEqual([
      rows,
      2,
      "classification",
      10,
    ]);
    let wrong = 0;
    const seen = new Uint8Array(rows);
    for (const ds of [train, test]) {
      for (let r = 0; r < ds.length; r++) {
        const id = ds.x[2 * r]!;
        seen[id] = (seen[id] ?? 0) + 1;
        const ok = ds.x[2 * r + 1] === (id % 1000) / 8 && ds.y[r] === id % 10 && ds.lineNumbers?.[r] === lineOf(id);
        if (!ok) wrong++;
      }
    }
    expect(wrong).toBe(0);
    expect(seen.every((n) => n === 1)).toBe(true);
  });

  it("names the exact line and column of an error a few chunks in", () => {
    const row = 120_000;
    const { file } = writeBig(150_000, { row, ratio: "0x1F" });
    expect(row * 25).toBeGreaterThan(2 * CSV_CHUNK_BYTES);
    expect(() => loadCsv(file, { target: "label" })).toThrow(
      `csv: ${file} line ${lineOf(row)}, column 2 ("ratio"): not a decimal number`,
    );
  });
});

describe("errors never show a file's text", () => {
  const passwd =
    "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n" +
    "alice:x:1000:1000:Alice Liddell,,,:/home/alice:/bin/bash\n";
  const secrets = "user,hash,uid\nroot,$6$salt$s3cretHash,0\nalice,$6$pepper$0therHash,1000\n";
  const texts = ["root", "x:0", "/bin/bash", "daemon", "alice", "Alice", "s3cret", "$6$", "0therHash"];

  function messages(file: string, targets: string[]): string[] {
    return targets.map((target) => {
      try {
        loadCsv(file, { target });
      } catch (err) {
        return (err as Error).message;
      }
      throw new Error(`${target}: expected an error`);
    });
  }

  it("names fields and lines of an /etc/passwd-shaped file, not their content", () => {
    const file = writeCsv(passwd);
    const found = messages(file, ["label", "x", "uid"]);
    expect(found[0]).toBe(
      `csv: ${file} has no target column "label" (its first line has 1 fields, ` +
        "not all of which look like column names)",
    );
    for (const message of found) for (const text of texts) expect(message).not.toContain(text);
  });

  it("names the column but not the cell of a CSV with secrets", () => {
    const file = writeCsv(secrets);
    const found = messages(file, ["uid", "hash", "user"]);
    expect(found[0]).toBe(
      `csv: ${file} line 2, column 1 ("user"): not a decimal number ` +
        "(digits with an optional sign, fraction and exponent)",
    );
    for (const message of found) for (const text of texts) expect(message).not.toContain(text);
  });
});
