import { join } from "node:path";
import { readCheckpoint, type StoredTensor, writeCheckpoint } from "@threadgrad/workers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jsonLines, requireBuilt, run, tempDir, trainSmallRun } from "./helpers.js";

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
