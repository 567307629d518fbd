import { lrAt } from "@threadgrad/optim";
import { describe, expect, it } from "vitest";
import { DEFAULT_SETTINGS } from "./config.js";
import { buildSchedule, updatesPerEpoch } from "./setup.js";

const s = { ...DEFAULT_SETTINGS, lr: 0.1 };

describe("schedules", () => {
  it("warm-up is LinearLR from lr/(w+1) to lr, then the schedule via SequentialLR", () => {
    const sched = buildSchedule({ ...s, lrSchedule: "cosine", warmupSteps: 4 }, 104)!;
    expect(sched).toEqual({
      kind: "sequential",
      milestones: [4],
      schedules: [
        { kind: "linear", startFactor: 1 / 5, endFactor: 1, totalIters: 4 },
        { kind: "cosine", tMax: 100, etaMin: 0 },
      ],
    });
    expect(lrAt(sched, 0.1, 0)).toBeCloseTo(0.02, 12);
    expect(lrAt(sched, 0.1, 4)).toBeCloseTo(0.1, 12);
    expect(lrAt(sched, 0.1, 54)).toBeCloseTo(0.05, 12);
  });

  it("none is a constant lr, with or without warm-up", () => {
    expect(buildSchedule(s, 100)).toBeNull();
    const warm = buildSchedule({ ...s, warmupSteps: 9 }, 100)!;
    expect(lrAt(warm, 0.1, 50)).toBeCloseTo(0.1, 12);
  });

  it("step decays by gamma every third of the run unless --step-size says otherwise", () => {
    expect(buildSchedule({ ...s, lrSchedule: "step" }, 90)).toEqual({ kind: "step", stepSize: 30, gamma: 0.1 });
    expect(buildSchedule({ ...s, lrSchedule: "step", stepSize: 7, gamma: 0.5 }, 90)).toEqual({
      kind: "step",
      stepSize: 7,
      gamma: 0.5,
    });
  });

  it("onecycle peaks at --lr over the whole run", () => {
    expect(buildSchedule({ ...s, lrSchedule: "onecycle" }, 50)).toEqual({
      kind: "onecycle",
      maxLr: 0.1,
      totalSteps: 50,
    });
  });

  it("warm-up must be shorter than the run", () => {
    expect(() => buildSchedule({ ...s, warmupSteps: 10 }, 10)).toThrow(
      "--warmup-steps 10 must be less than the run's 10 optimizer steps",
    );
  });

  it("counts optimizer steps per epoch with accumulation", () => {
    expect(updatesPerEpoch({ ...s, batchSize: 64, accumulateSteps: 1 }, 8333)).toBe(131);
    expect(updatesPerEpoch({ ...s, batchSize: 64, accumulateSteps: 4 }, 8333)).toBe(33);
  });
});
