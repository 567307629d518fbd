// How busy the rest of the machine was while bench measured: CPU time of every process from
// /proc/stat, minus this process's own (its worker threads included) from /proc/self/stat. Both
// count in the same clock ticks, and /proc/stat's idle time completes the machine's capacity, so
// the share needs no tick rate. The load average would not do: it lags by a minute or more.
import { readFileSync } from "node:fs";

/** Cumulative CPU ticks: `busy` and `total` of all CPUs (from /proc/stat), `self` of this process. */
export interface CpuTicks {
  busy: number;
  total: number;
  self: number;
  cpus: number;
}

/** Parses /proc/stat and /proc/<pid>/stat text. */
export function parseCpuTicks(procStat: string, selfStat: string): CpuTicks {
  const lines = procStat.split("\n");
  const all = lines.find((l) => l.startsWith("cpu "));
  if (all === undefined) throw new Error("machine-load: /proc/stat has no 'cpu' line");
  // user nice system idle iowait irq softirq steal (guest time is already inside user and nice)
  const [user, nice, system, idle, iowait, irq, softirq, steal] = all.trim().split(/\s+/).slice(1, 9).map(Number);
  const busy = user! + nice! + system! + irq! + softirq! + (steal ?? 0);
  // The command name (field 2) is in parentheses and may hold spaces: count fields after the last ')'.
  const fields = selfStat.slice(selfStat.lastIndexOf(")") + 2).split(" ");
  const self = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
  const cpus = lines.filter((l) => /^cpu\d+ /.test(l)).length;
  return { busy, total: busy + idle! + iowait!, self, cpus };
}

/** The ticks now, or null where /proc is not readable (not Linux). */
export function readCpuTicks(): CpuTicks | null {
  try {
    return parseCpuTicks(readFileSync("/proc/stat", "utf8"), readFileSync("/proc/self/stat", "utf8"));
  } catch {
    return null;
  }
}

/** Cores' worth of CPU time other processes used between two readings (0.5: half a core on average). */
export function otherCores(before: CpuTicks, after: CpuTicks): number {
  const total = after.total - before.total;
  if (total <= 0) return 0;
  const other = after.busy - before.busy - (after.self - before.self);
  return Math.max(0, (other / total) * after.cpus);
}

/**
 * A warning when other processes used more than a tenth of a core per usable core while bench
 * measured: its figures then say more about them than about threadgrad. Null otherwise.
 */
export function busyMachineWarning(before: CpuTicks | null, after: CpuTicks | null, cores: number): string | null {
  if (before === null || after === null) return null;
  const other = otherCores(before, after);
  if (other <= 0.1 * cores) return null;
  return (
    `bench: warning: other processes kept ${other.toFixed(1)} of ${cores} usable cores busy while measuring; ` +
    "these figures understate this machine and its scaling: rerun when it is idle"
  );
}
