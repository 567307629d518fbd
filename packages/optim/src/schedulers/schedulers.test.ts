import { describe, expect, it } from "vitest";
import { CosineAnnealingLR, ExponentialLR, LinearLR, MultiStepLR, StepLR } from "./basic.js";
import { lrAt } from "./closed-form.js";
import { OneCycleLR } from "./one-cycle.js";
import { ReduceLROnPlateau } from "./plateau.js";
import { SequentialLR } from "./sequential.js";
import { SGD } from "../sgd.js";
import { Adam } from "../adam.js";

const opt = (lr = 0.1) => ({ paramGroups: [{ lr }, { lr: lr * 10 }] });

/** lr of group 0 right after construction (t = 0) and after each of `n` steps. */
function trace(s: { step(): void; getLastLr(): number[] }, n: number): number[] {
  const out = [s.getLastLr()[0]!];
  for (let t = 1; t <= n; t++) {
    s.step();
    out.push(s.getLastLr()[0]!);
  }
  return out;
}
const expectClose = (a: number[], b: number[]) =>
  a.forEach((x, i) => {
    expect(Math.abs(x - b[i]!)).toBeLessThan(1e-12);
  });
const range = (n: number) => Array.from({ length: n + 1 }, (_, t) => t);

describe("closed-form schedulers over 50 steps", () => {
  it("StepLR", () =>
    expectClose(
      trace(new StepLR(opt(), { stepSize: 7, gamma: 0.5 }), 50),
      range(50).map((t) => 0.1 * 0.5 ** Math.floor(t / 7)),
    ));
  it("MultiStepLR", () => {
    const want = range(50).map((t) => 0.1 * 0.1 ** [10, 25, 25, 40].filter((m) => m <= t).length);
    expectClose(trace(new MultiStepLR(opt(), { milestones: [25, 10, 40, 25] }), 50), want);
  });
  it("ExponentialLR", () =>
    expectClose(
      trace(new ExponentialLR(opt(), { gamma: 0.9 }), 50),
      range(50).map((t) => 0.1 * 0.9 ** t),
    ));
  it("CosineAnnealingLR", () => {
    const want = range(50).map((t) => 0.001 + ((0.1 - 0.001) * (1 + Math.cos((Math.PI * t) / 30))) / 2);
    expectClose(trace(new CosineAnnealingLR(opt(), { tMax: 30, etaMin: 0.001 }), 50), want);
  });
  it("LinearLR", () => {
    const want = range(50).map((t) => 0.1 * (0.25 + (0.75 * Math.min(t, 20)) / 20));
    expectClose(trace(new LinearLR(opt(), { startFactor: 0.25, totalIters: 20 }), 50), want);
  });
  it("writes every group's lr and scales each from its own base", () => {
    const o = opt();
    new ExponentialLR(o, { gamma: 0.5 }).step();
    expect(o.paramGroups.map((g) => g.lr)).toEqual([0.05, 0.5]);
  });
});

describe("OneCycleLR", () => {
  it("follows PyTorch's two cosine phases and cycles SGD momentum the other way", () => {
    const sgd = new SGD([{ data: new Float64Array(1), shape: [1], grad: null }], { lr: 0.1, momentum: 0.9 });
    const s = new OneCycleLR(sgd, { maxLr: 1, totalSteps: 50 });
    // initialLr = 1/25 = 0.04, minLr = 0.04/1e4; phase ends at 0.3·50 - 1 = 14 and 49
    const cos = (a: number, b: number, pct: number) => b + ((a - b) / 2) * (Math.cos(Math.PI * pct) + 1);
    for (let t = 0; t <= 49; t++) {
      const up = t <= 14;
      const pct = up ? t / 14 : (t - 14) / 35;
      expect(Math.abs(sgd.paramGroups[0]!.lr - (up ? cos(0.04, 1, pct) : cos(1, 4e-6, pct)))).toBeLessThan(1e-12);
      expect(Math.abs(sgd.paramGroups[0]!.momentum - (up ? cos(0.95, 0.85, pct) : cos(0.85, 0.95, pct)))).toBeLessThan(
        1e-12,
      );
      expect(lrAt({ kind: "onecycle", maxLr: 1, totalSteps: 50 }, 0, t)).toBe(s.getLastLr()[0]);
      s.step();
    }
    expect(() => s.step()).toThrow(/^OneCycleLR: tried to step 51 times; the schedule has totalSteps = 50$/);
  });

  it("cycles Adam's beta1 and supports linear three-phase schedules", () => {
    const adam = new Adam([{ data: new Float64Array(1), shape: [1], grad: null }]);
    const s = new OneCycleLR(adam, {
      maxLr: 1,
      totalSteps: 20,
      pctStart: 0.25,
      threePhase: true,
      annealStrategy: "linear",
    });
    // phase ends: 0.25·20 - 1 = 4, 2·0.25·20 - 2 = 8, 19
    const lrs = trace(s, 19);
    expectClose([lrs[0]!, lrs[2]!, lrs[4]!, lrs[6]!, lrs[8]!, lrs[19]!], [0.04, 0.52, 1, 0.52, 0.04, 4e-6]);
    expect(adam.paramGroups[0]!.betas).toEqual([0.95, 0.999]);
  });

  it("needs momentum to cycle", () => {
    expect(() => new OneCycleLR({ paramGroups: [{ lr: 1 }] }, { maxLr: 1, totalSteps: 10 })).toThrow(
      /group 0 to have betas or momentum/,
    );
    expect(() => new OneCycleLR({ paramGroups: [{ lr: 1 }] }, { maxLr: 1 })).toThrow(
      /give totalSteps, or both epochs and stepsPerEpoch/,
    );
  });
});

