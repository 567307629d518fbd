import type { OptimizerName, ScheduleConfig } from "@threadgrad/optim";
import type { CommandChannel } from "./command-channel.js";
import type { DatasetRegistry } from "./dataset-registry.js";
import type { ProcessGroup } from "./distributed.js";
import type { LossSpec, ModelSpec } from "./spec.js";

export interface OptimizerConfig {
  name: OptimizerName;
  lr?: number;
  [option: string]: unknown;
}

export interface TrainerOptions {
  model: ModelSpec;
  /** default 'crossEntropy'; 'sequenceCrossEntropy' for a language model (`kind: "gpt"`) */
  loss?: LossSpec;
  /** default Adam with lr 1e-3 */
  optimizer?: OptimizerConfig;
  /** worker threads; default 'auto' (available cores, respecting a cgroup quota) */
  workers?: number | "auto";
  seed?: number;
  /** learning-rate schedule over optimizer steps */
  schedule?: ScheduleConfig | null;
  clipGradNorm?: number;
  /** micro-batches per optimizer step; their gradients add up before one update */
  accumulateSteps?: number;
  /**
   * Virtual shards: cut every training batch into this many contiguous parts, whatever the number
   * of workers, which must divide it; each worker runs its parts one after another, each into a
   * gradient slice of its own, and the reduction adds the parts' gradients in part order. Any
   * worker count that divides `shards` then trains bit for bit the same model (with `shards: 2`,
   * 1 and 2 workers do). Default: the number of workers (one part each, as fast as it gets).
   * With `workers: 'auto'`, the workers are the largest divisor of `shards` within the usable cores.
   * Costs a gradient slice (4 bytes a parameter) per part, and a worker with several parts runs
   * smaller matrix products. Not with BatchNorm (it normalises each forward over its own rows, so
   * the cut would change the model; synchronised statistics need one part per worker) nor with
   * `distributed`.
   */
  shards?: number;
  /** skip an update whose loss or gradient is not finite instead of failing */
  skipNonFinite?: boolean;
  /** largest batch that will be used (size of the shared index buffer); default 8192 */
  maxBatchSize?: number;
  /** how long a rank may wait at a barrier before failing; default 60 s */
  barrierTimeoutMs?: number;
  /**
   * how long one command (a training step, an evaluation batch) may take before the trainer gives
   * up, signals the workers and shuts down: a rank stuck in its own code cannot hang the caller.
   * Steps handed out together get one such budget each. Default 10 minutes.
   */
  stepTimeoutMs?: number;
  /** how long the workers may take to start (build the model, attach to shared memory); default 120 s */
  startTimeoutMs?: number;
  /**
   * Keep the tensors a step creates in a per-rank region of the wasm memory that is reset after the
   * step, instead of the JavaScript heap: no per-step garbage, activations already where the SIMD
   * kernels read them. Safe for any model that keeps no tensor made during forward beyond the step
   * (state updated in place is fine). Default: on for built-in models, off for module models.
   * Off, each worker runs with a 3 MiB young generation, so the per-op buffers of the heap are
   * collected by cheap scavenges instead of full collections.
   */
  stepRegion?: boolean;
  /**
   * Training steps main hands to the workers at once (1 to 16; default 8). The ranks run them
   * back to back, keeping the optimizer's count and learning rate themselves, and main sleeps until
   * the last is done: it neither makes the ranks wait for its round trip after every step nor
   * preempts one mid-step on a machine without a spare core. The numbers are the same for every
   * value. An abort (FitOptions.signal) lets the steps already handed out finish; `untilStep`
   * stops exactly.
   */
  stepsInFlight?: number;
  /**
   * "mpi": train across the processes of an MPI job (`mpirun -np P node script.js`), each running
   * `workers` threads: the global batch is split over all P x N ranks, gradients are summed in
   * shared memory inside a process, then across processes over MPI (needs the optional
   * `@threadgrad/mpi` addon). Every process must give the same options and data. Process 0
   * (`processRank`) alone writes checkpoints; see the README's section on MPI.
   */
  distributed?: "mpi";
}

