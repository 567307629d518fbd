import { isMainThread } from "node:worker_threads";
import {
  BARRIER_COUNT,
  BARRIER_GENERATION,
  ControlAborted,
  ERROR,
  ErrorCode,
  WaitTimeout,
  errorCodeName,
  signalError,
} from "./control.js";

/** A rank left a barrier because the ERROR word was set. */
export class BarrierAborted extends ControlAborted {
  override name = "BarrierAborted";
}

/** A rank waited at a barrier longer than its time-out; it also set ERROR to TIMEOUT. */
export class BarrierTimeout extends WaitTimeout {
  override name = "BarrierTimeout";
}

export interface BarrierOptions {
  /** shown in error messages; default "barrier" */
  name?: string;
  /** give up (and set ERROR to TIMEOUT) after this long; default 60 000 ms */
  timeoutMs?: number;
  /**
   * Cheap polls of the generation word before falling back to Atomics.wait. Spinning pays off
   * only while every rank has a core of its own; pass 0 when ranks outnumber cores.
   * Default 2000 (a few microseconds).
   */
  spinIterations?: number;
  /** longest single Atomics.wait, bounding how late a missed error notify is seen; default 100 ms */
  pollMs?: number;
}

/**
 * Generation-counting barrier for `size` ranks over the control block. Only for worker threads:
 * the main thread must not block (use waitUntil / waitForValue from control.ts).
 * @example const barrier = new Barrier(arena.control, numWorkers, rank, { name: "step" }); barrier.wait();
 */
export class Barrier {
  readonly name: string;
  readonly timeoutMs: number;
  readonly spinIterations: number;
  readonly pollMs: number;

  constructor(
    readonly control: Int32Array,
    readonly size: number,
    readonly rank: number,
    options: BarrierOptions = {},
  ) {
    this.name = options.name ?? "barrier";
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.spinIterations = options.spinIterations ?? 2000;
    this.pollMs = options.pollMs ?? 100;
    if (!Number.isInteger(size) || size < 1) {
      throw new RangeError(`Barrier "${this.name}": size must be an integer >= 1, got ${size}`);
    }
    if (!Number.isInteger(rank) || rank < 0 || rank >= size) {
      throw new RangeError(`Barrier "${this.name}": rank must be in [0, ${size}), got ${rank}`);
    }
    if (size > 1 && isMainThread) {
      throw new Error(
        `Barrier "${this.name}": the main thread must not block in Atomics.wait; ` +
          "use waitUntil/waitForValue there and run ranks in worker threads",
      );
    }
  }

  /** Returns once all `size` ranks have called wait() for this generation. */
  wait(): void {
    const { control, size } = this;
    // Read the generation before arriving: once our arrival is counted, the last rank may bump it
    // at any moment, and reading it afterwards could make us wait for the next generation.
    const generation = Atomics.load(control, BARRIER_GENERATION);
    this.checkError();
    if (Atomics.add(control, BARRIER_COUNT, 1) === size - 1) {
      // Reset the count before releasing anyone: a released rank may arrive at the next barrier
      // immediately and must find the count at 0.
      Atomics.store(control, BARRIER_COUNT, 0);
      Atomics.add(control, BARRIER_GENERATION, 1);
      // The last rank to arrive wakes the ranks parked in Atomics.wait below.
      Atomics.notify(control, BARRIER_GENERATION);
      return;
    }
    if (this.spin(generation)) return;
    this.block(generation);
  }

  private spin(generation: number): boolean {
    const { control } = this;
    for (let i = 0; i < this.spinIterations; i++) {
      if (Atomics.load(control, BARRIER_GENERATION) !== generation) return true;
      if (Atomics.load(control, ERROR) !== ErrorCode.NONE) this.checkError();
    }
    return false;
  }

  private block(generation: number): void {
    const { control } = this;
    const deadline = performance.now() + this.timeoutMs;
    while (Atomics.load(control, BARRIER_GENERATION) === generation) {
      this.checkError();
      const remainingMs = deadline - performance.now();
      if (remainingMs <= 0) this.timeOut();
      // Woken by the last rank to arrive (notify in wait()) or by signalError; the poll bound
      // covers an error notify that lands between checkError() and this call.
      Atomics.wait(control, BARRIER_GENERATION, generation, Math.min(remainingMs, this.pollMs));
    }
  }

  private checkError(): void {
    const code = Atomics.load(this.control, ERROR);
    if (code === ErrorCode.NONE) return;
    throw new BarrierAborted(
      `Barrier "${this.name}": rank ${this.rank} of ${this.size} aborted, error word is ${errorCodeName(code)}`,
      code,
    );
  }

  private timeOut(): never {
    const arrived = Atomics.load(this.control, BARRIER_COUNT);
    // Release the other ranks too: whoever is missing will not come, so they would time out anyway.
    signalError(this.control, ErrorCode.TIMEOUT);
    throw new BarrierTimeout(
      `Barrier "${this.name}": rank ${this.rank} of ${this.size} timed out after ${this.timeoutMs} ms ` +
        `(${arrived} of ${this.size} ranks arrived)`,
    );
  }
}
