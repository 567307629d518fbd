// A checkpoint is data: every field is checked with a message naming the file and the field, sizes
// are bounded before anything is allocated, and a module named in the file is never imported.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Generator } from "@threadgrad/core";
import { loadTensor, readCheckpoint, storeTensor, writeCheckpoint } from "./checkpoint.js";
import { assertBuilt } from "./fixtures/harness.mjs";
import { readTrainerCheckpoint } from "./persist.js";
import { buildMlp, mlpParameterShapes } from "./spec.js";
import { DataParallel } from "./trainer.js";

const dir = mkdtempSync(join(tmpdir(), "threadgrad-persist-"));
const FAULTY = new URL("./fixtures/faulty-model.mjs", import.meta.url).href;
const open: DataParallel[] = [];
let good: Record<string, unknown>;
let files = 0;
// biome-ignore lint/suspicious/noExplicitAny: a test reaches into a crafted payload at any depth
type Payload = Record<string, any>;

function data(n: number) {
  const g = new Generator(3);
  return { x: new Float32Array(n * 4).map(() => g.normal()), y: new Int32Array(n).map(() => g.integer(0, 3)) };
}

/** The good checkpoint's payload with `change` applied to a deep copy, written with a valid CRC. */
function crafted(change: (p: Payload) => void): string {
  const copy = structuredClone(good) as Payload;
  change(copy);
  const file = join(dir, `crafted-${files++}.msgpack`);
  writeCheckpoint(file, copy);
  return file;
}

