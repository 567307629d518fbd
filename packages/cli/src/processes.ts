// The processes one `threadgrad train` runs in: this one alone, or with --distributed mpi every
// process mpirun started, each running the same command. Process 0 owns the run folder and the
// output. Whatever decides what every process does next is decided together, by a sum over the
// processes at a point each of them reaches: whether set-up went well (process 0 alone claims the
// run folder, so it alone can refuse), and whether to stop. Otherwise one process would go on to
// the next collective call and wait there, until its time-out, for one that has gone another way.
import { finalizeMpi, initMpi, processesSharingCores, sumOverProcesses } from "@threadgrad/workers";
import { UsageError } from "./errors.js";
import type { Distributed } from "./flags.js";

/** How long a process waits for the others to agree: they may still be reading their data. */
const AGREE_TIMEOUT_MS = 600_000;

/** The failure kinds set-up reports, as summed cells: process 0's usage and other, then the others'. */
const P0_USAGE = 0,
  P0_FAILED = 1,
  OTHERS_USAGE = 2,
  OTHERS_FAILED = 3;

export class RunProcesses {
  private constructor(
    /** this process's rank among them; 0 writes the run folder and prints */
    readonly rank: number,
    readonly count: number,
    /** how many of them share this process's cores: those on its host, unless each was bound to its own */
    readonly sharingCores: number,
    /** MPI is initialised: the processes agree through it (even a lone one, started without mpirun) */
    private readonly isMpi: boolean,
  ) {}

  /**
   * This process alone, or with `mpi`, its place in the MPI job (initialising MPI: a usage error
   * that names the packages to install when the MPI addon is missing).
   */
  static join(distributed: Distributed): RunProcesses {
    if (distributed === "none") return new RunProcesses(0, 1, 1, false);
    try {
      const world = initMpi();
      return new RunProcesses(world.rank, world.size, processesSharingCores(world), true);
    } catch (err) {
      const cause = (err as Error).cause;
      throw new UsageError(`--distributed mpi: ${cause instanceof Error ? cause.message : (err as Error).message}`);
    }
  }

  get isFirst(): boolean {
    return this.rank === 0;
  }

  /** Whether `flag` holds in any process (collective: every process calls it at the same point). */
  async any(flag: boolean): Promise<boolean> {
    if (!this.isMpi) return flag;
    const cell = Int32Array.of(flag ? 1 : 0);
    await sumOverProcesses({ timeoutMs: AGREE_TIMEOUT_MS }, cell);
    return cell[0]! > 0;
  }

  /**
   * Runs `setUp` in every process, then throws in every process if it threw in any: process 0 its
   * own error; the others one that names process 0 when it refused (it alone claims the run
   * folder), with their own error if they failed too; otherwise the processes that failed their
   * own error and the rest one that counts them. Usage errors stay usage errors (exit status 2).
   */
  async settle<T>(setUp: () => T): Promise<T> {
    let value: T | undefined;
    let failure: Error | null = null;
    try {
      value = setUp();
    } catch (err) {
      failure = err instanceof Error ? err : new Error(String(err));
    }
    if (!this.isMpi) {
      if (failure !== null) throw failure;
      return value as T;
    }
    const cells = new Int32Array(4);
    const isUsage = failure instanceof UsageError;
    if (failure !== null)
      cells[this.isFirst ? (isUsage ? P0_USAGE : P0_FAILED) : isUsage ? OTHERS_USAGE : OTHERS_FAILED] = 1;
    await sumOverProcesses({ timeoutMs: AGREE_TIMEOUT_MS }, cells);
    const hasFirstRefused = cells[P0_USAGE]! + cells[P0_FAILED]! > 0;
    const others = cells[OTHERS_USAGE]! + cells[OTHERS_FAILED]!;
    if (!hasFirstRefused && others === 0) return value as T;
    this.hasAgreedToFail = true;
    if (this.isFirst && failure !== null) throw failure;
    const where = `process ${this.rank} of ${this.count}`;
    const own = failure === null ? "" : failure.message.split("\n").join(`\n${where}: `);
    if (hasFirstRefused) {
      const message = `${where}: process 0 refused the run (its message says why)${own === "" ? "; stopping too" : `; here too: ${own}`}`;
      throw cells[P0_USAGE]! > 0 ? new UsageError(message) : new Error(message);
    }
    if (failure !== null) throw isUsage ? new UsageError(`${where}: ${own}`) : new Error(`${where}: ${own}`);
    const which = others === 1 ? "another process" : `${others} other processes`;
    const message = `${where}: ${which} could not set up the run (its message says why); stopping too`;
    throw cells[OTHERS_USAGE]! > 0 ? new UsageError(message) : new Error(message);
  }

  /** Set once set-up failed in every process alike (settle threw): the processes are still in step. */
  hasAgreedToFail = false;

  /**
   * Under mpirun, this process's stdout is a terminal that mpirun reads and passes on; once mpirun
   * is signalled (Ctrl-C, SIGTERM) it stops reading, and Node's blocking writes to a terminal would
   * then hang process 0 before it saves its checkpoint. Its writes are made non-blocking (queued
   * while the terminal is full); `flushOutput` waits a little for the queue at the end.
   */
  letOutputQueue(): void {
    if (!this.isMpi || !process.stdout.isTTY) return;
    (process.stdout as unknown as { _handle?: { setBlocking?: (on: boolean) => void } })._handle?.setBlocking?.(false);
  }

  /** Waits up to `timeoutMs` for output queued by letOutputQueue to be written. */
  async flushOutput(timeoutMs = 3000): Promise<void> {
    if (!this.isMpi || process.stdout.writableLength === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      process.stdout.once("drain", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /**
   * Shuts MPI down, once every trainer is closed and the processes are in step (a run that ended,
   * was stopped or was refused by all): never after a failure of one process alone, so that it
   * exits without and mpirun ends the job rather than the others waiting for it.
   */
  finalize(): void {
    if (this.isMpi) finalizeMpi();
  }
}
