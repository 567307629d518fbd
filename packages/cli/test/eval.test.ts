import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { DataParallel, readCheckpoint, type StoredTensor, writeCheckpoint } from "@threadgrad/workers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { idxBytes, jsonLines, requireBuilt, run, tempDir, trainSmallRun } from "./helpers.js";

const tmp = tempDir("threadgrad-eval-");
const ckpt = join(tmp.path, "run", "checkpoint-latest.msgpack");

beforeAll(async () => {
  requireBuilt();
  await trainSmallRun(join(tmp.path, "run"));
});
afterAll(() => tmp.cleanup());

describe("threadgrad eval", () => {
  it("a finite evaluation exits 0", async () => {
    const r = await run(["eval", "--checkpoint", ckpt, "--workers", "1", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(Number.isFinite(jsonLines(r.stdout)[0]?.loss)).toBe(true);
  });

  it("a NaN loss prints the figures, then fails with exit 1 and says why", async () => {
    // The trained checkpoint with one weight set to NaN: valid data, but every output is NaN.
    const payload = readCheckpoint(ckpt) as { params: Record<string, StoredTensor> };
    const weight = payload.params["0.weight"]!;
    new DataView(weight.bytes.buffer, weight.bytes.byteOffset).setFloat32(0, Number.NaN, true);
    const broken = join(tmp.path, "nan.msgpack");
    writeCheckpoint(broken, payload);
    const r = await run(["eval", "--checkpoint", broken, "--workers", "1", "--json"]);
    expect(r.code).toBe(1);
    expect(jsonLines(r.stdout)[0]).toMatchObject({ event: "eval", loss: null });
    expect(r.stderr).toContain(
      "threadgrad eval: error: the loss on digits (test) is NaN: the model's outputs overflow or are NaN on this data",
    );
  });
});

// fixtures/rows-model.mjs predicts class 0 for every row of a forward of exactly `rows` rows and
// class 1 for any other: the confusion matrix's columns count the rows evaluated in such batches.
describe("threadgrad eval's batches on images", () => {
  const ROWS_MODEL = fileURLToPath(new URL("../../workers/src/fixtures/rows-model.mjs", import.meta.url));

  /** An IDX folder of `n` 2x2 images per split, labelled 0, 1, 0, ... */
  function images(name: string, n: number): string {
    const dir = join(tmp.path, name);
    mkdirSync(dir);
    for (const prefix of ["train", "t10k"]) {
      const pixels = Array.from({ length: n * 4 }, (_, i) => (i * 37) % 256);
      writeFileSync(join(dir, `${prefix}-images-idx3-ubyte`), idxBytes(0x803, [n, 2, 2], pixels));
      writeFileSync(
        join(dir, `${prefix}-labels-idx1-ubyte`),
        idxBytes(
          0x801,
          [n],
          pixels.slice(0, n).map((_, i) => i % 2),
        ),
      );
    }
    return dir;
  }

  /** A checkpoint of the rows model's `exported`, trained in batches of `batchSize` first unless it is null. */
  async function rowsCheckpoint(exported: string, batchSize: number | null): Promise<string> {
    const model = { module: ROWS_MODEL, export: exported };
    const trainer = await DataParallel.create({ model, workers: 1 });
    try {
      const n = 10;
      const data = {
        x: new Float32Array(n * 4).map((_, i) => i / 40),
        y: new Int32Array(n).map((_, i) => i % 2),
        length: n,
      };
      if (batchSize !== null) await trainer.fit(data, { epochs: 1, batchSize });
      const file = join(tmp.path, `${exported}.msgpack`);
      await trainer.save(file);
      return file;
    } finally {
      await trainer.close();
    }
  }

  async function predictedCounts(file: string, exported: string, data: string): Promise<number[]> {
    const args = ["eval", "--checkpoint", file, "--model", `${ROWS_MODEL}#${exported}`, "--data", `idx:${data}`];
    const r = await run([...args, "--workers", "1", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const matrix = jsonLines(r.stdout)[0]!.confusionMatrix as number[][];
    return [0, 1].map((c) => matrix.reduce((sum, row) => sum + row[c]!, 0));
  }

  it("are the batch size the checkpoint recorded", async () => {
    const file = await rowsCheckpoint("createModel5", 5);
    // 12 images: batches of 5, 5 and 2
    expect(await predictedCounts(file, "createModel5", images("twelve", 12))).toEqual([10, 2]);
  });

  it("are 64 images, the default --batch-size, for a checkpoint saved before it trained", async () => {
    const file = await rowsCheckpoint("createModel64", null);
    // 130 images: batches of 64, 64 and 2 (one batch of 1,024 would make every prediction 1)
    expect(await predictedCounts(file, "createModel64", images("many", 130))).toEqual([128, 2]);
  });
});
