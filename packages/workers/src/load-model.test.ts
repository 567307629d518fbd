import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Generator, nn, tensor } from "@threadgrad/core";
import { assertBuilt } from "./fixtures/harness.mjs";
import { loadModel, predictOutputs } from "./load-model.js";
import { buildMlp } from "./spec.js";
import { DataParallel } from "./trainer.js";

const SIZES = [6, 8, 3];
const dir = mkdtempSync(join(tmpdir(), "threadgrad-load-model-"));
const path = join(dir, "ckpt.msgpack");
const g = new Generator(5);
const x = new Float32Array(40 * SIZES[0]!).map(() => g.normal());
const y = new Int32Array(40).map(() => g.integer(0, 3));
let trainer: DataParallel;

beforeAll(async () => {
  assertBuilt();
  trainer = await DataParallel.create({ model: { kind: "mlp", sizes: SIZES, dropout: 0.5 }, workers: 2, seed: 1 });
  await trainer.fit({ x, y, length: 40 }, { epochs: 2, batchSize: 8 });
  await trainer.save(path);
});
afterAll(async () => {
  await trainer.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("DataParallel.predict and loadModel", () => {
  it("predict gives [N, outDim] outputs whose argmax is evaluate's predictions, in eval mode", async () => {
    const out = await trainer.predict(x);
    expect(out.length).toBe(40 * 3);
    const ev = await trainer.evaluate({ x, y, length: 40 });
    const argmax = Array.from({ length: 40 }, (_, i) => {
      const row = Array.from(out.subarray(i * 3, i * 3 + 3));
      return row.indexOf(Math.max(...row));
    });
    expect(argmax).toEqual(Array.from(ev.predictions!));
    // Dropout is off: the same input gives the same output twice.
    expect(Array.from(await trainer.predict(x))).toEqual(Array.from(out));
  });

  it("loadModel rebuilds the mlp without workers and matches the trainer's outputs", async () => {
    const model = await loadModel(path);
    expect(model.training).toBe(false);
    const out = predictOutputs(model, x, { sampleShape: [6], batchSize: 7 });
    expect(Array.from(out)).toEqual(Array.from(await trainer.predict(x)));
    const direct = model.forward(tensor(x.slice(0, 6), { shape: [1, 6] })) as ReturnType<typeof tensor>;
    expect(Array.from(direct.data)).toEqual(Array.from(out.subarray(0, 3)));
  });

  it("loadModel loads into a given module and refuses one whose shapes differ, naming the parameter", async () => {
    const given = buildMlp(SIZES, "relu", 0.5);
    const loaded = await loadModel(path, { model: given });
    expect(loaded).toBe(given);
    await expect(loadModel(path, { model: buildMlp([6, 9, 3]) })).rejects.toThrow(
      /parameter '0\.weight' has shape \[8, 6\] in .*ckpt\.msgpack, the model has \[9, 6\]/,
    );
    await expect(loadModel(path, { model: new nn.Sequential(new nn.Linear(6, 8)) })).rejects.toThrow(
      /holds parameters the model does not have: 3\.weight, 3\.bias/,
    );
  });

  it("predictOutputs refuses x that is not whole samples", () => {
    expect(() => predictOutputs(buildMlp(SIZES), new Float32Array(7), { sampleShape: [6] })).toThrow(
      /x has 7 values, not a whole number of samples of shape \[6\]/,
    );
  });
});
