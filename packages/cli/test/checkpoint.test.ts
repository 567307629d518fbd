// End-to-end: a checkpoint is data. Crafted files (valid CRC) exit 2 naming the file and the field,
// a module they name is never imported, and a full disk stops the run with exit 1 naming the
// checkpoint while the previous one stays loadable.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Generator } from "@threadgrad/core";
import { readCheckpoint, readTrainerCheckpoint, writeCheckpoint } from "@threadgrad/workers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { requireBuilt, run, tempDir } from "./helpers.js";

const tmp = tempDir();
const DATA = join(tmp.path, "d.csv");
const GOOD = join(tmp.path, "run", "checkpoint-latest.msgpack");
const MARKER = join(tmp.path, "imported");
let good: Record<string, unknown>;
let files = 0;
// biome-ignore lint/suspicious/noExplicitAny: a test reaches into a crafted payload at any depth
type Payload = Record<string, any>;

/** A CSV of 60 rows, 4 features, 3 classes: trains in well under a second. */
function writeData(): void {
  const g = new Generator(1);
  const rows = Array.from(
    { length: 60 },
    (_, i) => `${[0, 1, 2, 3].map(() => g.random().toFixed(3)).join(",")},${i % 3}`,
  );
  writeFileSync(DATA, `a,b,c,d,y\n${rows.join("\n")}\n`);
}

const train = (...args: string[]) =>
  run(["train", "--data", `csv:${DATA}`, "--target", "y", "--workers", "1", "--quiet", ...args]);

/** The good checkpoint with `change` applied to a copy, written with a valid CRC. */
function crafted(change: (p: Payload) => void): string {
  const copy = structuredClone(good) as Payload;
  change(copy);
  const file = join(tmp.path, `crafted-${files++}.msgpack`);
  writeCheckpoint(file, copy);
  return file;
}

beforeAll(async () => {
  requireBuilt();
  writeData();
  const r = await train("--model", "mlp:4,8,3", "--epochs", "1", "--out", join(tmp.path, "run"));
  expect(r.code, r.stderr).toBe(0);
  good = readCheckpoint(GOOD);
});
afterAll(tmp.cleanup);

