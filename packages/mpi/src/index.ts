// @threadgrad/mpi: collectives across processes and hosts over MPI, callable from worker threads.
// The native addon is optional: it is loaded on first use, and every call throws an error naming
// the packages to install when it is absent.
import { isMainThread } from "node:worker_threads";
import { type Binding, loadBinding } from "./load.js";

export { NOT_AVAILABLE } from "./load.js";

/**
 * mpirun's options for processes on this one host, over TCP on loopback, as root too and with more
 * processes than cores: how this repository's MPI tests launch theirs.
 * @example spawn("mpirun", [...LOOPBACK_MPIRUN_ARGS, "-np", "2", process.execPath, "script.mjs"])
 */
export const LOOPBACK_MPIRUN_ARGS: readonly string[] = [
  "--allow-run-as-root",
  "--oversubscribe",
  "--bind-to",
  "none",
  "--mca",
  "btl",
  "self,tcp",
  "--mca",
  "pml",
  "ob1",
  "--mca",
  "btl_tcp_if_include",
  "lo",
  "--mca",
  "oob_tcp_if_include",
  "lo",
];

/** A communicator: an integer id, valid in every thread of the process that created it. */
export type Communicator = number;

/** Every process of the job (MPI_COMM_WORLD). */
export const WORLD: Communicator = 0;
/** The processes on this host (MPI_Comm_split_type with MPI_COMM_TYPE_SHARED). */
export const LOCAL: Communicator = 1;

/** Where this process stands in the job. */
export interface WorldInfo {
  rank: number;
  size: number;
  /** Rank among the processes on this host, and how many there are. */
  localRank: number;
  localSize: number;
}

/** Arrays that all-reduce accepts (summed, or compared, element by element). */
export type ReducibleArray = Float32Array | Float64Array | Int32Array;

/**
 * Codes on the errors this package throws (`error.code`): MPI_TIMEOUT (a process did not join in
 * time), MPI_ERROR (MPI reported an error; the message holds MPI's text), MPI_BROKEN (an earlier
 * call on the communicator timed out or failed), MPI_BUSY (another call holds the communicator),
 * MPI_NOT_INITIALIZED, MPI_FINALIZED, MPI_BAD_COMM, MPI_ARG, MPI_THREAD_LEVEL.
 */
export type MpiErrorCode =
  | "MPI_TIMEOUT"
  | "MPI_ERROR"
  | "MPI_BROKEN"
  | "MPI_BUSY"
  | "MPI_NOT_INITIALIZED"
  | "MPI_FINALIZED"
  | "MPI_BAD_COMM"
  | "MPI_ARG"
  | "MPI_THREAD_LEVEL";

let loaded: { binding: Binding } | { error: Error } | undefined;

function native(): Binding {
  loaded ??= loadBinding();
  if ("error" in loaded) throw loaded.error;
  return loaded.binding;
}

/** Whether the addon is built and loads (MPI installed); never throws. */
export function isAvailable(): boolean {
  loaded ??= loadBinding();
  return "binding" in loaded;
}

/** The MPI library's own version line, e.g. "Open MPI v4.1.4, ...". */
export function libraryVersion(): string {
  return native().libraryVersion();
}

/**
 * Initialises MPI with MPI_THREAD_MULTIPLE (once per process, on the main thread) and returns this
 * process's place in the job. Later calls return the same numbers.
 * @example const { rank, size } = init();
 */
export function init(): WorldInfo {
  if (!isMainThread) {
    throw new Error("mpi.init: call init() on the main thread; worker threads use its communicators (pass their ids)");
  }
  return native().init();
}

/** This process's place in the job, from any thread, once init() has run on the main thread. */
export function info(): WorldInfo {
  return native().info();
}

/** This process's rank in `comm`, and the size of `comm`. */
export function commInfo(comm: Communicator): { rank: number; size: number } {
  return native().commInfo(comm);
}

/**
 * Splits `comm` (collective: every process of `comm` calls it): processes with the same `color`
 * form one new communicator, ranked by `key`. A negative color joins none and returns undefined.
 */
export function commSplit(comm: Communicator, color: number, key: number, timeoutMs: number): Communicator | undefined {
  const id = native().commSplit(comm, color, key, timeoutMs);
  return id < 0 ? undefined : id;
}

/**
 * A copy of `comm` (collective). MPI runs one collective at a time per communicator, so each thread
 * that calls collectives concurrently needs its own.
 */
export function commDup(comm: Communicator, timeoutMs: number): Communicator {
  return native().commDup(comm, timeoutMs);
}

