// Which batches DataParallel.evaluate runs: the model in fixtures/rows-model.mjs predicts class 0 for
// the rows of a forward of exactly its `rows` rows and class 1 for any other, so the predictions
// show the batches (one worker: its shard is the whole batch).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt } from "./fixtures/harness.mjs";
import { DataParallel, type TrainerOptions } from "./trainer.js";

const ROWS_MODEL = new URL("./fixtures/rows-model.mjs", import.meta.url).href;
const open: DataParallel[] = [];
const dirs: string[] = [];

function data(n: number) {
  return {
    x: new Float32Array(n * 4).map((_, i) => Math.sin(i)),
    y: new Int32Array(n).map((_, i) => i % 2),
    length: n,
  };
}

const rowsModel = (rows: number) => ({ module: ROWS_MODEL, export: "createModel", args: [rows] });

async function create(rows: number, opts: Partial<TrainerOptions> = {}): Promise<DataParallel> {
  const model = rowsModel(rows);
  const t = await DataParallel.create({ model, workers: 1, ...opts });
  open.push(t);
  return t;
}

/** `marked` rows of class 0 (a batch of the model's `rows`), then `rest` of class 1. */
const classes = (marked: number, rest: number) => [...new Array(marked).fill(0), ...new Array(rest).fill(1)];

beforeAll(() => assertBuilt());
afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close()));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe("DataParallel.evaluate's batches", () => {
  it("default to the batch size of the trainer's last fit", async () => {
    const t = await create(5);
    await t.fit(data(10), { epochs: 1, batchSize: 5 });
    // 12 rows: batches of 5, 5 and 2 (in one batch of 1,024 rows every prediction would be 1)
    const ev = await t.evaluate(data(12));
    expect(Array.from(ev.predictions!)).toEqual(classes(10, 2));
    expect(ev.samples).toBe(12);
  });

  it("default to the batch size a checkpoint recorded, in the trainer loaded from it", async () => {
    const t = await create(5);
    await t.fit(data(10), { epochs: 1, batchSize: 5 });
    const dir = mkdtempSync(join(tmpdir(), "threadgrad-evaluate-"));
    dirs.push(dir);
    await t.save(join(dir, "ckpt.msgpack"));
    const loaded = await DataParallel.load(join(dir, "ckpt.msgpack"), { workers: 1, model: rowsModel(5) });
    open.push(loaded);
    expect(loaded.progress.batchSize).toBe(5);
    expect(Array.from((await loaded.evaluate(data(12))).predictions!)).toEqual(classes(10, 2));
  });

  it("are batchSize rows when it is given", async () => {
    const t = await create(3);
    await t.fit(data(10), { epochs: 1, batchSize: 5 });
    expect(Array.from((await t.evaluate(data(8), { batchSize: 3 })).predictions!)).toEqual(classes(6, 2));
  });

  it("are 1,024 rows, at most maxBatchSize, for a trainer that has never trained", async () => {
    const fresh = await create(1024);
    expect(Array.from((await fresh.evaluate(data(1030))).predictions!)).toEqual(classes(1024, 6));
    const capped = await create(100, { maxBatchSize: 100 });
    expect(Array.from((await capped.evaluate(data(250))).predictions!)).toEqual(classes(200, 50));
  });
});
