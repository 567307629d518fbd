import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DIGITS_TEST_FRACTION, DIGIT_PIXELS, loadAllDigits, loadMnistDigits } from "./mnist-digits.js";

const tempDirs: string[] = [];
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

describe("loadMnistDigits", () => {
  const split = loadMnistDigits({ seed: 0 });

  it("holds the package's 10,000 digits of 784 pixels, split 8333/1667 by default", () => {
    expect(DIGITS_TEST_FRACTION).toBeCloseTo(1 / 6);
    expect([split.train.length, split.test.length]).toEqual([8333, 1667]);
    expect([split.train.features, split.train.numClasses, split.train.task]).toEqual([784, 10, "classification"]);
    expect([split.train.sampleShape, split.test.sampleShape]).toEqual([
      [1, 28, 28],
      [1, 28, 28],
    ]);
    expect(split.train.x.length).toBe(8333 * 784);
    expect(split.test.y.length).toBe(1667);
  });

  it("has pixels in [0, 1] and every label 0..9 in both train and test", () => {
    for (const part of [split.train, split.test]) {
      expect(part.x.every((v) => v >= 0 && v <= 1)).toBe(true);
      expect(new Set(part.y)).toEqual(new Set([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
    }
  });

  it("puts x and y on SharedArrayBuffers", () => {
    expect(split.train.x.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(split.train.y.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(split.test.x.buffer).toBeInstanceOf(SharedArrayBuffer);
  });

  it("gives the same split for the same seed and a different one for another seed", () => {
    const again = loadMnistDigits({ seed: 0 });
    const other = loadMnistDigits({ seed: 1 });
    expect(Array.from(again.test.y)).toEqual(Array.from(split.test.y));
    expect(again.test.x.subarray(0, 7840)).toEqual(split.test.x.subarray(0, 7840));
    expect(Array.from(other.test.y)).not.toEqual(Array.from(split.test.y));
  });

  it("honours testSplit", () => {
    const { train, test } = loadMnistDigits({ testSplit: 0.5, seed: 3 });
    expect([train.length, test.length]).toEqual([5000, 5000]);
  });

  it("reads the files in digit order before the split (1001 zeros first)", () => {
    const all = loadAllDigits();
    expect(all.length).toBe(10000);
    expect([all.y[0], all.y[1000], all.y[1001], all.y[9999]]).toEqual([0, 0, 1, 9]);
  });
});

describe("loadAllDigits on a folder of bad files", () => {
  function digitsWith(first: string): string {
    const dir = mkdtempSync(join(tmpdir(), "threadgrad-digits-"));
    tempDirs.push(dir);
    writeFileSync(join(dir, "0.json"), first);
    return dir;
  }

  it("calls a file that is not JSON so, without quoting it", () => {
    const dir = digitsWith("root:x:0:0:root:/root:/bin/bash\n");
    expect(() => loadAllDigits(dir)).toThrow(new Error(`digits: ${join(dir, "0.json")} is not valid JSON`));
  });

  it("names the first value that is not a pixel in 0..1", () => {
    const data = Array.from({ length: DIGIT_PIXELS }, () => 0.5) as unknown[];
    data[7] = "0.5";
    const dir = digitsWith(JSON.stringify({ data }));
    expect(() => loadAllDigits(dir)).toThrow(`digits: ${join(dir, "0.json")} pixel value 7 is not a number in 0..1`);
    expect(() => loadAllDigits(digitsWith("null"))).toThrow("should hold a multiple of 784 pixel values, has no data");
  });
});