describe("a checkpoint's module is never imported", () => {
  const side = `import{writeFileSync}from"node:fs";writeFileSync(${JSON.stringify(MARKER)},"");export default()=>0;`;
  const modules = [
    { module: "node:child_process", export: "execSync", args: [`touch ${MARKER}`] },
    { module: `data:text/javascript,${encodeURIComponent(side)}` },
  ];
  it.each(
    modules.flatMap(
      (m) =>
        [
          ["eval", m],
          ["train --resume", m],
        ] as const,
    ),
  )("%s with a model from %j exits 2 and says how to load it", async (command, model) => {
    const file = crafted((p) => (p.config.model = model));
    const r =
      command === "eval"
        ? await run(["eval", "--checkpoint", file, "--workers", "1"])
        : await run(["train", "--resume", file, "--workers", "1"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`checkpoint: ${file}: its model was built by module "${model.module.slice(0, 30)}`);
    expect(r.stderr).toContain("DataParallel.load(path, { model: { module, export } })");
    expect(existsSync(MARKER)).toBe(false);
  });
});

describe("malformed checkpoints exit 2 naming the file and the field", () => {
  it.each<[string, (p: Payload) => void, string]>([
    [
      "a NaN epoch",
      (p) => (p.progress.epoch = Number.NaN),
      "field 'progress.epoch' must be a non-negative integer, got NaN",
    ],
    ["no optimizer", (p) => delete p.config.optimizer, "field 'config.optimizer' is missing"],
    [
      "a hidden layer of 3e6",
      (p) => {
        p.config.model.sizes = [4, 3_000_000, 3];
        p.extra.cli.settings.model = [4, 3_000_000, 3];
      },
      "field 'params.0.weight.shape' must be [3000000, 4] (the parameter's shape), got [8,4]",
    ],
    [
      "a stored lr of -1",
      (p) => (p.extra.cli.settings.lr = -1),
      "field 'extra.cli.settings.lr' must be a number >= 0, got -1",
    ],
    [
      "a stored lr as text",
      (p) => (p.extra.cli.settings.lr = "0.1"),
      "field 'extra.cli.settings.lr' must be a number, got \"0.1\"",
    ],
    ["no batch size", (p) => delete p.extra.cli.settings.batchSize, "field 'extra.cli.settings.batchSize' is missing"],
    [
      "a bad best",
      (p) => (p.extra.cli.best = { metric: "f1" }),
      "field 'extra.cli.best.metric' must be one of valAccuracy, valLoss, latest, testAccuracy, testLoss, got \"f1\"",
    ],
    [
      "a run record of another model",
      (p) => (p.extra.cli.settings.model = [4, 9, 3]),
      "field 'extra.cli.settings.model' (mlp:4,9,3 relu dropout 0) differs from field 'config.model'",
    ],
  ])("%s", async (_what, change, message) => {
    const file = crafted(change);
    for (const args of [
      ["train", "--resume", file, "--workers", "1"],
      ["eval", "--checkpoint", file, "--workers", "1"],
    ]) {
      const r = await run(args);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(`checkpoint: ${file}: ${message}`);
    }
  });

  it("a handful of seeded field mutations: each exits 0 or exits 2 naming the file", async () => {
    const g = new Generator(7);
    const values: unknown[] = [Number.NaN, -1, "x", null, [], {}, 1e12, true];
    const fields: [string, ...string[]][] = [
      ["config", "accumulateSteps"],
      ["config", "schedule"],
      ["progress", "globalStep"],
      ["extra", "cli", "settings", "evalEvery"],
      ["extra", "cli", "settings", "data"],
      ["optimizerState", "expAvg"],
      ["params", "0.bias", "shape"],
      ["extra", "cli", "trainLoss"],
    ];
    for (const path of fields) {
      const value = values[g.integer(0, values.length)];
      const file = crafted((p) => {
        let o = p;
        for (const key of path.slice(0, -1)) o = o[key];
        o[path.at(-1)!] = value;
      });
      const r = await run(["eval", "--checkpoint", file, "--workers", "1", "--json"]);
      expect([0, 2], `${path.join(".")} = ${String(value)}: ${r.stderr}`).toContain(r.code);
      if (r.code === 2) expect(r.stderr).toContain(`checkpoint: ${file}`);
    }
  });

  it("eval says which data it reads when the data comes from the checkpoint", async () => {
    const r = await run(["eval", "--checkpoint", GOOD, "--workers", "1", "--json"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(`eval: reading csv:${DATA}, the data ${GOOD} was trained on (--data chooses other data)\n`);
  });
});

describe("a full disk (tmpfs)", () => {
  const mnt = join(tmp.path, "tmpfs");
  let mountError: string | null = null;
  beforeAll(() => {
    mkdirSync(mnt);
    try {
      // Two checkpoints of about 96 KiB and the run's small files fit; a third checkpoint does not.
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=256k", "tmpfs", mnt], { stdio: "pipe" });
    } catch (err) {
      mountError = String((err as { stderr?: Buffer }).stderr ?? err).trim();
    }
  });
  afterAll(() => {
    if (mountError === null) execFileSync("umount", [mnt]);
  });

  it("stops the run with exit 1 naming the checkpoint; the previous one still loads", async (ctx) => {
    // Needs root (CI runs as root); the workers package's injected short write covers the same path anywhere.
    if (mountError !== null) ctx.skip(`cannot mount a tmpfs here (needs root): ${mountError}`);
    const r = await train("--model", "mlp:4,1000,3", "--epochs", "3", "--out", mnt);
    expect(r.code).toBe(1);
    const m = /threadgrad train: error: checkpoint: cannot write (\S+): ENOSPC: no space left on device/.exec(r.stderr);
    expect(m, r.stderr).not.toBeNull();
    const named = m![1]!;
    expect([join(mnt, "checkpoint-latest.msgpack"), join(mnt, "checkpoint-best.msgpack")]).toContain(named);
    expect(readTrainerCheckpoint(named).progress).toMatchObject({ epoch: 1, stepInEpoch: 0 });
    expect(readdirSync(mnt).filter((n) => n.includes(".tmp-"))).toEqual([]);
  });
});