/**
 * Frees a communicator that commSplit or commDup made (MPI_Comm_free: every process of `comm` calls
 * it, none waits for the others). Throws on WORLD and LOCAL, on one that is in use by a call, that
 * is broken (an earlier call timed out: abort() instead) or was freed already; its id is not reused,
 * so a later call on it throws MPI_BAD_COMM rather than reaching another communicator.
 * @example const comm = commDup(WORLD, 30_000); allReduceSum(comm, data, 30_000); commFree(comm);
 */
export function commFree(comm: Communicator): void {
  native().commFree(comm);
}

/** How many communicators commSplit and commDup made in this process that are not freed yet. */
export function commCount(): number {
  return native().commCount();
}

/**
 * The communicator of the processes that have this process's local rank, one per host, ranked as
 * in WORLD: the hosts' peers for a hierarchical all-reduce (collective over WORLD).
 */
export function splitByLocalIndex(timeoutMs: number): Communicator {
  const { rank, localRank } = native().info();
  return native().commSplit(WORLD, localRank, rank, timeoutMs);
}

/**
 * Sums `data` element-wise across the processes of `comm`, in place; blocks the calling thread for
 * at most `timeoutMs`, then throws an MPI_TIMEOUT error.
 * @example allReduceSum(WORLD, gradients, 30_000);
 */
export function allReduceSum(comm: Communicator, data: ReducibleArray, timeoutMs: number): void {
  native().allReduce(comm, data, "sum", timeoutMs);
}

function reduceScalar(comm: Communicator, value: number, op: string, timeoutMs: number): number {
  const cell = new Float64Array([value]);
  native().allReduce(comm, cell, op, timeoutMs);
  return cell[0]!;
}

/** Element-wise maximum in place, or of one number (returned); e.g. a "non-finite gradient" flag. */
export function allReduceMax(comm: Communicator, data: number, timeoutMs: number): number;
export function allReduceMax(comm: Communicator, data: ReducibleArray, timeoutMs: number): void;
export function allReduceMax(comm: Communicator, data: number | ReducibleArray, timeoutMs: number): number | undefined {
  if (typeof data === "number") return reduceScalar(comm, data, "max", timeoutMs);
  native().allReduce(comm, data, "max", timeoutMs);
}

/** Element-wise minimum in place, or of one number (returned). */
export function allReduceMin(comm: Communicator, data: number, timeoutMs: number): number;
export function allReduceMin(comm: Communicator, data: ReducibleArray, timeoutMs: number): void;
export function allReduceMin(comm: Communicator, data: number | ReducibleArray, timeoutMs: number): number | undefined {
  if (typeof data === "number") return reduceScalar(comm, data, "min", timeoutMs);
  native().allReduce(comm, data, "min", timeoutMs);
}

/** Copies the bytes of a typed array from rank `root` of `comm` into every other process's `data`. */
export function broadcast(comm: Communicator, data: NodeJS.TypedArray, root: number, timeoutMs: number): void {
  native().broadcast(comm, data, root, timeoutMs);
}

/** Returns once every process of `comm` has called it, or throws MPI_TIMEOUT after `timeoutMs`. */
export function barrier(comm: Communicator, timeoutMs: number): void {
  native().barrier(comm, timeoutMs);
}

/**
 * allReduceSum for the main thread: polls in libuv's thread pool, so the event loop keeps running.
 * The communicator is held from the call until the promise settles.
 */
export function allReduceSumAsync(comm: Communicator, data: ReducibleArray, timeoutMs: number): Promise<void> {
  return native().allReduceAsync(comm, data, "sum", timeoutMs);
}

/** broadcast for the main thread (see allReduceSumAsync). */
export function broadcastAsync(comm: Communicator, data: NodeJS.TypedArray, root: number, timeoutMs: number) {
  return native().broadcastAsync(comm, data, root, timeoutMs);
}

/** barrier for the main thread (see allReduceSumAsync). */
export function barrierAsync(comm: Communicator, timeoutMs: number): Promise<void> {
  return native().barrierAsync(comm, timeoutMs);
}

/** Stops every process of the job with `errorCode` (MPI_Abort): the way out after a time-out. */
export function abort(errorCode: number): void {
  native().abort(errorCode);
}

/**
 * Frees the communicators and shuts MPI down (main thread, every process). Refuses after a call
 * timed out or failed, since MPI would wait for that call forever: abort() instead.
 */
export function finalize(): void {
  native().finalize();
}
