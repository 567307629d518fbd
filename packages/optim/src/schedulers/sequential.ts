import { LRScheduler, type OptimizerLike, type SchedulerStateDict } from "./base.js";
import { bisectRight } from "./closed-form.js";

/**
 * Runs schedulers one after another, switching at each milestone and restarting the next one at its
 * step 0 (torch.optim.lr_scheduler.SequentialLR).
 * @example
 * const warmup = new LinearLR(opt, { startFactor: 0.1, totalIters: 5 });
 * const cosine = new CosineAnnealingLR(opt, { tMax: 95 });
 * const sched = new SequentialLR(opt, [warmup, cosine], [5]);
 */
export class SequentialLR extends LRScheduler {
  readonly schedulers: LRScheduler[];
  readonly milestones: number[];

  constructor(optimizer: OptimizerLike, schedulers: LRScheduler[], milestones: readonly number[]) {
    super(optimizer, "SequentialLR");
    if (!Array.isArray(schedulers) || schedulers.length === 0) {
      throw new Error("SequentialLR: needs at least one scheduler");
    }
    if (!Array.isArray(milestones) || milestones.length !== schedulers.length - 1) {
      throw new Error(
        `SequentialLR: expected ${schedulers.length - 1} milestones for ${schedulers.length} schedulers, ` +
          `got ${milestones?.length}`,
      );
    }
    schedulers.forEach((s, i) => {
      if (s.optimizer !== optimizer) throw new Error(`SequentialLR: scheduler ${i} belongs to a different optimizer`);
    });
    this.schedulers = [...schedulers];
    this.milestones = [...milestones];
    // Each child stepped once when it was built; like PyTorch, undo that and start the first one.
    for (const s of this.schedulers) s.lastEpoch -= 1;
    this.step();
  }

  lrAt(t: number): number[] {
    const [child, start] = this.childAt(t);
    return child.lrAt(t - start);
  }

  override stepTo(t: number): void {
    this.lastEpoch = t;
    const [child, start] = this.childAt(t);
    child.stepTo(t - start);
    this.lastLr = child.getLastLr();
  }

  override stateDict(): SchedulerStateDict {
    return { ...super.stateDict(), schedulers: this.schedulers.map((s) => s.stateDict()) };
  }

  override loadStateDict(sd: SchedulerStateDict): void {
    const children = sd.schedulers;
    if (!Array.isArray(children) || children.length !== this.schedulers.length) {
      throw new Error(
        `SequentialLR: state dict has ${Array.isArray(children) ? children.length : "no"} schedulers, ` +
          `expected ${this.schedulers.length}`,
      );
    }
    super.loadStateDict(sd);
    this.schedulers.forEach((s, i) => {
      s.loadStateDict(children[i] as SchedulerStateDict);
    });
  }

  /** The child scheduler running at step `t` and the step it started at. */
  private childAt(t: number): [LRScheduler, number] {
    const i = bisectRight(this.milestones, t);
    // i <= milestones.length, and the constructor checked one scheduler more than milestones
    return [this.schedulers[i]!, i > 0 ? this.milestones[i - 1]! : 0];
  }
}
