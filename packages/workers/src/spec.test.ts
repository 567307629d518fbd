// The built-in image models: their parameter shapes are known without building them, they take flat
// rows or shaped samples, and a checkpoint holding one is checked field by field like an mlp's.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Generator, tensor } from "@threadgrad/core";
import { readCheckpoint, writeCheckpoint } from "./checkpoint.js";
import { assertBuilt } from "./fixtures/harness.mjs";
import { readTrainerCheckpoint } from "./persist.js";
import { type ImageModelSpec, buildImageModel, imageModelParameterShapes } from "./spec.js";
import { DataParallel } from "./trainer.js";

// biome-ignore lint/suspicious/noExplicitAny: a test reaches into a crafted payload at any depth
type Payload = Record<string, any>;
const dir = mkdtempSync(join(tmpdir(), "threadgrad-spec-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const spec = (kind: "cnn" | "lenet5", inChannels: number, height: number, width: number, classes: number) =>
  ({ kind, inChannels, height, width, classes }) satisfies ImageModelSpec;

describe("built-in image models", () => {
  it("imageModelParameterShapes lists exactly the parameters the built model has", () => {
    for (const s of [spec("cnn", 1, 28, 28, 10), spec("cnn", 3, 9, 13, 4), spec("lenet5", 1, 28, 28, 10)]) {
      const built = [...buildImageModel(s).namedParameters()].map(([n, p]) => [n, p.shape]);
      expect(imageModelParameterShapes(s)).toEqual(built);
    }
  });

  it("sizes the classifier from the input: 3136 for cnn and 400 for lenet5 on 28×28", () => {
    const cnn = imageModelParameterShapes(spec("cnn", 1, 28, 28, 10)) as [string, number[]][];
    expect(cnn.find(([n]) => n === "8.weight")![1]).toEqual([128, 64 * 7 * 7]);
    const lenet = imageModelParameterShapes(spec("lenet5", 1, 28, 28, 10)) as [string, number[]][];
    expect(lenet.find(([n]) => n === "8.weight")![1]).toEqual([120, 400]);
    expect(lenet.at(-2)).toEqual(["12.weight", [10, 84]]);
    // 3 channels, 9×13: pools to 4×6 then 2×3.
    const rgb = imageModelParameterShapes(spec("cnn", 3, 9, 13, 4)) as [string, number[]][];
    expect(rgb[0]).toEqual(["1.weight", [32, 3, 3, 3]]);
    expect(rgb.find(([n]) => n === "8.weight")![1]).toEqual([128, 64 * 2 * 3]);
  });

  it("takes flat rows and shaped samples alike, with the same result", () => {
    const model = buildImageModel(spec("cnn", 2, 8, 6, 5));
    const g = new Generator(1);
    const values = Array.from({ length: 3 * 2 * 8 * 6 }, () => g.normal());
    const flat = model.forward(tensor(values, { dtype: "float32" }).reshape([3, 96]));
    const shaped = model.forward(tensor(values, { dtype: "float32" }).reshape([3, 2, 8, 6]));
    expect(flat.shape).toEqual([3, 5]);
    expect(Array.from(shaped.data)).toEqual(Array.from(flat.data));
  });

  it("refuses images too small for the pooling, naming the model and the size", () => {
    expect(imageModelParameterShapes(spec("cnn", 1, 3, 28, 10))).toBe(
      "cnn needs images of at least 4×4 pixels, got 3×28",
    );
    expect(() => buildImageModel(spec("lenet5", 1, 8, 8, 10))).toThrow(
      "model: lenet5 needs images of at least 12×12 pixels, got 8×8",
    );
    expect(() => buildImageModel(spec("cnn", 0, 8, 8, 10))).toThrow(
      "cnn: inChannels must be a positive integer, got 0",
    );
  });
});

describe("a checkpoint of an image model", () => {
  it("is read back and checked field by field, and loads into the same predictions", async () => {
    assertBuilt();
    const model = spec("cnn", 1, 8, 8, 3);
    const g = new Generator(2);
    const data = {
      x: new Float32Array(24 * 64).map(() => g.normal()),
      y: new Int32Array(24).map(() => g.integer(0, 3)),
    };
    const t = await DataParallel.create({ model, workers: 2, seed: 1 });
    let before: Int32Array | null;
    try {
      await t.fit(data, { epochs: 1, batchSize: 8 });
      before = (await t.evaluate(data)).predictions;
      await t.save(join(dir, "cnn.msgpack"));
    } finally {
      await t.close();
    }
    const file = join(dir, "cnn.msgpack");
    expect(readTrainerCheckpoint(file).config.model).toEqual(model);
    const loaded = await DataParallel.load(file, { workers: 1 });
    try {
      expect((await loaded.evaluate(data)).predictions).toEqual(before);
    } finally {
      await loaded.close();
    }

    const good = readCheckpoint(file);
    let n = 0;
    const crafted = (change: (p: Payload) => void) => {
      const copy = structuredClone(good) as Payload;
      change(copy);
      const out = join(dir, `crafted-${n++}.msgpack`);
      writeCheckpoint(out, copy);
      return out;
    };
    const cases: [(p: Payload) => void, string][] = [
      [
        (p) => (p.config.model.height = 2),
        "field 'config.model.height' is too small: cnn needs images of at least 4×4",
      ],
      [(p) => (p.config.model.classes = 0), "field 'config.model.classes' must be an integer 1..65536, got 0"],
      [(p) => delete p.config.model.inChannels, "field 'config.model.inChannels' is missing"],
      [(p) => (p.config.model.kind = "resnet"), "field 'config.model.kind' must be one of mlp, cnn, lenet5"],
      [
        (p) => (p.config.model.height = p.config.model.width = 60_000),
        "field 'config.model' must make at most 268435456 parameters (it makes",
      ],
      [(p) => (p.config.model.inChannels = 3), "field 'params.1.weight.shape' must be [32, 3, 3, 3]"],
      [(p) => (p.params["0.weight"] = p.params["1.bias"]), "field 'params.0.weight' is not a parameter of the cnn"],
    ];
    for (const [change, message] of cases) {
      const f = crafted(change);
      expect(() => readTrainerCheckpoint(f)).toThrow(`checkpoint: ${f}: ${message}`);
    }
  });
});
