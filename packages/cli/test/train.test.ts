// End-to-end: short training runs of the built binary on a slice of the built-in digits.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readCheckpoint } from "@threadgrad/workers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadDataset } from "../src/data/index.js";
import { type RunResult, jsonLines, requireBuilt, run, tempDir } from "./helpers.js";

const tmp = tempDir();
afterAll(tmp.cleanup);

// 512 samples, batch 64: 8 steps per epoch.
const SMALL = ["--limit", "512", "--batch-size", "64", "--workers", "2"];

// The run several tests look at, made once here so that any test also runs alone (`vitest -t`).
const out = join(tmp.path, "run");
let trained: RunResult;
beforeAll(async () => {
  requireBuilt();
  trained = await run(["train", ...SMALL, "--epochs", "3", "--json", "--out", out]);
}, 120_000);

interface Stored {
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

/** Parameters and optimizer state of a checkpoint as one byte string per tensor. */
function tensorsOf(path: string): Record<string, string> {
  const ckpt = readCheckpoint(path) as {
    params: Record<string, Stored>;
    optimizerState: Record<string, Record<string, Stored>>;
  };
  const out: Record<string, string> = {};
  for (const [name, t] of Object.entries(ckpt.params)) out[`param ${name}`] = Buffer.from(t.bytes).toString("base64");
  for (const [buffer, byParam] of Object.entries(ckpt.optimizerState)) {
    for (const [name, t] of Object.entries(byParam)) out[`${buffer} ${name}`] = Buffer.from(t.bytes).toString("base64");
  }
  return out;
}

describe("threadgrad train", () => {
  it("trains on a slice of digits with --json: loss goes down, the last line is the summary", () => {
    const r = trained;
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const events = jsonLines(r.stdout);
    expect(events[0]!.event).toBe("start");
    const steps = events.filter((e) => e.event === "step");
    expect(steps).toHaveLength(24);
    expect(events.filter((e) => e.event === "epoch")).toHaveLength(3);
    expect(events.filter((e) => e.event === "eval")).toHaveLength(3);
    const mean = (xs: Record<string, unknown>[]) => xs.reduce((a, e) => a + (e.loss as number), 0) / xs.length;
    expect(mean(steps.slice(-4))).toBeLessThan(0.6 * mean(steps.slice(0, 4)));
    const summary = events[events.length - 1]!;
    expect(summary.event).toBe("summary");
    expect(Object.keys(summary)).toEqual(
      expect.arrayContaining(["trainLoss", "testLoss", "testAccuracy", "wallSeconds", "samplesPerSec", "workers"]),
    );
    expect(summary.workers).toBe(2);
    expect(summary.testAccuracy).toBeGreaterThan(0.5);
    expect(summary.testAccuracy).toBeLessThanOrEqual(1);
  });

  it("writes config.json, metrics.jsonl, both checkpoints and an offline report.html", () => {
    for (const f of [
      "config.json",
      "metrics.jsonl",
      "checkpoint-latest.msgpack",
      "checkpoint-best.msgpack",
      "report.html",
    ]) {
      expect(existsSync(join(out, f)), f).toBe(true);
    }
    const config = JSON.parse(readFileSync(join(out, "config.json"), "utf8")) as Record<string, unknown>;
    expect(config.model).toEqual([784, 128, 10]);
    expect(config.limit).toBe(512);
    const metrics = jsonLines(readFileSync(join(out, "metrics.jsonl"), "utf8"));
    const step = metrics.find((m) => m.event === "step")!;
    expect(Object.keys(step)).toEqual(
      expect.arrayContaining(["step", "epoch", "loss", "lr", "gradNorm", "samplesPerSec"]),
    );
    expect(metrics.filter((m) => m.event === "eval").every((m) => typeof m.testAccuracy === "number")).toBe(true);
    const html = readFileSync(join(out, "report.html"), "utf8");
    expect(html).toContain("<svg");
    expect(html).not.toMatch(/<script|<link|@import|url\(/);
  });

  it("prints plain progress lines and the summary when stdout is not a terminal", async () => {
    const r = await run([
      "train",
      ...SMALL,
      "--epochs",
      "1",
      "--eval-every",
      "4steps",
      "--out",
      join(tmp.path, "plain"),
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^step \d+\/8 \(\d+%\)/m);
    expect(r.stdout).toContain("epoch 1/1  train loss");
    expect(r.stdout.match(/^eval at step/gm)).toHaveLength(2);
    expect(r.stdout).toMatch(/test accuracy\s+\d+\.\d+%/);
    expect(r.stdout).toMatch(/throughput\s+[\d,]+ samples\/s on 2 workers/);
  });

  it("resumes bit for bit: 1 epoch then --resume to 2 equals 2 epochs straight", async () => {
    const flags = [...SMALL, "--dropout", "0.1", "--quiet"];
    const straight = join(tmp.path, "straight"),
      split = join(tmp.path, "split");
    expect((await run(["train", ...flags, "--epochs", "2", "--out", straight])).code).toBe(0);
    expect((await run(["train", ...flags, "--epochs", "1", "--out", split])).code).toBe(0);
    const resumed = await run([
      "train",
      "--resume",
      join(split, "checkpoint-latest.msgpack"),
      "--epochs",
      "2",
      "--json",
    ]);
    expect(resumed.code).toBe(0);
    expect(tensorsOf(join(split, "checkpoint-latest.msgpack"))).toEqual(
      tensorsOf(join(straight, "checkpoint-latest.msgpack")),
    );
    const summary = jsonLines(resumed.stdout).pop()!;
    const again = await run(["eval", "--checkpoint", join(straight, "checkpoint-latest.msgpack"), "--json"]);
    expect(jsonLines(again.stdout)[0]!.loss).toBe(summary.testLoss);
  });

  it("--shards 2: 1 and 2 workers, or a resume across them, write the same bits; 3 parts on 2 workers are refused", async () => {
    const runs = [];
    for (const workers of ["1", "2"]) {
      const dir = join(tmp.path, `shards-${workers}w`);
      const flags = ["--limit", "512", "--batch-size", "64", "--epochs", "2", "--shards", "2", "--json"];
      const r = await run(["train", ...flags, "--workers", workers, "--out", dir]);
      expect(r.code, r.stderr).toBe(0);
      runs.push({ summary: jsonLines(r.stdout).pop()!, tensors: tensorsOf(join(dir, "checkpoint-latest.msgpack")) });
    }
    expect(runs[1]!.tensors).toEqual(runs[0]!.tensors);
    expect(runs[1]!.summary.testLoss).toBe(runs[0]!.summary.testLoss);
    // The checkpoint keeps --shards: 1 epoch on 2 workers, resumed on 1, ends where both straight runs did.
    const split = join(tmp.path, "shards-resumed");
    const half = ["--limit", "512", "--batch-size", "64", "--epochs", "1", "--shards", "2", "--workers", "2"];
    expect((await run(["train", ...half, "--quiet", "--out", split])).code).toBe(0);
    const latest = join(split, "checkpoint-latest.msgpack");
    const resumed = await run(["train", "--resume", latest, "--epochs", "2", "--workers", "1", "--quiet"]);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(tensorsOf(latest)).toEqual(runs[0]!.tensors);
    const bad = await run([
      "train",
      "--limit",
      "64",
      "--workers",
      "2",
      "--shards",
      "3",
      "--out",
      join(tmp.path, "bad"),
    ]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("shards (3) must be a multiple of the number of workers (2)");
    expect(existsSync(join(tmp.path, "bad"))).toBe(false); // the refused run leaves no empty folder behind
  });

  it("refuses to change a training setting on --resume", async () => {
    const r = await run(["train", "--resume", join(out, "checkpoint-latest.msgpack"), "--lr", "0.5"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--resume: --lr 0.5 differs from the checkpoint's 0.002");
  });

  it("Ctrl-C finishes the step, writes a checkpoint, prints the resume command and exits 130", async () => {
    const dir = join(tmp.path, "interrupted");
    let isSent = false;
    const r = await run(["train", "--limit", "2000", "--epochs", "50", "--workers", "2", "--json", "--out", dir], {
      onStdout: (text, child) => {
        if (!isSent && text.includes('"event":"step"')) {
          isSent = true;
          child.kill("SIGINT");
        }
      },
    });
    expect(r.code).toBe(130);
    const checkpoint = join(dir, "checkpoint-latest.msgpack");
    expect(existsSync(checkpoint)).toBe(true);
    expect(r.stderr).toContain(`threadgrad train --resume ${checkpoint}`);
    const last = jsonLines(r.stdout).pop()!;
    expect(last.event).toBe("interrupted");
    const stopped = readCheckpoint(checkpoint) as { progress: { globalStep: number; epoch: number } };
    expect(stopped.progress.globalStep).toBe(last.step);
    expect(stopped.progress.epoch).toBe(last.epochsDone);
    expect(stopped.progress.epoch).toBeLessThan(50);
    // The printed command works (shortened to the current epoch to keep the test quick).
    const resumed = await run([
      "train",
      "--resume",
      checkpoint,
      "--epochs",
      String(stopped.progress.epoch + 1),
      "--quiet",
    ]);
    expect(resumed.code).toBe(0);
    expect(resumed.stdout).toContain("test accuracy");
  });
});

describe("threadgrad train: signals and non-finite evaluations", () => {
  it("SIGTERM stops like Ctrl-C: the step finishes, a loadable checkpoint is written, exit 143", async () => {
    const dir = join(tmp.path, "terminated");
    let isSent = false;
    const r = await run(["train", "--limit", "2000", "--epochs", "50", "--workers", "2", "--json", "--out", dir], {
      onStdout: (text, child) => {
        if (!isSent && text.includes('"event":"step"')) {
          isSent = true;
          child.kill("SIGTERM");
        }
      },
    });
    expect(r.signal).toBeNull();
    expect(r.code).toBe(143);
    expect(r.stderr).toContain("SIGTERM: stopping after the current step");
    const checkpoint = join(dir, "checkpoint-latest.msgpack");
    expect(r.stderr).toContain(`threadgrad train --resume ${checkpoint}`);
    const last = jsonLines(r.stdout).pop()!;
    expect(last.event).toBe("interrupted");
    const stopped = readCheckpoint(checkpoint) as { progress: { globalStep: number } };
    expect(stopped.progress.globalStep).toBe(last.step);
    expect(stopped.progress.globalStep).toBeGreaterThan(0);
  });

  it("a second signal exits at once with its status, without a checkpoint", async () => {
    const dir = join(tmp.path, "terminated-twice");
    let isSent = false;
    let isTermSent = false;
    const r = await run(["train", "--limit", "2000", "--epochs", "50", "--workers", "2", "--json", "--out", dir], {
      onStdout: (text, child) => {
        if (!isSent && text.includes('"event":"step"')) {
          isSent = true;
          child.kill("SIGINT");
        }
      },
      // Two signals sent back to back may be handled in either order: the second waits for the
      // first one's warning, so the CLI has seen SIGINT before SIGTERM arrives.
      onStderr: (text, child) => {
        if (!isTermSent && text.includes("SIGINT: stopping after the current step")) {
          isTermSent = true;
          child.kill("SIGTERM");
        }
      },
    });
    expect(r.code).toBe(143);
    expect(r.stderr).toContain("SIGTERM after a stop was asked: exiting without a checkpoint");
    expect(jsonLines(r.stdout).some((e) => e.event === "interrupted")).toBe(false);
  });

  it(
    "a non-finite test loss stops the run with exit 1; " + "the checkpoint saved before stays and none is best",
    async () => {
      // Regression on y = a + b, except that every test row's target is 1e20: its squared error
      // overflows float32, so the test loss is Infinity while training stays finite.
      const file = join(tmp.path, "overflow.csv");
      const lines = ["a,b,y"];
      for (let i = 0; i < 200; i++) lines.push(`${(i % 7) / 7},${(i % 5) / 5},${(i % 7) / 7 + (i % 5) / 5}`);
      writeFileSync(file, `${lines.join("\n")}\n`);
      const split = loadDataset(`csv:${file}`, { target: "y", task: "regression", testSplit: 0.25, seed: 0 });
      for (const line of split.test.lineNumbers!) lines[line - 1] = lines[line - 1]!.replace(/[^,]+$/, "1e20");
      writeFileSync(file, `${lines.join("\n")}\n`);
      const dir = join(tmp.path, "overflow");
      const r = await run([
        "train",
        "--data",
        `csv:${file}`,
        "--target",
        "y",
        "--task",
        "regression",
        "--test-split",
        "0.25",
        "--batch-size",
        "50",
        "--epochs",
        "2",
        "--eval-every",
        "2",
        "--workers",
        "1",
        "--out",
        dir,
      ]);
      expect(r.code).toBe(1);
      const latest = join(dir, "checkpoint-latest.msgpack");
      expect(r.stderr).toContain(
        `threadgrad train: error: the test loss at step 6 is Infinity: the model's outputs overflow or are NaN on the test set. ` +
          `Stopped without saving these parameters (${latest} holds step 3)`,
      );
      expect((readCheckpoint(latest) as { progress: { globalStep: number } }).progress.globalStep).toBe(3);
      expect(existsSync(join(dir, "checkpoint-best.msgpack"))).toBe(false);
    },
  );
});

describe("threadgrad eval", () => {
  it("prints loss, accuracy, per-class accuracy and the confusion matrix", async () => {
    const ckpt = join(out, "checkpoint-best.msgpack");
    const r = await run(["eval", "--checkpoint", ckpt, "--workers", "1"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/accuracy \d+\.\d+%/);
    expect(r.stdout).toContain("class  samples  correct  accuracy");
    expect(r.stdout).toContain("confusion matrix (rows: true class, columns: predicted class)");
    const json = jsonLines((await run(["eval", "--checkpoint", ckpt, "--json"])).stdout)[0]!;
    const matrix = json.confusionMatrix as number[][];
    expect(matrix).toHaveLength(10);
    expect(matrix.flat().reduce((a, b) => a + b, 0)).toBe(1667);
    const correct = matrix.reduce((a, row, i) => a + row[i]!, 0);
    expect(json.accuracy).toBeCloseTo(correct / 1667, 12);
  });
});
