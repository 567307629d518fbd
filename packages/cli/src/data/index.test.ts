import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { encodeIdx } from "./idx.js";
import { FASHION_MNIST_DIR, checkLabels, loadDataset, sharedFloat32, sharedInt32, type Dataset } from "./index.js";

const idx = encodeIdx;

const tempDirs: string[] = [];
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "threadgrad-data-"));
  tempDirs.push(dir);
  return dir;
};

// Two 1x1 images per file with labels 0 and 9.
function idxDir(): string {
  const dir = tempDir();
  for (const prefix of ["train", "t10k"]) {
    writeFileSync(join(dir, `${prefix}-images-idx3-ubyte`), idx(0x803, [2, 1, 1], [0, 255]));
    writeFileSync(join(dir, `${prefix}-labels-idx1-ubyte`), idx(0x801, [2], [0, 9]));
  }
  return dir;
}

function classes(labels: number[], name = "toy"): Dataset {
  const y = sharedInt32(labels.length);
  y.set(labels);
  const x = sharedFloat32(labels.length);
  return { name, x, y, length: labels.length, features: 1, task: "classification", numClasses: 13 };
}

const hasFashion = ["train-images", "train-labels", "t10k-images", "t10k-labels"].every((f) =>
  existsSync(join(FASHION_MNIST_DIR, `${f}-idx${f.endsWith("images") ? 3 : 1}-ubyte.gz`)),
);

describe("loadDataset", () => {
  it("loads the built-in digits by default", () => {
    const { train, test } = loadDataset(undefined, { seed: 5 });
    expect([train.name, train.length + test.length]).toEqual(["digits (train)", 10000]);
  });

  it("loads idx:DIR and mnist:DIR", () => {
    const dir = idxDir();
    const plain = loadDataset(`idx:${dir}`);
    expect([plain.train.name, plain.train.numClasses, plain.train.classNames]).toEqual([
      `idx:${dir} (train)`,
      10,
      undefined,
    ]);
    const mnist = loadDataset(`mnist:${dir}`, { testSplit: 0.3 });
    expect([mnist.test.name, mnist.test.length, Array.from(mnist.test.x)]).toEqual(["mnist (test)", 2, [0, 1]]);
  });

  it("loads csv:FILE with --target", () => {
    const file = join(tempDir(), "t.csv");
    writeFileSync(file, "a,b\n1,0.5\n2,1.5\n3,2.5\n4,3.5\n");
    const { train, test } = loadDataset(`csv:${file}`, { target: "b", testSplit: 0.25, seed: 0 });
    expect([train.length, test.length, train.task]).toEqual([3, 1, "regression"]);
    expect(() => loadDataset(`csv:${file}`)).toThrow("data: csv:FILE needs --target COLUMN, the column to predict");
  });

  it("lists the valid forms for an unknown scheme", () => {
    expect(() => loadDataset("cifar:/tmp")).toThrow(
      'data: unknown data set "cifar:/tmp"; use one of digits, idx:DIR, mnist:DIR, fashion-mnist[:DIR], csv:FILE',
    );
  });

  it("rejects options and arguments that do not fit the set", () => {
    expect(() => loadDataset("digits", { target: "y" })).toThrow("data: --target only applies to csv:FILE, not digits");
    expect(() => loadDataset("digits", { task: "regression" })).toThrow(/digits is a classification set/);
    expect(() => loadDataset("digits:x")).toThrow('data: "digits" takes no argument, got "digits:x"');
    expect(() => loadDataset("idx:")).toThrow('data: "idx:" needs a dir, as in idx:DIR');
    // issue #13: an empty folder name used to fall back to the default folder without a word
    expect(() => loadDataset("fashion-mnist:")).toThrow(
      'data: "fashion-mnist:" needs a dir, as in fashion-mnist:DIR (or fashion-mnist for /usr/share/datasets/fashion-mnist)',
    );
  });

  it("says how to get Fashion-MNIST when its folder is missing", () => {
    expect(() => loadDataset("fashion-mnist:/nonexistent/fashion")).toThrow(
      /data: Fashion-MNIST not found in \/nonexistent\/fashion; install it with `apt-get install dataset-fashion-mnist`.*fashion-mnist:DIR/,
    );
  });

  it.skipIf(!hasFashion)(
    `loads Fashion-MNIST from ${FASHION_MNIST_DIR} (skipped unless apt-get install dataset-fashion-mnist put it there)`,
    () => {
      const { train, test } = loadDataset("fashion-mnist");
      expect([train.length, test.length, train.features, train.numClasses]).toEqual([60000, 10000, 784, 10]);
      expect(train.classNames?.[9]).toBe("Ankle boot");
      expect(train.x.every((v) => v >= 0 && v <= 1)).toBe(true);
      expect(new Set(test.y).size).toBe(10);
      expect(train.x.buffer).toBeInstanceOf(SharedArrayBuffer);
      checkLabels(train, 10);
    },
  );
});

describe("checkLabels", () => {
  it("accepts labels below the model's output count", () => {
    expect(() => checkLabels(classes([0, 9, 3]), 10)).not.toThrow();
  });

  it("names the label, row and data set of the first one out of range", () => {
    expect(() => checkLabels(classes([0, 3, 12, 11]), 10)).toThrow(
      "data: label 12 at row 2 of toy is out of range for a model with 10 outputs",
    );
  });

  it("points a CSV row back to its line", () => {
    const ds = { ...classes([1, 5]), lineNumbers: new Int32Array([7, 9]) };
    expect(() => checkLabels(ds, 3)).toThrow(
      "data: label 5 at row 1 (line 9) of toy is out of range for a model with 3 outputs",
    );
  });

  it("wants exactly one output for regression", () => {
    const ds: Dataset = { ...classes([0]), y: sharedFloat32(1), task: "regression", numClasses: 0 };
    expect(() => checkLabels(ds, 1)).not.toThrow();
    expect(() => checkLabels(ds, 2)).toThrow(
      "data: toy has one regression target per row, but the model has 2 outputs",
    );
  });
});