describe("SequentialLR", () => {
  it("warms up linearly, then restarts cosine from the original lr at the milestone", () => {
    const o = opt();
    const warm = new LinearLR(o, { startFactor: 0.1, totalIters: 5 });
    const cosine = new CosineAnnealingLR(o, { tMax: 45 });
    const s = new SequentialLR(o, [warm, cosine], [5]);
    const want = range(50).map((t) =>
      t < 5 ? 0.1 * (0.1 + (0.9 * t) / 5) : (0.1 * (1 + Math.cos((Math.PI * (t - 5)) / 45))) / 2,
    );
    expectClose(trace(s, 50), want);
    const config = {
      kind: "sequential",
      schedules: [
        { kind: "linear", startFactor: 0.1, totalIters: 5 },
        { kind: "cosine", tMax: 45 },
      ],
      milestones: [5],
    } as const;
    expectClose(
      range(50).map((t) => lrAt(config, 0.1, t)),
      want,
    );
    expect(() => new SequentialLR(o, [warm, cosine], [])).toThrow(
      /^SequentialLR: expected 1 milestones for 2 schedulers, got 0$/,
    );
    // A schedule read from a file may be short of schedules: past the last milestone lrAt says so.
    const short = { ...config, schedules: config.schedules.slice(0, 1) };
    expect(lrAt(short, 0.1, 4)).toBeCloseTo(want[4]!, 12);
    expect(() => lrAt(short, 0.1, 5)).toThrow(
      /^lrAt: a sequential schedule needs one schedule more than milestones, got 1 for 1$/,
    );
  });
});

describe("ReduceLROnPlateau", () => {
  it("cuts lr after patience bad steps, then waits out the cooldown, never below minLr", () => {
    const o = { paramGroups: [{ lr: 1 }] };
    const s = new ReduceLROnPlateau(o, { patience: 2, cooldown: 1, factor: 0.5, minLr: 0.2 });
    const lrs = [10, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9].map((loss) => {
      s.step(loss);
      return o.paramGroups[0]!.lr;
    });
    // bad steps: 3rd, 4th, 5th -> cut at the 5th (3 > patience); cooldown eats the 6th; cut again at the 9th
    expect(lrs).toEqual([1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25]);
    for (let i = 0; i < 20; i++) s.step(9);
    expect(o.paramGroups[0]!.lr).toBe(0.2);
  });

  it("compares with thresholds in max and abs modes", () => {
    const o = { paramGroups: [{ lr: 1 }] };
    const s = new ReduceLROnPlateau(o, { mode: "max", thresholdMode: "abs", threshold: 0.5, patience: 0 });
    s.step(1);
    s.step(1.4); // not better than 1 + 0.5
    expect(o.paramGroups[0]!.lr).toBeCloseTo(0.1, 15);
    expect(() => new ReduceLROnPlateau(o, { factor: 1 })).toThrow(
      /^ReduceLROnPlateau: factor must be in \[0, 1\), got 1$/,
    );
  });

  it("round-trips its counters", () => {
    const o = { paramGroups: [{ lr: 1 }] };
    const s = new ReduceLROnPlateau(o, { patience: 3 });
    [5, 4, 4].forEach((x) => {
      s.step(x);
    });
    const t = new ReduceLROnPlateau({ paramGroups: [{ lr: 1 }] }, { patience: 3 });
    t.loadStateDict(structuredClone(s.stateDict()));
    expect(t.stateDict()).toEqual(s.stateDict());
  });
});

describe("scheduler state dicts", () => {
  it("resuming a SequentialLR gives the same lrs", () => {
    const build = () => {
      const o = opt();
      return new SequentialLR(o, [new LinearLR(o, { totalIters: 3 }), new StepLR(o, { stepSize: 4 })], [3]);
    };
    const a = build();
    const want = trace(a, 20);
    const b = build();
    for (let t = 0; t < 7; t++) b.step();
    const c = build();
    c.loadStateDict(structuredClone(b.stateDict()));
    const rest = [];
    for (let t = 8; t <= 20; t++) {
      c.step();
      rest.push(c.getLastLr()[0]);
    }
    expect(rest).toEqual(want.slice(8));
  });
});
