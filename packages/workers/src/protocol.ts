import { USER_BASE } from "./control.js";

// The trainer's words in the control block (after the collective's own, see control.ts):
//   [CLAIM]      ranks claimed so far; each worker task takes its rank with Atomics.add
//   [READY]      ranks that built their model and bound it to the arena; main waits for N
//   [SEQ]        sequence number of the last command main published (1, 2, 3, ...); every rank
//                runs the commands in order and waits on SEQ when it has run them all (main
//                notifies after bumping it). Command n lives in slot n % slots of the step block,
//                the batch buffer and each rank's scalars: main may publish up to `slots`
//                commands ahead (TrainerOptions.stepsInFlight), so a rank that finishes a step
//                finds the next one waiting instead of waiting for main's round trip.
//   [FAILED_RANK] rank + 1 of the first worker that failed (0: none)
//   [DONE + k]   ranks that finished the command in slot k; the last one notifies main, which
//                waits with Atomics.waitAsync and resets it to 0 before reusing the slot
export const CLAIM = USER_BASE + 0;
export const READY = USER_BASE + 16;
export const SEQ = USER_BASE + 32;
export const FAILED_RANK = USER_BASE + 33;
export const DONE = USER_BASE + 48;
/** most commands in flight (slots) */
export const MAX_SLOTS = 16;
export const TRAINER_CONTROL_WORDS = 64;

/** Commands main publishes through the step block's CMD slot. */
export const Cmd = {
  TRAIN: 1,
  EVAL: 2,
  /** read the messages on the worker's port (data sets to keep or to forget) */
  RECEIVE: 3,
  STOP: 4,
} as const;

// Step block: a Float64Array main writes before bumping SEQ; every field is read-only for workers.
export const S_CMD = 0;
/** number of samples in this step's global batch (the indices sit in the batch buffer) */
export const S_BATCH = 1;
/** global denominator of the mean loss: batch size, or summed class weights */
export const S_DENOM = 2;
/**
 * Updates applied before this step, when main knows it (no step in flight: the ranks take it as
 * their count and leave a halt, see R_RAN), or -1: the ranks continue their own count, which
 * they keep in step (they agree on every skip). The update uses t = count + 1 and the learning
 * rate lrAt(schedule, lr, count), computed by the ranks.
 */
export const S_OPT_COUNT = 3;
/** 1: zero the gradient slice before this micro-step (first of an accumulation window) */
export const S_ZERO = 4;
/** 1: reduce, clip and update after this micro-step (last of an accumulation window) */
export const S_UPDATE = 5;
/** global step number (keys the dropout generator) */
export const S_STEP = 6;
/** data set id for the step's indices */
export const S_DATASET = 7;
/** max gradient norm (0: no clipping) */
export const S_CLIP = 8;
/**
 * 1: the module buffers in shared memory were replaced (a checkpoint was restored): ranks other
 * than 0, which keep private copies, read them again before the command (rank 0's are the shared ones)
 */
export const S_LOAD_BUFFERS = 9;
/** factor on the scheduled learning rate (DataParallel.setLrScale), applied by this step's update */
export const S_LR_SCALE = 10;
export const STEP_BLOCK_SIZE = 16;

// Per-rank scalars (float64 slots in the arena's scalars region).
export const R_LOSS = 0;
export const R_CORRECT = 1;
/** the learning rate the update used (or would have used) */
export const R_LR = 2;
export const R_SQNORM = 3;
export const R_NONFINITE = 4;
/** 1 when this rank skipped the update (non-finite); identical on every rank */
export const R_SKIPPED = 5;
/** milliseconds this rank spent in forward + backward */
export const R_T_COMPUTE = 6;
/** milliseconds waiting for the other ranks before the reduction (load imbalance) */
export const R_T_WAIT = 7;
/** milliseconds in the reduce-scatter proper and the norm exchange */
export const R_T_REDUCE = 8;
/** milliseconds in the sharded optimizer update */
export const R_T_UPDATE = 9;
/**
 * 1 when the rank ran the step; 0 when it passed over it because an earlier update met a
 * non-finite value without skipNonFinite (the ranks halt then, so the steps main had already
 * published cannot change the parameters; main reports the error and the next fit resumes them).
 */
export const R_RAN = 10;
/** when this rank finished the command, in ms since the epoch (performance.timeOrigin + now()) */
export const R_FINISHED_AT = 11;
/** after RECEIVE: how many data sets the rank holds */
export const R_DATASETS_HELD = 12;
export const SCALAR_SLOTS = 13;

/** float64 values the update all-reduces across ranks: the squared gradient norm, the non-finite flag */
export const UPDATE_TOTALS = 2;
