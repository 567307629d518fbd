// Learning rate as a pure function of the step, one per schedule, following PyTorch's closed forms
// (`_get_closed_form_lr`). The scheduler classes call these, and the trainer can call `lrAt` without
// any optimizer object.

/** Index of the first milestone greater than `t` (Python's bisect_right on a sorted list). */
export function bisectRight(sorted: readonly number[], t: number): number {
  let lo = 0,
    hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (t < sorted[mid]!) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

export const stepLrAt = (base: number, t: number, stepSize: number, gamma: number): number =>
  base * gamma ** Math.floor(t / stepSize);

export const multiStepLrAt = (base: number, t: number, sortedMilestones: readonly number[], gamma: number): number =>
  base * gamma ** bisectRight(sortedMilestones, t);

export const exponentialLrAt = (base: number, t: number, gamma: number): number => base * gamma ** t;

export const cosineLrAt = (base: number, t: number, tMax: number, etaMin: number): number =>
  etaMin + ((base - etaMin) * (1 + Math.cos((Math.PI * t) / tMax))) / 2;

export const linearLrAt = (
  base: number,
  t: number,
  startFactor: number,
  endFactor: number,
  totalIters: number,
): number => base * (startFactor + ((endFactor - startFactor) * Math.min(totalIters, t)) / totalIters);

/** One phase of a one-cycle schedule: it ends (inclusive) at `endStep`, moving lr and momentum. */
export interface CyclePhase {
  endStep: number;
  startLr: number;
  endLr: number;
  startMomentum: number;
  endMomentum: number;
}

export type AnnealStrategy = "cos" | "linear";

/** Cosine anneal from start (pct 0) to end (pct 1), as in PyTorch's `_annealing_cos`. */
const annealCos = (start: number, end: number, pct: number): number =>
  end + ((start - end) / 2) * (Math.cos(Math.PI * pct) + 1);
const annealLinear = (start: number, end: number, pct: number): number => (end - start) * pct + start;

/**
 * Phases of OneCycleLR: warm up to maxLr until step pctStart·total - 1, then anneal to minLr at
 * total - 1; with threePhase, come back down to initialLr at 2·pctStart·total - 2 first. Momentum
 * moves opposite to lr.
 */
export function oneCyclePhases(
  totalSteps: number,
  pctStart: number,
  threePhase: boolean,
  lrs: { initialLr: number; maxLr: number; minLr: number },
  momenta: { baseMomentum: number; maxMomentum: number },
): CyclePhase[] {
  const { initialLr, maxLr, minLr } = lrs;
  const { baseMomentum: lo, maxMomentum: hi } = momenta;
  const up = pctStart * totalSteps - 1;
  if (!threePhase) {
    return [
      { endStep: up, startLr: initialLr, endLr: maxLr, startMomentum: hi, endMomentum: lo },
      { endStep: totalSteps - 1, startLr: maxLr, endLr: minLr, startMomentum: lo, endMomentum: hi },
    ];
  }
  return [
    { endStep: up, startLr: initialLr, endLr: maxLr, startMomentum: hi, endMomentum: lo },
    { endStep: 2 * pctStart * totalSteps - 2, startLr: maxLr, endLr: initialLr, startMomentum: lo, endMomentum: hi },
    { endStep: totalSteps - 1, startLr: initialLr, endLr: minLr, startMomentum: hi, endMomentum: hi },
  ];
}

/** lr and momentum of a one-cycle schedule at step `t` (PyTorch's OneCycleLR.get_lr). */
export function oneCycleAt(
  phases: readonly CyclePhase[],
  t: number,
  strategy: AnnealStrategy,
): { lr: number; momentum: number } {
  const anneal = strategy === "cos" ? annealCos : annealLinear;
  let startStep = 0;
  for (const [i, phase] of phases.entries()) {
    if (t <= phase.endStep || i === phases.length - 1) {
      const pct = (t - startStep) / (phase.endStep - startStep);
      return {
        lr: anneal(phase.startLr, phase.endLr, pct),
        momentum: anneal(phase.startMomentum, phase.endMomentum, pct),
      };
    }
    startStep = phase.endStep;
  }
  throw new Error("oneCycleAt: no phases");
}

/** A schedule as plain data, for `lrAt`. Omitted fields take the scheduler classes' defaults. */
export type ScheduleConfig =
  | { kind: "step"; stepSize: number; gamma?: number }
  | { kind: "multistep"; milestones: readonly number[]; gamma?: number }
  | { kind: "exponential"; gamma: number }
  | { kind: "cosine"; tMax: number; etaMin?: number }
  | { kind: "linear"; startFactor?: number; endFactor?: number; totalIters?: number }
  | {
      kind: "onecycle";
      maxLr: number;
      totalSteps: number;
      pctStart?: number;
      annealStrategy?: AnnealStrategy;
      divFactor?: number;
      finalDivFactor?: number;
      threePhase?: boolean;
    }
  | { kind: "sequential"; schedules: readonly ScheduleConfig[]; milestones: readonly number[] };

/**
 * The lr at step `t` (0 = before the first optimizer step) of a schedule starting from `baseLr`;
 * matches what the scheduler classes write into a param group. OneCycle ignores `baseLr`.
 * @example lrAt({ kind: "cosine", tMax: 100 }, 0.1, 50) // 0.05
 */
export function lrAt(config: ScheduleConfig, baseLr: number, t: number): number {
  switch (config.kind) {
    case "step":
      return stepLrAt(baseLr, t, config.stepSize, config.gamma ?? 0.1);
    case "multistep":
      return multiStepLrAt(
        baseLr,
        t,
        [...config.milestones].sort((a, b) => a - b),
        config.gamma ?? 0.1,
      );
    case "exponential":
      return exponentialLrAt(baseLr, t, config.gamma);
    case "cosine":
      return cosineLrAt(baseLr, t, config.tMax, config.etaMin ?? 0);
    case "linear":
      return linearLrAt(baseLr, t, config.startFactor ?? 1 / 3, config.endFactor ?? 1, config.totalIters ?? 5);
    case "onecycle": {
      const initialLr = config.maxLr / (config.divFactor ?? 25);
      const lrs = { initialLr, maxLr: config.maxLr, minLr: initialLr / (config.finalDivFactor ?? 1e4) };
      const phases = oneCyclePhases(config.totalSteps, config.pctStart ?? 0.3, config.threePhase ?? false, lrs, {
        baseMomentum: 0,
        maxMomentum: 0,
      });
      return oneCycleAt(phases, t, config.annealStrategy ?? "cos").lr;
    }
    case "sequential": {
      const i = bisectRight(config.milestones, t);
      const schedule = config.schedules[i];
      if (schedule === undefined) {
        throw new Error(
          `lrAt: a sequential schedule needs one schedule more than milestones, ` +
            `got ${config.schedules.length} for ${config.milestones.length}`,
        );
      }
      return lrAt(schedule, baseLr, i > 0 ? t - config.milestones[i - 1]! : t);
    }
  }
}
