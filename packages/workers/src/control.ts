// Control block: one Int32Array shared by the main thread and every rank (the last region of the
// arena, see arena.ts). Word indices:
//   [ERROR]               0 while healthy. Whoever sees a failure first (main on a worker's `error`
//                         or `exit` event, Ctrl-C or an AbortSignal; a rank whose barrier timed out)
//                         stores an ErrorCode with compareExchange, so the first cause wins, and
//                         notifies every word: no rank stays parked and main's waits settle.
//   [BARRIER_COUNT]       ranks that have arrived at the current barrier generation.
//   [BARRIER_GENERATION]  bumped by the last rank to arrive; the others wait on it.
//   [USER_BASE ...]       free for the layer above (the trainer's step and done words); it
//                         documents its own words.
// Each word above sits on its own 64-byte line: ranks spin on the generation while others
// increment the count, and keeping them apart stops every arrival invalidating the spinners' line.
export const ERROR = 0;
export const BARRIER_COUNT = 16;
export const BARRIER_GENERATION = 32;
export const USER_BASE = 48;

/** Values of the ERROR word. The first nonzero value stored is kept. */
export const ErrorCode = {
  NONE: 0,
  /** main cancelled the run (AbortSignal, Ctrl-C, shutdown) */
  ABORTED: 1,
  /** a worker threw or exited */
  WORKER_FAILED: 2,
  /** a rank's wait ran out of time */
  TIMEOUT: 3,
} as const;

/** Name of an ERROR word value, for messages: `errorCodeName(2)` is `"WORKER_FAILED"`. */
export function errorCodeName(code: number): string {
  const entry = Object.entries(ErrorCode).find(([, value]) => value === code);
  return entry ? entry[0] : `code ${code}`;
}

/** Thrown (or rejected) when the ERROR word is set while a rank or main was waiting. */
export class ControlAborted extends Error {
  override name = "ControlAborted";
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
  }
}

/** Thrown when a wait exceeds its time-out. */
export class WaitTimeout extends Error {
  override name = "WaitTimeout";
}

/**
 * Sets the ERROR word (unless an earlier error is already there) and wakes every waiter on every
 * word of the control block. Safe from main and from workers. Returns the code now in effect.
 * @example signalError(arena.control, ErrorCode.WORKER_FAILED)
 */
export function signalError(control: Int32Array, code: number): number {
  if (!Number.isInteger(code) || code === ErrorCode.NONE) {
    throw new RangeError(`signalError: code must be a nonzero integer, got ${code}`);
  }
  const previous = Atomics.compareExchange(control, ERROR, ErrorCode.NONE, code);
  // Wakes ranks parked in Barrier.wait (on BARRIER_GENERATION) and main's waitUntil promises
  // (on whatever word they watch): we do not know which words are watched, so notify them all.
  for (let index = 0; index < control.length; index++) Atomics.notify(control, index);
  return previous === ErrorCode.NONE ? code : previous;
}

export interface WaitOptions {
  /** reject with the signal's reason when it aborts */
  signal?: AbortSignal;
  /** reject with WaitTimeout after this long; default: wait forever */
  timeoutMs?: number;
  /**
   * Longest single `Atomics.waitAsync`. A notify that lands between our check of the ERROR word
   * and the wait starting is lost (the wait compares only the watched word), so we re-check at
   * least this often. Default 100 ms.
   */
  pollMs?: number;
}

/**
 * Main-thread wait, never blocking: resolves with the word's value once `accept(value)` holds;
 * rejects with ControlAborted when the ERROR word is set, and on time-out or abort.
 * @example const done = await waitUntil(arena.control, USER_BASE + 1, (n) => n === numWorkers);
 */
export async function waitUntil(
  control: Int32Array,
  index: number,
  accept: (value: number) => boolean,
  options: WaitOptions = {},
): Promise<number> {
  const { signal, timeoutMs = Infinity, pollMs = 100 } = options;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = Atomics.load(control, index);
    if (accept(value)) return value;
    const error = Atomics.load(control, ERROR);
    if (error !== ErrorCode.NONE) {
      throw new ControlAborted(
        `waitUntil: control word ${index} abandoned, error word is ${errorCodeName(error)}`,
        error,
      );
    }
    signal?.throwIfAborted();
    const remainingMs = deadline - performance.now();
    if (remainingMs <= 0) {
      throw new WaitTimeout(`waitUntil: control word ${index} still ${value} after ${timeoutMs} ms`);
    }
    // Woken by whoever stores the watched word and notifies it (a rank, in the layer above),
    // by signalError, or by the poll time-out.
    const result = (Atomics as AtomicsWaitAsync).waitAsync(control, index, value, Math.min(remainingMs, pollMs));
    if (result.async) await raceAbort(result.value, signal);
  }
}

/**
 * Main-thread wait until `control[index] === expected`; see waitUntil.
 * @example await waitForValue(arena.control, STEP_DONE, step, { signal, timeoutMs: 60_000 });
 */
export function waitForValue(
  control: Int32Array,
  index: number,
  expected: number,
  options: WaitOptions = {},
): Promise<number> {
  return waitUntil(control, index, (value) => value === expected, options);
}

// Node 20 has Atomics.waitAsync; the ES2023 lib we compile against does not declare it yet.
type AtomicsWaitAsync = typeof Atomics & {
  waitAsync(
    array: Int32Array,
    index: number,
    value: number,
    timeoutMs?: number,
  ): { async: false; value: "not-equal" | "timed-out" } | { async: true; value: Promise<"ok" | "timed-out"> };
};

function raceAbort<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
