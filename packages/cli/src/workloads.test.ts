import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { W6, W6_RANDOM_BATCHES, randomClassification, w6Data } from "./workloads.js";

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