beforeAll(async () => {
  assertBuilt();
  const t = await DataParallel.create({ model: { kind: "mlp", sizes: [4, 8, 3] }, workers: 1, seed: 1 });
  await t.fit(data(24), { epochs: 1, batchSize: 8, untilStep: 2 });
  await t.save(join(dir, "good.msgpack"), { note: "kept" });
  await t.close();
  good = readCheckpoint(join(dir, "good.msgpack"));
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close()));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("readTrainerCheckpoint", () => {
  it("reads back what save wrote, every field typed", () => {
    const c = readTrainerCheckpoint(join(dir, "good.msgpack"));
    expect(c.config).toMatchObject({ workers: 1, model: { kind: "mlp", sizes: [4, 8, 3] }, seed: 1, schedule: null });
    expect(c.config.optimizer).toMatchObject({ name: "adam", lr: 1e-3 });
    expect(c.progress).toEqual({ batchSize: 8, epoch: 0, stepInEpoch: 2, globalStep: 2, optimizerStep: 2 });
    expect([...c.params.keys()]).toEqual(["0.weight", "0.bias", "2.weight", "2.bias"]);
    expect([...c.optimizerState.keys()]).toEqual(["expAvg", "expAvgSq"]);
    expect(c.extra).toEqual({ note: "kept" });
    expect(c.buffers).toEqual(new Map()); // the mlp has no buffers; the field is there, empty
  });

  it("reads a checkpoint written before buffers were saved, as one without them (null)", () => {
    const file = crafted((p) => delete p.buffers);
    expect(readTrainerCheckpoint(file).buffers).toBeNull();
  });

  it.each<[string, (p: Payload) => void, string]>([
    ["a missing optimizer", (p) => delete p.config.optimizer, "field 'config.optimizer' is missing; it must be a map"],
    ["a missing lr", (p) => delete p.config.optimizer.lr, "field 'config.optimizer.lr' is missing"],
    [
      "a bad lr",
      (p) => (p.config.optimizer.lr = -1),
      "field 'config.optimizer' is not valid (Adam: lr must be >= 0, got -1)",
    ],
    ["an infinite lr", (p) => (p.config.optimizer.lr = Infinity), "field 'config.optimizer.lr' must be finite"],
    ["an unknown optimizer", (p) => (p.config.optimizer.name = "lion"), "field 'config.optimizer.name' must be one of"],
    [
      "a NaN epoch",
      (p) => (p.progress.epoch = Number.NaN),
      "field 'progress.epoch' must be a non-negative integer, got NaN",
    ],
    ["a negative step", (p) => (p.progress.stepInEpoch = -1), "field 'progress.stepInEpoch' must be a non-negative"],
    ["a missing progress", (p) => delete p.progress, "field 'progress' is missing"],
    [
      "more updates than steps",
      (p) => (p.progress.optimizerStep = 9),
      "field 'progress.optimizerStep' must be at most globalStep",
    ],
    ["a string seed", (p) => (p.config.seed = "0"), "field 'config.seed' must be an integer"],
    [
      "an unknown schedule",
      (p) => (p.config.schedule = { kind: "warp" }),
      "field 'config.schedule.kind' must be one of",
    ],
    [
      "a schedule without its size",
      (p) => (p.config.schedule = { kind: "cosine" }),
      "field 'config.schedule.tMax' is missing",
    ],
    ["a float64 parameter", (p) => (p.params["0.weight"].dtype = "float64"), "field 'params.0.weight.dtype'"],
    [
      "a parameter of another shape",
      (p) => (p.params["0.weight"].shape = [4, 8]),
      "field 'params.0.weight.shape' must be [8, 4] (the parameter's shape), got [4,8]",
    ],
    [
      "too few bytes for the shape",
      (p) => (p.params["0.bias"].bytes = new Uint8Array(12)),
      "field 'params.0.bias.bytes' must be 32 bytes of float32 for shape [8], got 12 bytes",
    ],
    [
      "a parameter the mlp lacks",
      (p) => (p.params["9.weight"] = p.params["0.bias"]),
      "field 'params.9.weight' is not a param",
    ],
    [
      "a parameter named with a terminal escape, shown escaped",
      (p) => (p.params["\u001b[2J\u009b"] = p.params["0.bias"]),
      "field 'params.\\u001b[2J\\u009b' is not a parameter of the mlp",
    ],
    ["missing optimizer state", (p) => delete p.optimizerState.expAvgSq, "field 'optimizerState.expAvgSq' is missing"],
    [
      "foreign optimizer state",
      (p) => (p.optimizerState.momentum = {}),
      "field 'optimizerState.momentum' is not a state buffer",
    ],
    [
      "an unknown activation",
      (p) => (p.config.model.activation = "swish"),
      "field 'config.model.activation' must be one of",
    ],
    ["no workers", (p) => (p.config.workers = 0), "field 'config.workers' must be an integer 1..256, got 0"],
    ["a wrong kind", (p) => (p.kind = "other"), "field 'kind' must be threadgrad-trainer, got \"other\""],
    ["a missing extra", (p) => delete p.extra, "field 'extra' is missing"],
    [
      "a buffer in an mlp's checkpoint (it has none)",
      (p) => (p.buffers = { "0.runningMean": p.params["0.bias"] }),
      "field 'buffers.0.runningMean' is not a buffer of the mlp (it has none)",
    ],
    ["buffers that are not a map", (p) => (p.buffers = [1]), "field 'buffers' must be a map of fields, got [1]"],
  ])("refuses %s, naming the file and the field", (_what, change, message) => {
    const file = crafted(change);
    expect(() => readTrainerCheckpoint(file)).toThrow(`checkpoint: ${file}: ${message}`);
  });

  it("bounds a built-in model's size before allocating anything", () => {
    // 784 x 3e6: 2.4e9 parameters, refused from the sizes alone.
    const huge = crafted((p) => (p.config.model.sizes = [784, 3_000_000, 10]));
    expect(() => readTrainerCheckpoint(huge)).toThrow(
      `checkpoint: ${huge}: field 'config.model.sizes' must make at most 268435456 parameters (it makes 2385000010)`,
    );
    // 4 x 3e6 x 3 fits the bound, but the file holds no such parameters: refused from their shapes.
    const wide = crafted((p) => (p.config.model.sizes = [4, 3_000_000, 3]));
    expect(() => readTrainerCheckpoint(wide)).toThrow(
      `checkpoint: ${wide}: field 'params.0.weight.shape' must be [3000000, 4] (the parameter's shape), got [8,4]`,
    );
  });

  it("mlpParameterShapes matches the parameters buildMlp creates", () => {
    for (const [sizes, dropout] of [
      [[4, 8, 3], 0],
      [[5, 7, 6, 2], 0.5],
      [[3, 2], 0],
    ] as const) {
      const built = [...buildMlp([...sizes], "relu", dropout).namedParameters()].map(([n, p]) => [n, p.shape]);
      expect(mlpParameterShapes(sizes, dropout)).toEqual(built);
    }
  });
});

