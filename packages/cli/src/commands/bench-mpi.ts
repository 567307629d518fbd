// `threadgrad bench --distributed mpi`: the bench across the processes of an MPI job. Every process
// trains the same rows (W8 is W1's: the MLP across processes); process 0 prints. Beside them: the
// same worker counts as one process of P·N workers, when every process runs on this host, and the
// time of the all-reduce the ranks make for their gradient segments.
import {
  type AllReduceTiming,
  type ModelSpec,
  builtinParameterShapes,
  initMpi,
  jobBarrier,
  mpiLibraryVersion,
  sumOnHost,
  timeAllReduce,
} from "@threadgrad/workers";
import { UsageError } from "../errors.js";
import { type CpuTicks, readCpuTicks } from "../machine-load.js";
import type { ThroughputResult } from "../workloads.js";

/** This process's place in the MPI job the bench runs across. */
export interface MpiJob {
  rank: number;
  size: number;
  /** processes of the job on this host */
  localSize: number;
  /** e.g. "Open MPI v4.1.4" */
  library: string;
}

/** `--distributed`: "mpi", or absent. */
export function parseDistributed(v: unknown): "mpi" | undefined {
  if (v === undefined) return undefined;
  if (v === "mpi") return v;
  throw new UsageError(`--distributed must be mpi (run under mpirun or srun), got ${JSON.stringify(v)}`);
}

/** Initialises MPI (throws the error naming the Debian packages when its addon is absent). */
export function joinMpiJob(): MpiJob {
  const { rank, size, localSize } = initMpi();
  return { rank, size, localSize, library: mpiLibraryVersion().split(",")[0]!.trim() };
}

/** How long the other processes wait for process 0's one-process rows: as long as they take. */
const SINGLE_PROCESS_WAIT_MS = 86_400_000;
const ALL_REDUCE_TIMEOUT_MS = 120_000;

/** The one-process rows, or why there are none (said by process 0, which decides). */
export type SingleProcessRows = { rows: ThroughputResult[] } | { skipped: string };

/**
 * The rows' equivalents on one process: `measure(P · N)` for each worker count N, run by process 0
 * while the others wait at a barrier (polling it, which costs them little CPU). None where the
 * processes are on several hosts (one host's cores are no equivalent of theirs), or where process 0
 * may use fewer cores than P · N (mpirun binds each process to a core unless told --bind-to none).
 */
export async function singleProcessRows(
  job: MpiJob,
  workerCounts: number[],
  cores: number,
  measure: (workers: number) => Promise<ThroughputResult>,
): Promise<SingleProcessRows> {
  if (job.localSize !== job.size) return { skipped: "the processes are on several hosts" };
  const most = Math.max(...workerCounts) * job.size;
  const result: SingleProcessRows =
    cores < most
      ? {
          skipped:
            `process 0 may use ${cores} core${cores === 1 ? "" : "s"}, fewer than ${most} ` +
            "(mpirun binds each process to cores: add --bind-to none)",
        }
      : { rows: [] };
  if (job.rank === 0 && "rows" in result) for (const n of workerCounts) result.rows.push(await measure(n * job.size));
  // Every process waits here, whatever process 0 decided.
  await jobBarrier(SINGLE_PROCESS_WAIT_MS);
  return result;
}

/**
 * CPU ticks with `self` counting every process of the job on this host, so that the busy-machine
 * warning counts only processes outside the job. Collective: every process calls it.
 */
export async function jobCpuTicks(): Promise<CpuTicks | null> {
  const ticks = readCpuTicks();
  const cell = Float64Array.of(ticks?.self ?? Number.NaN);
  await sumOnHost(cell, ALL_REDUCE_TIMEOUT_MS);
  return ticks && Number.isFinite(cell[0]) ? { ...ticks, self: cell[0]! } : null;
}

/** One all-reduce size the bench times, named for the output. */
export interface AllReduceRow extends AllReduceTiming {
  name: string;
}

/** The parameter count of a built-in model, as the all-reduce of its gradient sends it. */
export function parameterCount(model: Extract<ModelSpec, { kind: string }>): number {
  return builtinParameterShapes(model).reduce((total, [, shape]) => total + shape.reduce((a, b) => a * b, 1), 0);
}

/**
 * Times the ranks' all-reduce (float32 sum) across every process: 16 bytes (the latency, as for
 * the few step figures each rank sums), the workload's gradient, 1 MiB and 16 MiB. Collective:
 * every process calls it.
 */
export function timeAllReduces(workloadName: string, parameters: number): AllReduceRow[] {
  const sizes = [
    { name: "16 bytes", byteLength: 16 },
    { name: `${workloadName} gradient`, byteLength: 4 * parameters },
    { name: "1 MiB", byteLength: 1 << 20 },
    { name: "16 MiB", byteLength: 16 << 20 },
  ];
  return sizes.map(({ name, byteLength }) => ({
    name,
    ...timeAllReduce(byteLength, byteLength <= 4 << 20 ? 50 : 20, ALL_REDUCE_TIMEOUT_MS),
  }));
}

/** The all-reduce timings as lines of text. */
export function allReduceTable(job: MpiJob, rows: AllReduceRow[]): string[] {
  const lines = [
    `all-reduce (sum of float32, mpi.allReduceSum as the ranks call it) across ${job.size} processes, ` +
      "median of each call's slowest process:",
    "  what                     bytes        ms     GB/s",
  ];
  for (const r of rows) {
    lines.push(
      `  ${r.name.padEnd(18)} ${r.byteLength.toLocaleString("en-US").padStart(11)} ${r.medianMs.toFixed(3).padStart(9)} ` +
        `${r.gbPerSec.toFixed(3).padStart(8)}`,
    );
  }
  lines.push("GB/s = bytes / time (algorithm bandwidth; 1 GB = 10^9 bytes)");
  return lines;
}
