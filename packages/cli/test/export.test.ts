// `threadgrad export` end to end: train one small epoch, export, run the graph in onnxruntime and
// compare it with `threadgrad eval` and with the trained model's own forward.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { tensor } from "@threadgrad/core";
import {
  DataParallel,
  loadTensor,
  readCheckpoint,
  readTrainerCheckpoint,
  type StoredTensor,
  writeCheckpoint,
} from "@threadgrad/workers";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { storedRun } from "../src/settings.js";
import { loadRunData } from "../src/setup.js";
import { jsonLines, requireBuilt, run, tempDir, trainSmallRun } from "./helpers.js";

const tmp = tempDir("threadgrad-export-");
const ckpt = join(tmp.path, "run", "checkpoint-latest.msgpack");

beforeAll(async () => {
  requireBuilt();
  await trainSmallRun(join(tmp.path, "run"));
});
afterAll(() => tmp.cleanup());

describe("threadgrad export --format onnx", () => {
  it("writes a graph whose logits give eval's loss and accuracy and match the model's forward", async () => {
    const out = join(tmp.path, "model.onnx");
    const r = await run(["export", "--checkpoint", ckpt, "--format", "onnx", "--out", out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`wrote ${out} (onnx: input [batch, 784] float32 -> logits [batch, 10])\n`);

    const evaluated = jsonLines((await run(["eval", "--checkpoint", ckpt, "--workers", "1", "--json"])).stdout)[0]!;
    const test = loadRunData({ ...storedRun(readTrainerCheckpoint(ckpt)).settings, limit: null }).test;
    const session = await ort.InferenceSession.create(out);
    expect(session.inputNames).toEqual(["input"]);
    expect(session.outputNames).toEqual(["logits"]);
    const x = new Float32Array(test.x);
    const logits = (await session.run({ input: new ort.Tensor("float32", x, [test.length, 784]) })).logits!
      .data as Float32Array;

    let loss = 0;
    let correct = 0;
    for (let i = 0; i < test.length; i++) {
      const row = logits.subarray(10 * i, 10 * i + 10);
      const top = Math.max(...row);
      const logSum = top + Math.log(row.reduce((a, v) => a + Math.exp(v - top), 0));
      loss += logSum - row[test.y[i]!]!;
      if (row.indexOf(top) === test.y[i]) correct++;
    }
    expect(evaluated.samples).toBe(test.length);
    expect(correct / test.length).toBe(evaluated.accuracy);
    expect(Math.abs(loss / test.length - (evaluated.loss as number))).toBeLessThan(1e-4);

    const trainer = await DataParallel.load(ckpt, { workers: 1 });
    try {
      trainer.model.eval();
      const rows = 64;
      const expected = trainer.model.forward(tensor(x.subarray(0, rows * 784), { shape: [rows, 784] })).data;
      for (let i = 0; i < rows * 10; i++) expect(Math.abs(logits[i]! - expected[i]!)).toBeLessThanOrEqual(1e-5);
    } finally {
      await trainer.close();
    }
  });

  it("keeps an existing --out file unless --force is given", async () => {
    const out = join(tmp.path, "kept.onnx");
    writeFileSync(out, "previous");
    const r = await run(["export", "--checkpoint", ckpt, "--out", out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`threadgrad export: --out ${out} already exists; pass --force to replace it`);
    expect(readFileSync(out, "utf8")).toBe("previous");
    expect((await run(["export", "--checkpoint", ckpt, "--out", out, "--force"])).code).toBe(0);
    expect((await ort.InferenceSession.create(out)).outputNames).toEqual(["logits"]);
  });
});

describe("threadgrad export --format safetensors", () => {
  it("writes the checkpoint's parameters under PyTorch's Sequential names", async () => {
    const out = join(tmp.path, "model.safetensors");
    const r = await run(["export", "--checkpoint", ckpt, "--format", "safetensors", "--out", out]);
    expect(r.code, r.stderr).toBe(0);
    const bytes = readFileSync(out);
    const headerBytes = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + headerBytes).toString("utf8")) as Record<
      string,
      { dtype: string; shape: number[]; data_offsets: [number, number] }
    >;
    const params = readCheckpoint(ckpt).params as Record<string, StoredTensor>;
    expect(Object.keys(header).sort()).toEqual(["0.bias", "0.weight", "2.bias", "2.weight", "__metadata__"]);
    for (const [name, stored] of Object.entries(params)) {
      const {
        dtype,
        shape,
        data_offsets: [begin, end],
      } = header[name]!;
      expect([dtype, shape]).toEqual(["F32", stored.shape]);
      const start = 8 + headerBytes + begin;
      const values = Array.from({ length: (end - begin) / 4 }, (_, i) => bytes.readFloatLE(start + 4 * i));
      expect(values).toEqual(Array.from(loadTensor(stored, name)));
    }
  });
});

describe("threadgrad export errors", () => {
  it("refuses a checkpoint that names a user module, without importing it", async () => {
    const marker = join(tmp.path, "imported");
    const module = join(tmp.path, "model.mjs");
    writeFileSync(module, `import { writeFileSync } from "node:fs"; writeFileSync(${JSON.stringify(marker)}, "x");`);
    const path = join(tmp.path, "user-model.msgpack");
    // The trained run's checkpoint, its model now said to come from the module: valid in every other field.
    const payload = readCheckpoint(ckpt) as { config: { model: unknown } };
    payload.config.model = { module: pathToFileURL(module).href, export: "default" };
    writeCheckpoint(path, payload);
    const r = await run(["export", "--checkpoint", path, "--out", join(tmp.path, "user.onnx")]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`threadgrad export: export: ${path} holds a model from a user module`);
    expect(existsSync(marker)).toBe(false);
  });

  it("names a bad --format and a missing --out", async () => {
    const bad = await run(["export", "--checkpoint", ckpt, "--format", "tflite", "--out", join(tmp.path, "x")]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("threadgrad export: --format must be one of onnx, safetensors, got tflite");
    const missing = await run(["export", "--checkpoint", ckpt]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("required option '--out <path>' not specified");
  });
});
