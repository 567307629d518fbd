import { checkInteger, checkNonNegative, checkOneOf } from "../validate.js";
import { perGroup, type OptimizerLike } from "./base.js";

/** Options of ReduceLROnPlateau (PyTorch's, camelCased). */
export interface PlateauOptions {
  mode?: "min" | "max";
  factor?: number;
  patience?: number;
  threshold?: number;
  thresholdMode?: "rel" | "abs";
  cooldown?: number;
  minLr?: number | readonly number[];
  eps?: number;
}

/** Serialized ReduceLROnPlateau counters. */
export interface PlateauStateDict {
  lastEpoch: number;
  best: number;
  numBadEpochs: number;
  cooldownCounter: number;
  lastLr: number[];
}

/**
 * Multiplies lr by `factor` once the metric has not improved for more than `patience` steps
 * (torch.optim.lr_scheduler.ReduceLROnPlateau). Changes smaller than `eps` are skipped.
 * @example const sched = new ReduceLROnPlateau(opt, { patience: 5 }); sched.step(valLoss);
 */
export class ReduceLROnPlateau {
  readonly mode: "min" | "max";
  readonly factor: number;
  readonly patience: number;
  readonly threshold: number;
  readonly thresholdMode: "rel" | "abs";
  readonly cooldown: number;
  readonly minLrs: number[];
  readonly eps: number;
  lastEpoch = 0;
  best: number;
  numBadEpochs = 0;
  cooldownCounter = 0;
  private lastLr: number[];

  constructor(
    readonly optimizer: OptimizerLike,
    options: PlateauOptions = {},
  ) {
    const {
      mode = "min",
      factor = 0.1,
      patience = 10,
      threshold = 1e-4,
      thresholdMode = "rel",
      cooldown = 0,
      minLr = 0,
      eps = 1e-8,
    } = options;
    const owner = "ReduceLROnPlateau";
    checkOneOf(owner, "mode", mode, ["min", "max"]);
    if (!(factor >= 0 && factor < 1)) throw new Error(`${owner}: factor must be in [0, 1), got ${factor}`);
    checkInteger(owner, "patience", patience, 0);
    checkNonNegative(owner, "threshold", threshold);
    checkOneOf(owner, "thresholdMode", thresholdMode, ["rel", "abs"]);
    checkInteger(owner, "cooldown", cooldown, 0);
    checkNonNegative(owner, "eps", eps);
    this.minLrs = perGroup(owner, "minLr", minLr, optimizer.paramGroups.length);
    this.minLrs.forEach((m, i) => {
      checkNonNegative(owner, `minLr[${i}]`, m);
    });
    this.mode = mode;
    this.factor = factor;
    this.patience = patience;
    this.threshold = threshold;
    this.thresholdMode = thresholdMode;
    this.cooldown = cooldown;
    this.eps = eps;
    this.best = mode === "min" ? Infinity : -Infinity;
    this.lastLr = optimizer.paramGroups.map((g) => g.lr);
  }

  /** Records one metric value (e.g. validation loss) and lowers lr if it has plateaued. */
  step(metric: number): void {
    this.lastEpoch += 1;
    if (this.isBetter(metric)) {
      this.best = metric;
      this.numBadEpochs = 0;
    } else {
      this.numBadEpochs += 1;
    }
    if (this.cooldownCounter > 0) {
      this.cooldownCounter -= 1;
      this.numBadEpochs = 0;
    }
    if (this.numBadEpochs > this.patience) {
      this.reduce();
      this.cooldownCounter = this.cooldown;
      this.numBadEpochs = 0;
    }
    this.lastLr = this.optimizer.paramGroups.map((g) => g.lr);
  }

  getLastLr(): number[] {
    return [...this.lastLr];
  }

  stateDict(): PlateauStateDict {
    const { lastEpoch, best, numBadEpochs, cooldownCounter } = this;
    return { lastEpoch, best, numBadEpochs, cooldownCounter, lastLr: [...this.lastLr] };
  }

  loadStateDict(sd: PlateauStateDict): void {
    const n = this.optimizer.paramGroups.length;
    if (
      typeof sd !== "object" ||
      sd === null ||
      typeof sd.best !== "number" ||
      !Array.isArray(sd.lastLr) ||
      sd.lastLr.length !== n
    ) {
      throw new Error(
        "ReduceLROnPlateau: loadStateDict expects " +
          `{ lastEpoch, best, numBadEpochs, cooldownCounter, lastLr } for ${n} groups`,
      );
    }
    this.lastEpoch = sd.lastEpoch;
    this.best = sd.best;
    this.numBadEpochs = sd.numBadEpochs;
    this.cooldownCounter = sd.cooldownCounter;
    this.lastLr = [...sd.lastLr];
  }

  private isBetter(a: number): boolean {
    const { best, threshold } = this;
    if (this.mode === "min") return this.thresholdMode === "rel" ? a < best * (1 - threshold) : a < best - threshold;
    return this.thresholdMode === "rel" ? a > best * (threshold + 1) : a > best + threshold;
  }

  private reduce(): void {
    this.optimizer.paramGroups.forEach((g, i) => {
      const next = Math.max(g.lr * this.factor, this.minLrs[i]!);
      if (g.lr - next > this.eps) g.lr = next;
    });
  }
}
