import { USER_BASE } from "./control.js";

// The trainer's words in the control block (after the collective's own, see control.ts):
//   [CLAIM]      ranks claimed so far; each worker task takes its rank with Atomics.add
//   [READY]      ranks that built their model and bound it to the arena; main waits for N
//   [SEQ]        sequence number of the command main last published; workers wait on it
//                (main notifies after bumping it)
//   [DONE]       ranks that finished the command SEQ names; the last one notifies main, which
//                waits with Atomics.waitAsync and resets it to 0 before the next SEQ
//   [FAILED_RANK] rank + 1 of the first worker that failed (0: none)
export const CLAIM = USER_BASE + 0;
export const READY = USER_BASE + 16;
export const SEQ = USER_BASE + 32;
export const DONE = USER_BASE + 48;
export const FAILED_RANK = USER_BASE + 49;
export const TRAINER_CONTROL_WORDS = 64;

/** Commands main publishes through the step block's CMD slot. */
export const Cmd = {
  TRAIN: 1,
  EVAL: 2,
  /** read a message from the worker's port (new data set registered) */
  RECEIVE: 3,
  STOP: 4,
} as const;

// Step block: a Float64Array main writes before bumping SEQ; every field is read-only for workers.
export const S_CMD = 0;
/** number of samples in this step's global batch (the indices sit in the batch buffer) */
export const S_BATCH = 1;
/** global denominator of the mean loss: batch size, or summed class weights */
export const S_DENOM = 2;
/** learning rate for this update */
export const S_LR = 3;
/** optimizer step count t (1-based) used for bias correction */
export const S_OPT_STEP = 4;
/** 1: zero the gradient slice before this micro-step (first of an accumulation window) */
export const S_ZERO = 5;
/** 1: reduce, clip and update after this micro-step (last of an accumulation window) */
export const S_UPDATE = 6;
/** global step number (keys the dropout generator) */
export const S_STEP = 7;
/** data set id for the step's indices */
export const S_DATASET = 8;
/** max gradient norm (0: no clipping) */
export const S_CLIP = 9;
export const STEP_BLOCK_SIZE = 16;

// Per-rank scalars (float64 slots in the arena's scalars region).
export const R_LOSS = 0;
export const R_CORRECT = 1;
// slot 2 is unused
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
export const SCALAR_SLOTS = 10;
