/** What a scheduler needs of an optimizer: groups with a settable lr. Optimizers satisfy it. */
export interface OptimizerLike {
  paramGroups: { lr: number }[];
}

/** Serialized scheduler state; subclasses add their own fields. */
export interface SchedulerStateDict {
  lastEpoch: number;
  baseLrs: number[];
  lastLr: number[];
  [key: string]: unknown;
}

// Each group's lr when the first scheduler was attached to it, as PyTorch's group["initial_lr"] set
// with setdefault. Kept here rather than on the group so an optimizer's stateDict never carries a
// key it does not know; without it, the second scheduler of a SequentialLR would take the first
// one's already-scaled lr as its base.
const initialLrs = new WeakMap<object, number>();

/**
 * Base of the closed-form schedulers: `step()` advances `lastEpoch` and writes `lrAt(lastEpoch)` into
 * every group. Subclasses call `this.step()` at the end of their constructor, as PyTorch does, so
 * the groups hold the step-0 lr right after construction.
 */
export abstract class LRScheduler {
  lastEpoch = -1;
  baseLrs: number[];
  protected lastLr: number[] = [];

  constructor(
    readonly optimizer: OptimizerLike,
    protected readonly owner: string,
  ) {
    if (!Array.isArray(optimizer?.paramGroups) || optimizer.paramGroups.length === 0) {
      throw new Error(`${owner}: optimizer must have at least one param group`);
    }
    this.baseLrs = optimizer.paramGroups.map((g) => {
      if (!initialLrs.has(g)) initialLrs.set(g, g.lr);
      return initialLrs.get(g)!;
    });
  }

  /** The lr of every group at step `t`, from the closed form. */
  abstract lrAt(t: number): number[];

  /** Advances one step and sets every group's lr. */
  step(): void {
    this.stepTo(this.lastEpoch + 1);
  }

  /** Jumps to step `t` (SequentialLR restarts a scheduler at 0 this way). */
  stepTo(t: number): void {
    this.lastEpoch = t;
    this.apply(this.lrAt(t));
  }

  /** The lr of each group as this scheduler last set it. */
  getLastLr(): number[] {
    return [...this.lastLr];
  }

  stateDict(): SchedulerStateDict {
    return { lastEpoch: this.lastEpoch, baseLrs: [...this.baseLrs], lastLr: [...this.lastLr] };
  }

  /** Restores the counters; the groups' lr itself comes back with the optimizer's state dict. */
  loadStateDict(sd: SchedulerStateDict): void {
    const n = this.optimizer.paramGroups.length;
    if (typeof sd !== "object" || sd === null || !Number.isInteger(sd.lastEpoch)) {
      throw new Error(`${this.owner}: loadStateDict expects { lastEpoch, baseLrs, lastLr }`);
    }
    if (!Array.isArray(sd.baseLrs) || sd.baseLrs.length !== n || !Array.isArray(sd.lastLr) || sd.lastLr.length !== n) {
      throw new Error(`${this.owner}: state dict has lrs for ${sd.baseLrs?.length} groups, optimizer has ${n}`);
    }
    this.lastEpoch = sd.lastEpoch;
    this.baseLrs = [...sd.baseLrs];
    this.lastLr = [...sd.lastLr];
  }

  protected apply(lrs: number[]): void {
    this.optimizer.paramGroups.forEach((g, i) => {
      g.lr = lrs[i]!; // one lr per group, computed from baseLrs
    });
    this.lastLr = [...lrs];
  }
}

/** `v` if it is an array of one value per group, else `v` repeated for every group. */
export function perGroup(owner: string, name: string, v: number | readonly number[], groups: number): number[] {
  if (typeof v === "number") return new Array<number>(groups).fill(v);
  if (!Array.isArray(v) || v.length !== groups) {
    throw new Error(
      `${owner}: expected ${groups} values of ${name}, one per param group, ` +
        `got ${Array.isArray(v) ? v.length : String(v)}`,
    );
  }
  return [...v];
}
