// Training across processes over MPI (TrainerOptions.distributed: "mpi"), hierarchical: inside a
// process the N ranks reduce in shared memory as always; then local rank r all-reduces its own
// gradient segment with rank r of every other process, on a communicator of its own (one per
// local index, made by the main thread, used only by that rank's thread); then every process
// updates that segment from the same summed values, so parameters stay identical everywhere and
// nothing has to be gathered across processes.
import * as mpi from "@threadgrad/mpi";
import type { Collective } from "./collective.js";
import * as P from "./protocol.js";
import { segment } from "./shard.js";

/** This process's place among the trainer's processes, as main sets it up and each rank receives it. */
export interface ProcessGroup {
  /** this process's rank in MPI's WORLD (0 writes checkpoints and reports) */
  rank: number;
  /** processes in the job */
  size: number;
  /** communicator of local rank r with rank r of the other processes, for each local rank r */
  comms: number[];
  /** how long one MPI call may wait for the other processes */
  timeoutMs: number;
}

/**
 * Checks that the MPI addon loads; otherwise throws the loader's error (which names the Debian
 * packages to install), prefixed with where it came from.
 */
export function requireMpi(): void {
  if (mpi.isAvailable()) return;
  try {
    mpi.libraryVersion(); // throws the loader's error, with its reason
  } catch (cause) {
    throw new Error(`DataParallel: distributed: "mpi": ${(cause as Error).message}`, { cause });
  }
}

/** Initialises MPI (main thread; later calls return the same): this process's place in the job. */
export function initMpi(): mpi.WorldInfo {
  requireMpi();
  return mpi.init();
}

/**
 * How many processes share the cores this one may use: the job's processes on this host, unless
 * mpirun bound each to cores of its own (Open MPI then sets OMPI_MCA_orte_bound_at_launch, as it
 * does by default for up to 2 processes): the cores it sees are then its share already.
 */
export function processesSharingCores(world: mpi.WorldInfo, env: NodeJS.ProcessEnv = process.env): number {
  return env.OMPI_MCA_orte_bound_at_launch === "1" ? 1 : world.localSize;
}

/**
 * Initialises MPI (main thread), checks that every process runs as many workers, and makes one
 * communicator per local rank. Collective: every process of the job calls it.
 */
export async function joinProcessGroup(numWorkers: number, timeoutMs: number): Promise<ProcessGroup> {
  const { rank, size } = initMpi();
  // Every process is here before the blocking calls below (they have no non-blocking form).
  await mpi.barrierAsync(mpi.WORLD, timeoutMs);
  const most = mpi.allReduceMax(mpi.WORLD, numWorkers, timeoutMs);
  const fewest = mpi.allReduceMin(mpi.WORLD, numWorkers, timeoutMs);
  if (most !== fewest) {
    throw new Error(
      `DataParallel: every process must run as many workers; process ${rank} has ${numWorkers}, ` +
        `others between ${fewest} and ${most} (give --workers / workers explicitly)`,
    );
  }
  const comms = Array.from({ length: numWorkers }, () => mpi.commDup(mpi.WORLD, timeoutMs));
  return { rank, size, comms, timeoutMs };
}

/**
 * Frees the communicators of `joinProcessGroup` (main thread, every process, once the ranks have
 * stopped). One that a failed or timed-out call left broken, or that a rank still holds, is left:
 * MPI might still use it, and such a job ends with abort() anyway. After finalize there is nothing
 * left to free.
 */
export function leaveProcessGroup(group: ProcessGroup): void {
  for (const comm of group.comms.splice(0)) {
    try {
      mpi.commFree(comm);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code !== "MPI_BROKEN" && code !== "MPI_BUSY" && code !== "MPI_FINALIZED") throw err;
    }
  }
}

/** Makes every process's `data` equal to process 0's (main thread, every process). */
export function broadcastFromFirst(group: ProcessGroup, data: Float32Array): void {
  mpi.broadcast(mpi.WORLD, data, 0, group.timeoutMs);
}

/**
 * Sums `data` over the processes, in place (main thread; its event loop keeps running). Collective:
 * every process calls it, once initMpi has run; `group` only gives the time-out.
 */
export async function sumOverProcesses(
  group: Pick<ProcessGroup, "timeoutMs">,
  data: Int32Array | Float64Array,
): Promise<void> {
  await mpi.allReduceSumAsync(mpi.WORLD, data, group.timeoutMs);
}

/** Process 0's `value`, in every process (main thread): e.g. whether process 0 wrote a checkpoint. */
export async function agreeWithFirst(group: ProcessGroup, value: boolean): Promise<boolean> {
  const cell = Int32Array.of(value ? 1 : 0);
  await mpi.broadcastAsync(mpi.WORLD, cell, 0, group.timeoutMs);
  return cell[0] === 1;
}

/** Returns once every process has called it (main thread). */
export async function processBarrier(group: ProcessGroup): Promise<void> {
  await mpi.barrierAsync(mpi.WORLD, group.timeoutMs);
}

/** Returns once every process of the job has called it (main thread; its event loop keeps running). */
export async function jobBarrier(timeoutMs: number): Promise<void> {
  await mpi.barrierAsync(mpi.WORLD, timeoutMs);
}

/** Sums `data` over the job's processes on this host, in place (main thread, every process). */
export async function sumOnHost(data: Float64Array, timeoutMs: number): Promise<void> {
  await mpi.allReduceSumAsync(mpi.LOCAL, data, timeoutMs);
}