describe("a module named in a checkpoint is never imported", () => {
  const marker = join(dir, "marker");
  const side = `import{writeFileSync}from"node:fs";writeFileSync(${JSON.stringify(marker)},"ran");export default()=>0;`;
  it.each([
    ["node:child_process", { module: "node:child_process", export: "execSync", args: [`touch ${marker}`] }],
    ["a data: URL", { module: `data:text/javascript,${encodeURIComponent(side)}` }],
  ])("a model from %s: load refuses it and says how to pass the model", async (_what, model) => {
    const file = crafted((p) => {
      p.config.model = model;
      p.params = { "fc.weight": p.params["2.weight"] };
      p.optimizerState = {
        expAvg: { "fc.weight": p.params["fc.weight"] },
        expAvgSq: { "fc.weight": p.params["fc.weight"] },
      };
    });
    expect(readTrainerCheckpoint(file).config.model).toEqual(model); // read as data
    await expect(DataParallel.load(file, { workers: 1 })).rejects.toThrow(
      `checkpoint: ${file}: its model was built by module ${JSON.stringify(model.module).slice(0, 40)}`,
    );
    await expect(DataParallel.load(file)).rejects.toThrow(
      "DataParallel.load(path, { model: { module, export, args } })",
    );
    expect(existsSync(marker)).toBe(false);
  });

  it("a loss from a module is refused the same way", async () => {
    const file = crafted((p) => (p.config.loss = { module: "node:child_process", export: "execSync" }));
    await expect(DataParallel.load(file, { workers: 1 })).rejects.toThrow(
      'its loss comes from module "node:child_process" (export "execSync")',
    );
  });

  it("the module given again loads; one with other parameters is refused before any state is written", async () => {
    const t = await DataParallel.create({ model: { module: FAULTY, export: "createModel" }, workers: 1 });
    open.push(t);
    await t.fit(data(16), { epochs: 1, batchSize: 8 });
    const file = join(dir, "module.msgpack");
    await t.save(file);
    await expect(DataParallel.load(file)).rejects.toThrow(/its model was built by module .*faulty-model\.mjs/);
    const back = await DataParallel.load(file, { model: { module: FAULTY, export: "createModel" } });
    open.push(back);
    expect(back.progress.globalStep).toBe(2);
    expect([...back.arena.params]).toEqual([...t.arena.params]);
    await expect(DataParallel.load(file, { model: { kind: "mlp", sizes: [4, 3] } })).rejects.toThrow(
      `checkpoint: ${file} has no parameter '0.weight' (it holds fc.weight, fc.bias); ` +
        "is this the model it was saved from?",
    );
  });
});

describe("optimizer state stored as float64", () => {
  const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

  it("loads as the float32 state it widens, and the run continues with the same bits", async () => {
    const widened = crafted((p) => {
      for (const byParam of Object.values(p.optimizerState) as Payload[])
        for (const [name, t] of Object.entries(byParam) as [string, Payload][])
          byParam[name] = storeTensor(Float64Array.from(loadTensor(t as never, name)), t.shape);
    });
    expect(readTrainerCheckpoint(widened).optimizerState.get("expAvg")!.get("0.weight")!.dtype).toBe("float64");
    const a = await DataParallel.load(join(dir, "good.msgpack"), { workers: 1 });
    open.push(a);
    const b = await DataParallel.load(widened, { workers: 1 });
    open.push(b);
    for (const k of [0, 1]) expect(bits(b.arena.state(k))).toEqual(bits(a.arena.state(k)));
    await a.fit(data(24), { epochs: 2, batchSize: 8 });
    await b.fit(data(24), { epochs: 2, batchSize: 8 });
    expect(bits(b.arena.params)).toEqual(bits(a.arena.params));
  });

  // The checkpoint with expAvg of "0.bias" starting with `values`, stored as float64.
  const withBias = (values: number[]) =>
    crafted((p) => {
      const t = p.optimizerState.expAvg["0.bias"];
      const v = Float64Array.from(loadTensor(t, "0.bias"));
      v.set(values);
      p.optimizerState.expAvg["0.bias"] = storeTensor(v, t.shape);
    });

  it("values float32 cannot hold are rounded to float32, and those below FLT_MIN stored as 0", async () => {
    const t = await DataParallel.load(withBias([0.1, 1e-39, -1e-300, Infinity]), { workers: 1 });
    open.push(t);
    const m = t.arena.paramIn(t.arena.state(0), 1); // "0.bias" is the second parameter
    expect(Array.from(m.subarray(0, 4))).toEqual([Math.fround(0.1), 0, 0, Infinity]);
  });

  it("a finite value beyond float32's range is refused, naming the buffer, parameter, value and index", async () => {
    const file = withBias([0, 0, 1e300]);
    await expect(DataParallel.load(file, { workers: 1 })).rejects.toThrow(
      `checkpoint: ${file}: optimizer state 'expAvg' of '0.bias' holds 1e+300 at index 2, beyond float32's range`,
    );
  });
});
