import { checkBoolean, checkInteger, checkOneOf, checkPositive } from "../validate.js";
import { LRScheduler, perGroup, type OptimizerLike } from "./base.js";
import { oneCycleAt, oneCyclePhases, type AnnealStrategy, type CyclePhase } from "./closed-form.js";

/** Options of OneCycleLR (PyTorch's, camelCased). Give totalSteps, or epochs and stepsPerEpoch. */
export interface OneCycleOptions {
  maxLr: number | readonly number[];
  totalSteps?: number;
  epochs?: number;
  stepsPerEpoch?: number;
  pctStart?: number;
  annealStrategy?: AnnealStrategy;
  cycleMomentum?: boolean;
  baseMomentum?: number | readonly number[];
  maxMomentum?: number | readonly number[];
  divFactor?: number;
  finalDivFactor?: number;
  threePhase?: boolean;
}

type MomentumGroup = { lr: number; betas?: readonly number[]; momentum?: number };

/**
 * The 1cycle policy (torch.optim.lr_scheduler.OneCycleLR): lr from maxLr/divFactor up to maxLr, then
 * down to initialLr/finalDivFactor; momentum (Adam's beta1 or SGD's momentum) cycles the other way.
 * Call `step()` after every batch; stepping past totalSteps throws.
 * @example const sched = new OneCycleLR(opt, { maxLr: 0.1, totalSteps: 1000 });
 */
export class OneCycleLR extends LRScheduler {
  readonly totalSteps: number;
  readonly annealStrategy: AnnealStrategy;
  readonly cycleMomentum: boolean;
  private readonly phases: CyclePhase[][];

  constructor(optimizer: OptimizerLike, options: OneCycleOptions) {
    super(optimizer, "OneCycleLR");
    const {
      pctStart = 0.3,
      annealStrategy = "cos",
      cycleMomentum = true,
      baseMomentum = 0.85,
      maxMomentum = 0.95,
      divFactor = 25,
      finalDivFactor = 1e4,
      threePhase = false,
    } = options;
    this.totalSteps = resolveTotalSteps(options);
    if (!(pctStart >= 0 && pctStart <= 1)) throw new Error(`OneCycleLR: pctStart must be in [0, 1], got ${pctStart}`);
    checkOneOf("OneCycleLR", "annealStrategy", annealStrategy, ["cos", "linear"]);
    checkBoolean("OneCycleLR", "cycleMomentum", cycleMomentum);
    checkBoolean("OneCycleLR", "threePhase", threePhase);
    checkPositive("OneCycleLR", "divFactor", divFactor);
    checkPositive("OneCycleLR", "finalDivFactor", finalDivFactor);
    const groups = optimizer.paramGroups as MomentumGroup[];
    const n = groups.length;
    const maxLrs = perGroup("OneCycleLR", "maxLr", options.maxLr, n);
    const lows = perGroup("OneCycleLR", "baseMomentum", baseMomentum, n);
    const highs = perGroup("OneCycleLR", "maxMomentum", maxMomentum, n);
    if (cycleMomentum) {
      groups.forEach((g, i) => {
        if (g.betas === undefined && g.momentum === undefined) {
          throw new Error(`OneCycleLR: cycleMomentum needs param group ${i} to have betas or momentum`);
        }
      });
    }
    this.annealStrategy = annealStrategy;
    this.cycleMomentum = cycleMomentum;
    this.phases = maxLrs.map((maxLr, i) => {
      const initialLr = maxLr / divFactor;
      const lrs = { initialLr, maxLr, minLr: initialLr / finalDivFactor };
      return oneCyclePhases(this.totalSteps, pctStart, threePhase, lrs, {
        baseMomentum: lows[i]!, // perGroup gives one value per group
        maxMomentum: highs[i]!,
      });
    });
    this.baseLrs = this.phases.map((p) => p[0]!.startLr); // two or three phases
    this.step();
  }

  lrAt(t: number): number[] {
    return this.at(t).map((x) => x.lr);
  }

  /** The momentum of each group at step `t` (beta1 for Adam). */
  momentumAt(t: number): number[] {
    return this.at(t).map((x) => x.momentum);
  }

  override stepTo(t: number): void {
    super.stepTo(t);
    if (!this.cycleMomentum) return;
    const momenta = this.momentumAt(t);
    (this.optimizer.paramGroups as MomentumGroup[]).forEach((g, i) => {
      const momentum = momenta[i]!; // one per group, as the phases
      if (g.betas !== undefined) g.betas = [momentum, ...g.betas.slice(1)];
      else g.momentum = momentum;
    });
  }

  private at(t: number): { lr: number; momentum: number }[] {
    if (t > this.totalSteps) {
      throw new Error(`OneCycleLR: tried to step ${t} times; the schedule has totalSteps = ${this.totalSteps}`);
    }
    return this.phases.map((p) => oneCycleAt(p, t, this.annealStrategy));
  }
}

function resolveTotalSteps({ totalSteps, epochs, stepsPerEpoch }: OneCycleOptions): number {
  if (totalSteps !== undefined) {
    checkInteger("OneCycleLR", "totalSteps", totalSteps, 1);
    return totalSteps;
  }
  if (epochs === undefined || stepsPerEpoch === undefined) {
    throw new Error("OneCycleLR: give totalSteps, or both epochs and stepsPerEpoch");
  }
  checkInteger("OneCycleLR", "epochs", epochs, 1);
  checkInteger("OneCycleLR", "stepsPerEpoch", stepsPerEpoch, 1);
  return epochs * stepsPerEpoch;
}
