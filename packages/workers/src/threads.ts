import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";

/**
 * Cores this process may use: `os.availableParallelism()` (CPU affinity), further limited by a
 * cgroup v2 CPU quota (`/sys/fs/cgroup/cpu.max`, e.g. "200000 100000" = 2 CPUs) when one is set.
 */
export function availableWorkers(): number {
  let n = availableParallelism();
  try {
    const [quota, period] = readFileSync("/sys/fs/cgroup/cpu.max", "utf8").trim().split(/\s+/);
    if (quota !== undefined && quota !== "max" && period !== undefined) {
      n = Math.min(n, Math.max(1, Math.floor(Number(quota) / Number(period))));
    }
  } catch {
    // no cgroup v2 quota readable: affinity alone decides
  }
  return Math.max(1, n);
}

/**
 * Parses a worker count: a positive integer or 'auto', which shares the cores among the
 * `processesOnHost` processes of a job that run on this host (at least one worker each).
 */
export function resolveWorkers(value: number | "auto" | undefined, processesOnHost = 1): number {
  if (value === undefined || value === "auto") return Math.max(1, Math.floor(availableWorkers() / processesOnHost));
  if (!Number.isInteger(value) || value < 1 || value > 256)
    throw new Error(`workers: must be 'auto' or an integer from 1 to 256, got ${String(value)}`);
  return value;
}
