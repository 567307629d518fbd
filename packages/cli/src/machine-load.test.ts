import { describe, expect, it } from "vitest";
import { busyMachineWarning, otherCores, parseCpuTicks } from "./machine-load.js";

/** /proc/stat with 2 CPUs: the aggregate line's user, system and idle ticks (the rest 0). */
const procStat = (user: number, system: number, idle: number) =>
  `cpu  ${user} 0 ${system} ${idle} 0 0 0 0 0 0\ncpu0 1 0 1 1 0 0 0 0 0 0\ncpu1 1 0 1 1 0 0 0 0 0 0\nintr 1\n`;
/** /proc/self/stat with utime and stime; the command name holds a space and a ')'. */
const selfStat = (utime: number, stime: number) =>
  `4242 (node (x) y) S 1 1 1 0 -1 0 0 0 0 0 ${utime} ${stime} 0 0 20 0 3 0 100 0 0`;

describe("machine load", () => {
  it("parses busy, total and this process's ticks", () => {
    expect(parseCpuTicks(procStat(300, 100, 600), selfStat(40, 10))).toEqual({
      busy: 400,
      total: 1000,
      self: 50,
      cpus: 2,
    });
  });

  it("counts other processes' time in cores: the machine's busy time minus this process's", () => {
    const before = parseCpuTicks(procStat(0, 0, 0), selfStat(0, 0));
    // 200 ticks of capacity (2 CPUs x 100): 150 busy, 50 of them this process's: others used 100 = 1 core.
    const after = parseCpuTicks(procStat(120, 30, 50), selfStat(40, 10));
    expect(otherCores(before, after)).toBe(1);
  });

  it("issue #13: bench warns when other processes kept cores busy, and not when the machine was idle", () => {
    const before = parseCpuTicks(procStat(0, 0, 0), selfStat(0, 0));
    const busy = parseCpuTicks(procStat(120, 30, 50), selfStat(40, 10));
    expect(busyMachineWarning(before, busy, 2)).toBe(
      "bench: warning: other processes kept 1.0 of 2 usable cores busy while measuring; " +
        "these figures understate this machine and its scaling: rerun when it is idle",
    );
    const quiet = parseCpuTicks(procStat(90, 10, 100), selfStat(90, 8)); // others: 2 ticks of 200
    expect(busyMachineWarning(before, quiet, 2)).toBeNull();
    expect(busyMachineWarning(null, quiet, 2)).toBeNull();
  });
});
