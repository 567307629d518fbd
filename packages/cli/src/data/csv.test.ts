import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadCsv, parseCsv } from "./csv.js";
import { readCsvRecords } from "./csv-records.js";

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
  it("keeps commas, doubled quotes and newlines inside quoted fields, and numbers lines from each record's start", () => {
    const records = readCsvRecords('a,"b,c"\r\n"x""y","two\nlines"\r\n3,4\r\n\r\n', "f.csv");
    expect(records).toEqual([
      { fields: ["a", "b,c"], line: 1 },
      { fields: ['x"y', "two\nlines"], line: 2 },
      { fields: ["3", "4"], line: 4 },
    ]);
  });

  it("names the line of a quote that never closes", () => {
    expect(() => readCsvRecords('a,b\n1,"2\n', "f.csv")).toThrow("csv: f.csv line 2: a quoted field is never closed");
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

  it("detects classification from non-negative integer targets, numClasses = max + 1", () => {
    const ds = parseCsv("a,y\n0.5,0\n1.5,4\n2.5,2\n", "c.csv", { target: "y" });
    expect([ds.task, ds.numClasses]).toEqual(["classification", 5]);
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
    expect(parseCsv(text, "p.csv", { target: "price", task: "classification" }).numClasses).toBe(310001);
    expect(parseCsv("a,y\n1,0\n2,1\n", "r.csv", { target: "y", task: "regression" }).task).toBe("regression");
  });

  it("rejects non-integer labels when classification is requested, with line and column", () => {
    expect(() => parseCsv("a,y\n1,0\n2,1.5\n", "c.csv", { target: "y", task: "classification" })).toThrow(
      'csv: c.csv line 3, column "y": classification labels must be integers >= 0, got 1.5',
    );
  });

  it("names the file, line (header = line 1) and column of a non-numeric cell", () => {
    expect(() => parseCsv("age,height,y\n31,180,0\n42,tall,1\n", "people.csv", { target: "y" })).toThrow(
      'csv: people.csv line 3, column "height": "tall" is not a number',
    );
    expect(() => parseCsv("age,y\n31,0\n,1\n", "people.csv", { target: "y" })).toThrow(
      'csv: people.csv line 3, column "age": an empty cell is not a number',
    );
  });

  it("rejects a ragged row", () => {
    expect(() => parseCsv("a,b,y\n1,2,0\n1,2\n", "r.csv", { target: "y" })).toThrow(
      "csv: r.csv line 3 has 2 fields, but the header has 3",
    );
  });

  it("lists the columns when the target is missing", () => {
    expect(() => parseCsv("a,b\n1,2\n", "m.csv", { target: "label" })).toThrow(
      'csv: m.csv has no target column "label" (columns: a, b)',
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
