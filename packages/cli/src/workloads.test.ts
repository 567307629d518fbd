import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { gptParameterCount } from "@threadgrad/workers";
import { windowStart } from "./data/text.js";
import {
  W6,
  W6_RANDOM_BATCHES,
  W7,
  W7_POOL_STEPS,
  W7_RANDOM_TOKENS,
  randomClassification,
  w6Data,
  w7Data,
} from "./workloads.js";

const empty = mkdtempSync(join(tmpdir(), "threadgrad-w6-"));
afterAll(() => rmSync(empty, { recursive: true, force: true }));

describe("W6", () => {
  it("is the cnn preset on one 28×28 channel, 10 classes, batch 128, Adam 1e-3", () => {
    expect(W6.model).toEqual({ kind: "cnn", inChannels: 1, height: 28, width: 28, classes: 10 });
    expect([W6.batchSize, W6.optimizer.lr, W6.loss]).toEqual([128, 1e-3, "crossEntropy"]);
  });

  it("without Fashion-MNIST trains on seeded random data of its shape and says so and why", () => {
    const d = w6Data(3, join(empty, "absent"));
    expect(d.real).toBe(false);
    expect(d.source).toContain("random N(0,1) data of Fashion-MNIST's shape, 4096 samples");
    expect(d.source).toContain(`Fashion-MNIST not found in ${join(empty, "absent")}; install it with`);
    expect(w6Data(3, empty).source).toContain(`${empty} has neither train-images-idx3-ubyte nor`);
    const rows = W6_RANDOM_BATCHES * W6.batchSize;
    expect(d.data.length).toBe(rows);
    expect(d.data.sampleShape).toEqual([1, 28, 28]);
    // compared as bytes: toEqual over 3.2 million floats takes seconds
    const bytes = (a: unknown) => Buffer.from((a as Float32Array).buffer);
    expect(bytes(d.data.x).equals(bytes(randomClassification(rows, 784, 10, 3).x))).toBe(true);
    expect(bytes(w6Data(4, empty).data.x).equals(bytes(d.data.x))).toBe(false);
  });
});

describe("W7", () => {
  it("is chargpt (470,784 parameters) on 32 windows of 64 tokens, sequence cross-entropy, Adam 1e-3", () => {
    expect(W7.model).toEqual({ kind: "gpt", vocab: 256, context: 64, dim: 128, heads: 4, layers: 2 });
    expect(gptParameterCount(W7.model)).toBe(470_784);
    expect([W7.batchSize, W7.batchSize * W7.model.context]).toEqual([32, 2048]);
    expect([W7.optimizer.name, W7.optimizer.lr, W7.loss]).toEqual(["adam", 1e-3, "sequenceCrossEntropy"]);
  });

  // A fortunes-like folder: text files, a binary .dat index (a NUL in its header) and a .u8 symlink.
  const corpus = join(empty, "fortunes");
  const text = Array.from({ length: 40 }, (_, i) => `fortune ${i}: words, punctuation.\n%\n`).join("");
  mkdirSync(corpus);
  writeFileSync(join(corpus, "b-text"), text);
  writeFileSync(join(corpus, "b-text.dat"), Uint8Array.of(0, 0, 0, 2, 65, 66));
  symlinkSync(join(corpus, "b-text"), join(corpus, "b-text.u8"));

  it("draws windows of the text files only, y the next byte of x, keyed by (seed, epoch, window)", () => {
    const d = w7Data(5, 10, corpus);
    expect(d.real).toBe(true);
    expect(d.source).toBe(`the fortunes text (${text.length.toLocaleString("en-US")} bytes of 1 file, ${corpus})`);
    expect(d.data.length).toBe(10);
    const x = d.data.x as Int32Array,
      y = d.data.y as Int32Array;
    expect([x.length, y.length]).toEqual([640, 640]);
    const bytes = Buffer.from(text, "latin1");
    const check = (epoch: number) => {
      for (let k = 0; k < 10; k++) {
        const start = windowStart(5, epoch, k, bytes.length, 64);
        expect(Array.from(x.subarray(k * 64, (k + 1) * 64))).toEqual([...bytes.subarray(start, start + 64)]);
        expect(Array.from(y.subarray(k * 64, (k + 1) * 64))).toEqual([...bytes.subarray(start + 1, start + 65)]);
      }
    };
    check(0);
    const before = Array.from(x);
    d.redraw(3); // in place: the arrays the trainer shares
    check(3);
    expect(Array.from(x)).not.toEqual(before);
  });

  it("without the text draws from seeded random tokens and says so and why", () => {
    const d = w7Data(2, 4, empty);
    expect(d.real).toBe(false);
    expect(d.source).toBe(
      `random tokens (${W7_RANDOM_TOKENS.toLocaleString("en-US")} uniform bytes; text: ${empty} holds no text: ` +
        "no text file in the folder; apt-get install fortunes provides the text)",
    );
    expect(w7Data(2, 4, join(empty, "absent")).source).toContain(`text: ${join(empty, "absent")} does not exist`);
    const x = Array.from(d.data.x as Int32Array);
    expect(x.every((id) => Number.isInteger(id) && id >= 0 && id < 256)).toBe(true);
    expect(new Set(x).size).toBeGreaterThan(100); // 4 windows of 64 uniform bytes, not one value
    expect(Array.from(w7Data(2, 4, empty).data.x as Int32Array)).toEqual(x);
    expect(Array.from(w7Data(3, 4, empty).data.x as Int32Array)).not.toEqual(x);
  });

  it("holds W7_POOL_STEPS batches of windows by default", () => {
    expect(w7Data(0, undefined, empty).data.length).toBe(W7_POOL_STEPS * W7.batchSize);
  });
});