export interface StepInfo {
  step: number;
  epoch: number;
  stepInEpoch: number;
  stepsPerEpoch: number;
  loss: number;
  accuracy: number | null;
  lr: number;
  gradNorm: number | null;
  samples: number;
  updated: boolean;
  skipped: boolean;
  /** per-step milliseconds, the slowest rank's: forward+backward, waiting for peers, reduction, update */
  timings: { computeMs: number; waitMs: number; reduceMs: number; updateMs: number };
  /**
   * When the last rank finished the step, in ms since the epoch (performance.timeOrigin + now()
   * in the ranks): main receives the steps handed out together at once, so the gap between two
   * steps' `finishedAt` is a step's wall time, not the gap between their onStep calls.
   */
  finishedAt: number;
}

export interface FitOptions {
  /** train until this many epochs are done in total (a resumed trainer continues) */
  epochs: number;
  batchSize: number;
  onStep?: (info: StepInfo) => void | Promise<void>;
  /** after each epoch completed in this call, with its log (also kept in the resolved `history`) */
  onEpochEnd?: (log: EpochLog) => void | Promise<void>;
  /**
   * Stop at the first accumulation-window boundary once this signal is aborted. Steps already
   * handed to the workers (TrainerOptions.stepsInFlight) finish first, and so does the window.
   * Across processes (distributed: "mpi") they decide together, each time they hand out steps: a
   * signal aborted in any one process stops every process after the same step.
   */
  signal?: AbortSignal;
  /** Stop before this global step (at the first window boundary from it): `untilStep: 100` runs steps up to 100. */
  untilStep?: number;
}

/** One completed epoch, as `fit` reports it to onEpochEnd and in its `history`. */
export interface EpochLog {
  /** epochs complete, counting this one (1 for the first) */
  epoch: number;
  /** the last global step of the epoch */
  step: number;
  /** mean training loss over the epoch's steps this call ran (a resumed epoch: its remaining steps) */
  loss: number;
  /** classification: share of those samples predicted right, at the time of their step */
  accuracy: number | null;
  /** learning rate of the epoch's last step */
  lr: number;
  steps: number;
  samples: number;
  durationMs: number;
}

/** What `fit` resolves with: where training stands, and the log of each epoch it completed. */
export interface FitResult extends Progress {
  history: EpochLog[];
}

export interface EvalResult {
  loss: number;
  accuracy: number | null;
  samples: number;
  /** predicted class per sample (classification) */
  predictions: Int32Array | null;
}

/** Where training stands; saved in checkpoints so a resumed run continues exactly. */
export interface Progress {
  /** the batch size of the epoch in progress (mid-epoch resume needs the same one) */
  batchSize: number;
  epoch: number;
  stepInEpoch: number;
  globalStep: number;
  optimizerStep: number;
  /**
   * Factor on the scheduled learning rate (setLrScale), e.g. from a plateau schedule run by the
   * caller; absent means 1. Saved with the progress, so a resumed run continues with it.
   */
  lrScale?: number;
}

/** TrainerOptions with the defaults filled in, as the trainer keeps them. */
export type ResolvedOptions = Required<
  Pick<
    TrainerOptions,
    "model" | "loss" | "seed" | "accumulateSteps" | "skipNonFinite" | "maxBatchSize" | "stepsInFlight"
  >
> &
  TrainerOptions;

/** The parts of a trainer that its fit loop and evaluation work with. @internal */
export interface TrainerParts {
  readonly options: ResolvedOptions;
  readonly progress: Progress;
  readonly channel: CommandChannel;
  readonly datasets: DatasetRegistry;
  /** predicted class per sample of an evaluation batch, written by the ranks */
  readonly predictions: Int32Array;
  /** fit or evaluate runs */
  busy: boolean;
  /** close() was called while fit runs: stop at the next window boundary */
  readonly closing: boolean;
  /** training across processes: this process's place and its MPI communicators; null in one process */
  readonly processGroup: ProcessGroup | null;
}
