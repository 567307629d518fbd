// End-to-end: --val-split picks the best checkpoint and feeds early stopping and the plateau
// schedule; the test set never does. Short runs of the built binary on a slice of digits.
import { join } from "node:path";
import { readCheckpoint } from "@threadgrad/workers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jsonLines, requireBuilt, run, tempDir } from "./helpers.js";

const tmp = tempDir("threadgrad-validation-");
afterAll(tmp.cleanup);
beforeAll(requireBuilt);

// 512 training samples, batch 64: 8 steps per epoch.
const SMALL = ["--limit", "512", "--batch-size", "64", "--workers", "2", "--json"];

const summaryOf = (stdout: string) => jsonLines(stdout).at(-1)!;

describe("threadgrad train --val-split", () => {
  it("reports train, val and test apart, picks the best on validation and stops early when it stalls", async () => {
    // No drop in validation loss is ever 10 or more: the second evaluation is the first without
    // an improvement, and --early-stopping 1 stops there, after epoch 2 of 6.
    const out = join(tmp.path, "early");
    const args = ["--val-split", "0.2", "--early-stopping", "1", "--min-delta", "10", "--epochs", "6", "--out", out];
    const r = await run(["train", ...SMALL, ...args]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const events = jsonLines(r.stdout);
    const start = events[0]!;
    // 10002 digits less 1/6 for test = 8335; 20% of them (1667) for validation; --limit then takes 512.
    expect(start).toMatchObject({ trainSamples: 512, valSamples: 1667, testSamples: 1667 });
    expect(events.filter((e) => e.event === "epoch")).toHaveLength(2);
    const evals = events.filter((e) => e.event === "eval");
    expect(evals).toHaveLength(2);
    for (const e of evals)
      expect(Object.keys(e)).toEqual(expect.arrayContaining(["valLoss", "valAccuracy", "testLoss"]));
    const reason =
      "early stopping at step 16: the validation loss has not improved on " +
      `${(evals[0]!.valLoss as number).toFixed(4)} by more than 10 for 1 evaluation (--early-stopping 1)`;
    expect(events.find((e) => e.event === "earlyStop")).toMatchObject({ step: 16, reason });
    const summary = summaryOf(r.stdout);
    expect(summary).toMatchObject({ event: "summary", stoppedEarly: reason, valLoss: evals[1]!.valLoss });
    expect(summary.valAccuracy).toBe(evals[1]!.valAccuracy);
    expect(summary.testAccuracy).toBe(evals[1]!.testAccuracy);
    // The best is the evaluation with the higher validation accuracy, whatever the test set says.
    const bestEval = (evals[1]!.valAccuracy as number) > (evals[0]!.valAccuracy as number) ? evals[1]! : evals[0]!;
    expect(summary.best).toEqual({ metric: "valAccuracy", value: bestEval.valAccuracy, step: bestEval.step });
    const best = readCheckpoint(join(out, "checkpoint-best.msgpack")) as { progress: { globalStep: number } };
    expect(best.progress.globalStep).toBe(bestEval.step);

    const text = await run(["train", ...SMALL.slice(0, -1), ...args.slice(0, -1), join(tmp.path, "early-text")]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`  stopped early  ${reason}`);
    expect(text.stdout).toMatch(/ {2}val loss {7}\d\.\d{4}\n {2}val accuracy {3}\d+\.\d+%\n {2}test loss/);
    expect(text.stdout).toMatch(/checkpoint-best\.msgpack \(best: step (8|16), validation accuracy \d+\.\d+%\)/);
  }, 120_000);

  it("without a validation split, checkpoint-best is the latest and the summary says so", async () => {
    const out = join(tmp.path, "no-val");
    const r = await run(["train", ...SMALL.slice(0, -1), "--epochs", "1", "--out", out]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("(best: step 8, the latest: without --val-split no evaluation picks a best checkpoint)");
    expect(r.stdout).not.toContain("val loss");
    const json = await run(["train", ...SMALL, "--epochs", "1", "--out", join(tmp.path, "no-val-json")]);
    expect(summaryOf(json.stdout)).toMatchObject({ valLoss: null, valAccuracy: null, stoppedEarly: null });
    expect(summaryOf(json.stdout).best).toEqual({ metric: "latest", value: null, step: 8 });
  }, 120_000);

  it("refuses early stopping or a plateau schedule without a validation split, naming the flag to add", async () => {
    const r = await run(["train", ...SMALL, "--early-stopping", "2", "--lr-schedule", "plateau"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      "--early-stopping 2: there is no validation set to watch; add --val-split FRACTION (e.g. --val-split 0.1)",
    );
    expect(r.stderr).toContain("--lr-schedule plateau: there is no validation set to watch");
    const split = await run(["train", ...SMALL, "--val-split", "1"]);
    expect(split.code).toBe(2);
    expect(split.stderr).toContain("--val-split must be a number > 0 and < 1, got 1");
  });

  it("--lr-schedule plateau multiplies the lr by --gamma " +
    "when validation stalls, and resumes where it was", async () => {
    // At lr 1e-8 the validation loss moves by far less than the scheduler's 1e-4 relative
    // threshold: every evaluation after the first counts as a plateau (--plateau-patience 0).
    const args = ["--val-split", "0.2", "--lr", "1e-8", "--lr-schedule", "plateau", "--plateau-patience", "0"];
    const more = [...args, "--gamma", "0.5", "--eval-every", "4steps"];
    const straight = join(tmp.path, "plateau");
    const r = await run(["train", ...SMALL, ...more, "--epochs", "2", "--out", straight]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const events = jsonLines(r.stdout);
    // Evaluations at steps 4, 8, 12 and 16: the three after the first halve the lr, from the next step on.
    expect(events.filter((e) => e.event === "lr").map((e) => [e.step, e.scale])).toEqual([
      [8, 0.5],
      [12, 0.25],
      [16, 0.125],
    ]);
    const lrOf = (step: number) => events.find((e) => e.event === "step" && e.step === step)!.lr as number;
    expect([lrOf(8), lrOf(9), lrOf(13)]).toEqual([1e-8, 1e-8 * 0.5, 1e-8 * 0.25]);
    const latest = readCheckpoint(join(straight, "checkpoint-latest.msgpack")) as { progress: { lrScale: number } };
    expect(latest.progress.lrScale).toBe(0.125);

    // Stopped after epoch 1 and resumed: the same lr changes at the same steps, the same parameters.
    const halves = join(tmp.path, "plateau-resumed");
    expect((await run(["train", ...SMALL, ...more, "--epochs", "1", "--out", halves])).code).toBe(0);
    const resumed = await run([
      "train",
      "--resume",
      join(halves, "checkpoint-latest.msgpack"),
      "--epochs",
      "2",
      "--json",
    ]);
    expect(resumed.code).toBe(0);
    const later = jsonLines(resumed.stdout).filter((e) => e.event === "lr");
    expect(later.map((e) => [e.step, e.scale])).toEqual([
      [12, 0.25],
      [16, 0.125],
    ]);
    const params = (dir: string) =>
      (readCheckpoint(join(dir, "checkpoint-latest.msgpack")) as { params: unknown }).params;
    expect(params(halves)).toEqual(params(straight));
  }, 180_000);

  it("early stopping counts evaluations across a resume", async () => {
    // At lr 0 the validation loss never changes: evaluation 1 sets the best, 2 and 3 do not improve.
    const out = join(tmp.path, "early-resumed");
    const args = ["--val-split", "0.2", "--lr", "0", "--early-stopping", "2", "--epochs", "2", "--out", out];
    const first = await run(["train", ...SMALL, ...args]);
    expect(first.code).toBe(0);
    expect(summaryOf(first.stdout).stoppedEarly).toBeNull();
    const resumed = await run(["train", "--resume", join(out, "checkpoint-latest.msgpack"), "--epochs", "6", "--json"]);
    expect(resumed.code).toBe(0);
    const events = jsonLines(resumed.stdout);
    expect(events.filter((e) => e.event === "epoch").map((e) => e.epoch)).toEqual([3]);
    expect(summaryOf(resumed.stdout).stoppedEarly).toMatch(
      /^early stopping at step 24: the validation loss has not improved on \d\.\d{4} for 2 evaluations/,
    );
  }, 120_000);
});