/** How long the trainer's all-reduce of a float32 array takes across the processes (timeAllReduce). */
export interface AllReduceTiming {
  byteLength: number;
  /** timed calls (after a few untimed ones) */
  repeats: number;
  /** median over the calls of the slowest process's time for that call */
  medianMs: number;
  /** algorithm bandwidth: byteLength / medianMs, in GB/s (10^9 bytes per second) */
  gbPerSec: number;
}

/**
 * Times the call the ranks make for their gradient segment (mpi.allReduceSum of float32 in shared
 * memory) over every process of the job, on a communicator of its own that it frees afterwards.
 * Collective: every process calls it (main thread, no trainer running). Each call starts after a
 * barrier; a call's time is the slowest process's, so it includes the barrier's exit skew.
 * @example const { medianMs, gbPerSec } = timeAllReduce(1 << 20, 50, 60_000);
 */
export function timeAllReduce(byteLength: number, repeats: number, timeoutMs: number): AllReduceTiming {
  if (!Number.isInteger(byteLength) || byteLength < 4 || byteLength % 4 !== 0)
    throw new Error(`timeAllReduce: byteLength must be a positive multiple of 4, got ${byteLength}`);
  if (!Number.isInteger(repeats) || repeats < 1)
    throw new Error(`timeAllReduce: repeats must be a positive integer, got ${repeats}`);
  initMpi();
  const warmup = 3;
  const data = new Float32Array(new SharedArrayBuffer(byteLength));
  const ms = new Float64Array(warmup + repeats);
  const comm = mpi.commDup(mpi.WORLD, timeoutMs);
  for (let k = 0; k < ms.length; k++) {
    data.fill(1); // summed again and again, the values would grow without bound
    mpi.barrier(comm, timeoutMs);
    const start = performance.now();
    mpi.allReduceSum(comm, data, timeoutMs);
    ms[k] = performance.now() - start;
  }
  mpi.allReduceMax(comm, ms, timeoutMs);
  mpi.commFree(comm);
  const sorted = Array.from(ms.subarray(warmup)).sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const medianMs = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { byteLength, repeats, medianMs, gbPerSec: byteLength / medianMs / 1e6 };
}

/** MPI's own version line (e.g. "Open MPI v4.1.4, package: ..."), or the loader's error. */
export function mpiLibraryVersion(): string {
  requireMpi();
  return mpi.libraryVersion();
}

/**
 * Shuts MPI down (main thread, every process, after every trainer is closed); a no-op where MPI is
 * absent or was never initialised.
 */
export function finalizeMpi(): void {
  if (!mpi.isAvailable()) return;
  try {
    mpi.info();
  } catch {
    return; // not initialised: nothing to shut down
  }
  mpi.finalize();
}

/**
 * A rank's collective across processes: `inner` among the ranks of this process, then, for the
 * segment this rank owns, the same-index ranks of the other processes over `comm`. `rank`/`size`
 * and segments are the local ones: every process reduces and updates all N segments (each P times
 * over, once per process), so allGather only has to gather inside the process. `replica` is the
 * process rank: values that every process holds identically (a segment's squared norm) are counted
 * from replica 0 only when summed over every rank.
 * Sums across processes are MPI's: with two processes the float result is exactly that of adding
 * in rank order; with more, MPI may group the additions otherwise (every process gets the same bits).
 */
export class HierarchicalCollective implements Collective {
  readonly rank: number;
  readonly size: number;
  readonly replica: number;

  constructor(
    private readonly inner: Collective,
    private readonly comm: number,
    processRank: number,
    private readonly timeoutMs: number,
  ) {
    this.rank = inner.rank;
    this.size = inner.size;
    this.replica = processRank;
  }

  barrier(): void {
    this.inner.barrier();
    mpi.barrier(this.comm, this.timeoutMs);
  }

  reduceScatter(buf: Float32Array): Float32Array {
    const out = this.inner.reduceScatter(buf);
    const [start, end] = segment(buf.length, this.size, this.rank);
    if (end > start) mpi.allReduceSum(this.comm, out.subarray(start, end), this.timeoutMs);
    return out;
  }

  allReduce(buf: Float32Array): Float32Array {
    const out = this.inner.allReduce(buf);
    if (out === buf) {
      mpi.allReduceSum(this.comm, out, this.timeoutMs); // private: each rank sums all of it
      return out;
    }
    // Shared by the process's ranks: each sums its segment across processes, then they meet.
    const [start, end] = segment(buf.length, this.size, this.rank);
    if (end > start) mpi.allReduceSum(this.comm, out.subarray(start, end), this.timeoutMs);
    this.inner.barrier();
    return out;
  }

  allReduceScalars(values: Float64Array): void {
    this.inner.allReduceScalars(values);
    // Every local rank now holds the process's sums; each adds the other processes' on its own communicator.
    mpi.allReduceSum(this.comm, values, this.timeoutMs);
  }

  allGather(buf: Float32Array): void {
    this.inner.allGather(buf);
  }

  broadcast(buf: Float32Array, root: number): void {
    this.inner.broadcast(buf, root);
    mpi.broadcast(this.comm, buf, 0, this.timeoutMs);
  }

  /**
   * Sums a command's loss, right-prediction count and non-finite flag over the same-index ranks of
   * every process, so main's per-process totals are global ones.
   */
  sumStepScalars(scalars: Float64Array): void {
    const cell = Float64Array.of(scalars[P.R_LOSS]!, scalars[P.R_CORRECT]!, scalars[P.R_NONFINITE]!);
    mpi.allReduceSum(this.comm, cell, this.timeoutMs);
    scalars[P.R_LOSS] = cell[0]!;
    scalars[P.R_CORRECT] = cell[1]!;
    scalars[P.R_NONFINITE] = cell[2]! > 0 ? 1 : 0;
  }
}
