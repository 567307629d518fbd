import type { SharedArena } from "./arena.js";
import { ERROR, ErrorCode, WaitTimeout, signalError, waitUntil } from "./control.js";
import * as P from "./protocol.js";

/**
 * Main's side of the command protocol (see protocol.ts): publishes commands into the step block's
 * slots, bumps SEQ, and waits without blocking until every rank has run them; records the ranks'
 * failures and names the first one. It stays within one process: a transport across processes
 * plugs in below the ranks (the Collective), not here.
 * @example const slot = await channel.command(P.Cmd.RECEIVE, "sending the data set");
 */
export class CommandChannel {
  private seq = 0;
  // Sequence numbers of the commands published and not yet completed, oldest first.
  readonly inFlight: number[] = [];
  private readonly rankErrors = new Map<number, Error>();
  /** set by the trainer when it shuts down: the channel then refuses work */
  closed = false;
  /**
   * Set when the module buffers in shared memory were replaced while the workers run (a restored
   * checkpoint): the next command tells the ranks that keep private copies to read them again.
   */
  loadBuffers = false;
  readonly control: Int32Array;

  constructor(
    private readonly arena: SharedArena,
    readonly numWorkers: number,
    /** commands that may be in flight (TrainerOptions.stepsInFlight) */
    readonly slots: number,
    readonly maxBatchSize: number,
    private readonly blocks: Float64Array,
    private readonly batches: Int32Array,
    private readonly stepTimeoutMs: number,
    /** stops the workers: called when a wait fails, before its error is thrown */
    private readonly shutdown: () => Promise<void>,
  ) {
    this.control = arena.control;
  }

  onWorkerFailure(rank: number, err: unknown): void {
    const e = err instanceof Error ? err : new Error(String(err));
    const message = e.message.startsWith("rank ") ? e.message : `rank ${rank}: ${e.message}`;
    // The first report wins: a thread that throws then also exits.
    if (!this.rankErrors.has(rank))
      this.rankErrors.set(rank, Object.assign(new Error(`worker ${message}`), { rank, cause: e }));
    // A rank that throws records itself in FAILED_RANK before raising the error word; the others
    // then fail too (released from their waits), so that rank's error is the cause. A rank that
    // dies without throwing (process.exit) records nothing: then the first error to arrive is used.
    if (Atomics.load(this.control, P.FAILED_RANK) === 0)
      Atomics.compareExchange(this.control, P.FAILED_RANK, 0, rank + 1);
    signalError(this.control, ErrorCode.WORKER_FAILED);
  }

  /** The error of the rank that failed first, once its task has reported. */
  get failure(): Error | null {
    const first = Atomics.load(this.control, P.FAILED_RANK) - 1;
    return this.rankErrors.get(first) ?? this.rankErrors.values().next().value ?? null;
  }

  async waitFor(
    index: number,
    target: number,
    timeoutMs: number | undefined,
    what: string,
    option = "stepTimeoutMs",
  ): Promise<void> {
    try {
      await waitUntil(this.control, index, (v) => v >= target, { timeoutMs, pollMs: 50 });
    } catch (err) {
      if (err instanceof WaitTimeout && Atomics.load(this.control, ERROR) === ErrorCode.NONE) {
        // Nothing failed: a rank is stuck. Shutting down releases the others with errors of their
        // own (an aborted barrier), which must not be reported as the cause.
        await this.shutdown();
        throw new Error(
          `DataParallel: ${what} did not finish within ${timeoutMs} ms (${option}); ` +
            "a rank is stuck in its own code. The workers were stopped.",
        );
      }
      // Let the failing rank's task rejection arrive so the error names that worker's own cause.
      const failedRank = () => Atomics.load(this.control, P.FAILED_RANK) - 1;
      for (let i = 0; i < 40 && !this.rankErrors.has(failedRank()); i++) await new Promise((r) => setTimeout(r, 25));
      await this.shutdown();
      throw this.failure ?? new Error(`DataParallel: ${what} failed: ${(err as Error).message}`);
    }
  }

  /**
   * Publishes a command in the next slot (`fill` writes the slot's step block and batch indices)
   * and returns its sequence number; the slot must be free (at most `slots` in flight).
   */
  publish(cmd: number, fill: (block: Float64Array, batch: Int32Array) => void = () => undefined): number {
    this.assertOpen();
    if (this.inFlight.length >= this.slots)
      throw new Error("DataParallel: internal error, every command slot is in use");
    const control = this.control;
    const seq = ++this.seq,
      slot = seq % this.slots;
    const block = this.blocks.subarray(slot * P.STEP_BLOCK_SIZE, (slot + 1) * P.STEP_BLOCK_SIZE);
    block.fill(0);
    block[P.S_CMD] = cmd;
    if (this.loadBuffers && cmd !== P.Cmd.STOP) {
      block[P.S_LOAD_BUFFERS] = 1;
      this.loadBuffers = false;
    }
    fill(block, this.batches.subarray(slot * this.maxBatchSize, (slot + 1) * this.maxBatchSize));
    Atomics.store(control, P.DONE + slot, 0);
    Atomics.store(control, P.SEQ, seq);
    Atomics.notify(control, P.SEQ); // wakes every rank parked in waitForCommand
    this.inFlight.push(seq);
    return seq;
  }

  /** Refuses work once closed, naming the failure that closed the trainer, if one did. */
  assertOpen(): void {
    if (!this.closed) return;
    const cause = this.failure;
    throw new Error(
      `DataParallel: the trainer is closed${cause === null ? "" : ` (it stopped after an error: ${cause.message})`}`,
      { cause },
    );
  }

  /** Waits (without blocking the event loop) until every rank has run the oldest command in flight. */
  async completeOldest(what: string): Promise<number> {
    const seq = this.inFlight[0]!;
    await this.waitFor(P.DONE + (seq % this.slots), this.numWorkers, this.stepTimeoutMs, what);
    this.inFlight.shift();
    return seq % this.slots;
  }

  /** Waits until every rank has run the newest command in flight (and so every older one). */
  async waitForNewest(what: string): Promise<void> {
    const seq = this.inFlight.at(-1)!;
    // Every command in flight gets its own stepTimeoutMs.
    await this.waitFor(P.DONE + (seq % this.slots), this.numWorkers, this.stepTimeoutMs * this.inFlight.length, what);
  }

  /** Publishes one command and waits until every rank has run it; returns its slot. */
  async command(cmd: number, what: string, fill?: (block: Float64Array, batch: Int32Array) => void): Promise<number> {
    this.publish(cmd, fill);
    return this.completeOldest(what);
  }

  /** Whether any rank met a non-finite loss or gradient in the step in `slot`. */
  anyNonFinite(slot: number): boolean {
    for (let r = 0; r < this.numWorkers; r++) if (this.scalars(r, slot)[P.R_NONFINITE] === 1) return true;
    return false;
  }

  /** Rank r's scalars for the command in `slot`. */
  scalars(rank: number, slot: number): Float64Array {
    return this.arena.rankScalars(rank).subarray(slot * P.SCALAR_SLOTS, (slot + 1) * P.SCALAR_SLOTS);
  }

  /** Publishes STOP in the next slot; nothing may be in flight. */
  stop(): void {
    const seq = ++this.seq,
      slot = seq % this.slots;
    this.blocks[slot * P.STEP_BLOCK_SIZE + P.S_CMD] = P.Cmd.STOP;
    Atomics.store(this.control, P.SEQ, seq);
    Atomics.notify(this.control, P.SEQ);
  }
}
