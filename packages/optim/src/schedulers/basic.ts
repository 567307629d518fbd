import { checkInteger, checkNonNegative } from "../validate.js";
import { LRScheduler, type OptimizerLike } from "./base.js";
import { cosineLrAt, exponentialLrAt, linearLrAt, multiStepLrAt, stepLrAt } from "./closed-form.js";

/**
 * Multiplies lr by gamma every stepSize steps (torch.optim.lr_scheduler.StepLR).
 * @example const sched = new StepLR(opt, { stepSize: 30, gamma: 0.1 });
 */
export class StepLR extends LRScheduler {
  readonly stepSize: number;
  readonly gamma: number;
  constructor(optimizer: OptimizerLike, { stepSize, gamma = 0.1 }: { stepSize: number; gamma?: number }) {
    super(optimizer, "StepLR");
    checkInteger("StepLR", "stepSize", stepSize, 1);
    checkNonNegative("StepLR", "gamma", gamma);
    this.stepSize = stepSize;
    this.gamma = gamma;
    this.step();
  }
  lrAt(t: number): number[] {
    return this.baseLrs.map((b) => stepLrAt(b, t, this.stepSize, this.gamma));
  }
}

/**
 * Multiplies lr by gamma at each milestone (torch.optim.lr_scheduler.MultiStepLR).
 * @example const sched = new MultiStepLR(opt, { milestones: [30, 80] });
 */
export class MultiStepLR extends LRScheduler {
  readonly milestones: number[];
  readonly gamma: number;
  constructor(
    optimizer: OptimizerLike,
    { milestones, gamma = 0.1 }: { milestones: readonly number[]; gamma?: number },
  ) {
    super(optimizer, "MultiStepLR");
    if (!Array.isArray(milestones))
      throw new Error(`MultiStepLR: milestones must be an array, got ${String(milestones)}`);
    milestones.forEach((m, i) => {
      checkInteger("MultiStepLR", `milestones[${i}]`, m, 0);
    });
    checkNonNegative("MultiStepLR", "gamma", gamma);
    this.milestones = [...milestones].sort((a, b) => a - b);
    this.gamma = gamma;
    this.step();
  }
  lrAt(t: number): number[] {
    return this.baseLrs.map((b) => multiStepLrAt(b, t, this.milestones, this.gamma));
  }
}

/**
 * Multiplies lr by gamma every step (torch.optim.lr_scheduler.ExponentialLR).
 * @example const sched = new ExponentialLR(opt, { gamma: 0.95 });
 */
export class ExponentialLR extends LRScheduler {
  readonly gamma: number;
  constructor(optimizer: OptimizerLike, { gamma }: { gamma: number }) {
    super(optimizer, "ExponentialLR");
    checkNonNegative("ExponentialLR", "gamma", gamma);
    this.gamma = gamma;
    this.step();
  }
  lrAt(t: number): number[] {
    return this.baseLrs.map((b) => exponentialLrAt(b, t, this.gamma));
  }
}

/**
 * Cosine from the base lr down to etaMin over tMax steps (torch.optim.lr_scheduler.CosineAnnealingLR,
 * closed form: etaMin + (base - etaMin)(1 + cos(πt/tMax))/2).
 * @example const sched = new CosineAnnealingLR(opt, { tMax: 100 });
 */
export class CosineAnnealingLR extends LRScheduler {
  readonly tMax: number;
  readonly etaMin: number;
  constructor(optimizer: OptimizerLike, { tMax, etaMin = 0 }: { tMax: number; etaMin?: number }) {
    super(optimizer, "CosineAnnealingLR");
    checkInteger("CosineAnnealingLR", "tMax", tMax, 1);
    checkNonNegative("CosineAnnealingLR", "etaMin", etaMin);
    this.tMax = tMax;
    this.etaMin = etaMin;
    this.step();
  }
  lrAt(t: number): number[] {
    return this.baseLrs.map((b) => cosineLrAt(b, t, this.tMax, this.etaMin));
  }
}

/**
 * Scales lr linearly from startFactor to endFactor over totalIters steps, then holds
 * (torch.optim.lr_scheduler.LinearLR); the usual warm-up.
 * @example const warmup = new LinearLR(opt, { startFactor: 0.1, totalIters: 10 });
 */
export class LinearLR extends LRScheduler {
  readonly startFactor: number;
  readonly endFactor: number;
  readonly totalIters: number;
  constructor(
    optimizer: OptimizerLike,
    {
      startFactor = 1 / 3,
      endFactor = 1,
      totalIters = 5,
    }: { startFactor?: number; endFactor?: number; totalIters?: number } = {},
  ) {
    super(optimizer, "LinearLR");
    if (!(startFactor > 0 && startFactor <= 1))
      throw new Error(`LinearLR: startFactor must be in (0, 1], got ${startFactor}`);
    if (!(endFactor >= 0 && endFactor <= 1)) throw new Error(`LinearLR: endFactor must be in [0, 1], got ${endFactor}`);
    checkInteger("LinearLR", "totalIters", totalIters, 1);
    this.startFactor = startFactor;
    this.endFactor = endFactor;
    this.totalIters = totalIters;
    this.step();
  }
  lrAt(t: number): number[] {
    return this.baseLrs.map((b) => linearLrAt(b, t, this.startFactor, this.endFactor, this.totalIters));
  }
}
