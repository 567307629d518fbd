// The training session around a real trainer: report.html is drawn from series the session keeps,
// seeded once from metrics.jsonl, not from the whole log re-read at every evaluation.
import { readFileSync } from "node:fs";
import { Generator } from "@threadgrad/core";
import { DataParallel } from "@threadgrad/workers";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { DEFAULT_SETTINGS } from "../src/settings.js";
import { type Dataset, sharedFloat32, sharedInt32 } from "../src/data/index.js";
import type { TrainSettings } from "../src/flags.js";
import { Reporter } from "../src/progress.js";
import { RunDir } from "../src/run-dir.js";
import { NEW_WATCH, TrainingSession } from "../src/session.js";
import { trainerOptions } from "../src/setup.js";
import { tempDir } from "./helpers.js";

const tmp = tempDir("threadgrad-session-");
afterAll(tmp.cleanup);
afterEach(() => vi.restoreAllMocks());

function dataset(name: string, n: number, seed: number): Dataset {
  const g = new Generator(seed);
  const x = sharedFloat32(n * 4).map(() => g.normal());
  const y = sharedInt32(n).map(() => g.integer(0, 3));
  return { name, x, y, length: n, features: 4, task: "classification", numClasses: 3 };
}

/** The points of the report's first line: the per-step train loss. */
function lossPoints(html: string): [number, number][] {
  const m = /<polyline points="([^"]*)"/.exec(html);
  return (m?.[1] ?? "").split(" ").map((p) => p.split(",").map(Number) as [number, number]);
}

describe("TrainingSession report", () => {
  it("reads metrics.jsonl once per session; a resumed run's report still spans the whole run", async () => {
    const settings: TrainSettings = {
      ...DEFAULT_SETTINGS,
      model: [4, 8, 3],
      lr: 0.01,
      batchSize: 16,
      epochs: 1,
      workers: 1,
      evalEvery: { every: 1, unit: "step" },
    };
    const train = dataset("train", 64, 1),
      test = dataset("test", 32, 2);
    const runDir = new RunDir(tmp.path);
    const reads = vi.spyOn(RunDir.prototype, "readMetrics");
    const trainer = await DataParallel.create(trainerOptions(settings, train));
    try {
      const session = (epochs: number) =>
        new TrainingSession({
          trainer,
          settings: { ...settings, epochs },
          train,
          val: null,
          test,
          runDir,
          reporter: new Reporter("quiet"),
          stop: new AbortController().signal,
          best: null,
          watch: NEW_WATCH,
          cli: {},
          startedAt: performance.now(),
        });
      await session(1).run(); // 4 steps, an evaluation after each
      expect(reads).toHaveBeenCalledTimes(1);
      expect(lossPoints(readFileSync(runDir.reportFile, "utf8"))).toHaveLength(4);
      // An unclean stop may leave steps past the checkpoint in the log: the resumed run replaces them.
      runDir.appendMetrics({ event: "step", step: 5, loss: 1000, accuracy: 0, lr: 0.01 });
      await session(2).run(); // resumes at step 4 with a new session, as --resume does
      expect(reads).toHaveBeenCalledTimes(2);
      const html = readFileSync(runDir.reportFile, "utf8");
      const points = lossPoints(html);
      expect(points).toHaveLength(8);
      expect(html).not.toMatch(/>1000</); // no axis stretched to the stale step's loss
      const evals = runDir.readMetrics().filter((r) => r.event === "eval");
      expect(evals.map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    } finally {
      runDir.close();
      await trainer.close();
    }
  });
});
