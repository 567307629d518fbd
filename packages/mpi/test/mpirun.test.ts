// Runs test/fixture.mjs in 2 processes under mpirun (one host, TCP over loopback) and checks what
// every process printed. Skipped, with the reason printed, where mpirun is absent; under CI (where
// .ci/run installs Open MPI) a missing mpirun fails instead.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { mpiMissing, mpirun as mpirunScript, reportMissingMpi } from "./helpers.js";

const packageDir = fileURLToPath(new URL("../", import.meta.url));
const fixture = fileURLToPath(new URL("./fixture.mjs", import.meta.url));
const addon = fileURLToPath(new URL("../native/build/Release/threadgrad_mpi.node", import.meta.url));
const built = fileURLToPath(new URL("../dist/index.js", import.meta.url));
// Ends a run that hangs; a passing run takes a few seconds.
const SAFETY_LIMIT_MS = 60_000;

// Only mpirun decides the skip: a missing addon fails every test, naming the command that builds it.
const missing = mpiMissing({ needsAddon: false });

interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  output: string;
  hitSafetyLimit: boolean;
  results: Array<Record<string, unknown> & { rank: number; kind: string }>;
}

async function mpirun(scenario: string, mpirunArgs: string[] = []): Promise<Run> {
  if (!existsSync(addon))
    throw new Error(`${addon} is missing: install libopenmpi-dev, then run pnpm --filter @threadgrad/mpi build`);
  if (!existsSync(built)) throw new Error(`${built} is missing: run npx tsc -b`);
  const run = await mpirunScript(fixture, [scenario], { mpirunArgs, cwd: packageDir, safetyLimitMs: SAFETY_LIMIT_MS });
  const results = run.output
    .split("\n")
    .filter((line) => line.startsWith("RESULT "))
    .map((line) => JSON.parse(line.slice("RESULT ".length)));
  return { ...run, results };
}

function byKind(run: Run, kind: string) {
  return [0, 1].map((rank) => {
    const found = run.results.find((r) => r.kind === kind && r.rank === rank);
    if (found === undefined) throw new Error(`no '${kind}' result from rank ${rank} in:\n${run.output}`);
    return found;
  });
}

reportMissingMpi(missing, "packages/mpi/test/mpirun.test.ts");

describe.skipIf(missing !== null)("MPI across 2 processes (mpirun)", () => {
  it("all-reduces, broadcasts, splits and reports MPI errors by name", async () => {
    const run = await mpirun("collectives");
    expect(run.status, run.output).toBe(0);
    for (const f32 of byKind(run, "f32")) {
      // rank r contributes (r + 1) (i + 1) / 4: the sum over ranks 0 and 1 is 3 (i + 1) / 4
      expect(f32.values).toEqual([1, 2, 3, 4, 5, 6, 7, 8].map((k) => 0.75 * k));
    }
    for (const f64 of byKind(run, "f64")) {
      // two addends: the order does not matter, so the float64 sum is exact to the bit
      expect(f64.values).toEqual([1, 2, 3, 4, 5, 6, 7, 8].map((k) => 0.1 * k + 2 * 0.1 * k));
    }
    for (const m of byKind(run, "maxmin")) {
      expect(m).toMatchObject({ i32: [1, 0, 10], nonFinite: 1, smallest: 5 });
    }
    for (const b of byKind(run, "broadcast")) {
      expect(b.bytes).toEqual(Array.from({ length: 16 }, (_, i) => 100 + i));
      expect(b.doubles).toEqual([Math.PI, 2 * Math.PI, 3 * Math.PI]);
    }
    for (const a of byKind(run, "async")) {
      expect(a).toMatchObject({ sum: [3, 30], byte: 7, busy: { code: "MPI_BUSY" } });
      expect(a.busy).toMatchObject({ message: expect.stringMatching(/communicator 0 is in use by another call/) });
    }
    const split = byKind(run, "split");
    split.forEach((s, rank) => {
      expect(s.info).toEqual({ rank, size: 2, localRank: rank, localSize: 2 });
      expect(s.local).toEqual({ rank, size: 2 });
      // one host, so each local index has one process: its sum is its own value
      expect(s.byLocal).toEqual({ rank: 0, size: 1 });
      expect(s.localSum).toBe(rank + 1);
      expect(s.reversed).toEqual({ rank: 1 - rank, size: 2 });
      expect(s.onlyRankZero).toEqual(rank === 0 ? { rank: 0, size: 1 } : null);
    });
    for (const e of byKind(run, "errors")) {
      expect(e.badRoot).toEqual({ code: "MPI_ERROR", message: "mpi.broadcast: MPI error: MPI_ERR_ROOT: invalid root" });
      expect(e.badComm).toEqual({ code: "MPI_BAD_COMM", message: "mpi.barrier: unknown communicator 99" });
      expect(e.badType).toMatchObject({
        code: "MPI_ARG",
        message: expect.stringMatching(/Float32Array, Float64Array/),
      });
      expect(e.badTimeout).toMatchObject({ code: "MPI_ARG", message: expect.stringMatching(/timeoutMs .* got -1/) });
      expect(e.beforeInit).toEqual({
        code: "MPI_NOT_INITIALIZED",
        message: "mpi.barrier: MPI is not initialised: call init() on the main thread first",
      });
      expect(e.wasmTrap).toBe("RuntimeError: memory access out of bounds");
    }
    expect(byKind(run, "finalized")).toHaveLength(2);
    for (const t of run.results.filter((r) => r.kind === "timing" && r.rank === 0)) {
      console.log(
        `all-reduce ${t.mib} MiB float32, 2 processes, TCP loopback: median ${Number(t.medianMs).toFixed(1)} ms`,
      );
    }
  });

  it("commFree frees what commDup and commSplit made, and refuses freed, unknown and MPI's own ids", async () => {
    const run = await mpirun("free");
    expect(run.status, run.output).toBe(0);
    for (const f of byKind(run, "free")) {
      expect(f.counts).toEqual([0, 2, 1, 0, 0]);
      expect(f.sum).toBe(3);
      expect(f.useAfterFree).toEqual({
        code: "MPI_BAD_COMM",
        message: "mpi.barrier: communicator 2 was freed (commFree)",
      });
      expect(f.freeTwice).toEqual({
        code: "MPI_BAD_COMM",
        message: "mpi.commFree: communicator 2 was freed (commFree)",
      });
      expect(f.freeWorld).toMatchObject({
        code: "MPI_ARG",
        message: expect.stringMatching(/communicator 0 is WORLD or LOCAL/),
      });
      expect(f.freeUnknown).toEqual({ code: "MPI_BAD_COMM", message: "mpi.commFree: unknown communicator 999" });
    }
  });

  it("two worker threads per process all-reduce concurrently, each on its own communicator", async () => {
    const run = await mpirun("threads");
    expect(run.status, run.output).toBe(0);
    const threads = run.results.filter((r) => r.kind === "thread");
    expect(threads).toHaveLength(4);
    for (const t of threads) {
      expect(t).toMatchObject({ rounds: 20, length: 65536, wrong: 0 });
      expect(t.commInfo).toEqual({ rank: t.rank, size: 2 });
      expect(t.type).toBe(t.thread === 0 ? "Float32Array" : "Float64Array");
      expect(t.initInWorker).toMatch(/mpi.init: call init\(\) on the main thread/);
    }
  });

  it("a process that never joins makes the other fail with a named time-out, not hang", async () => {
    const run = await mpirun("timeout");
    expect(run.hitSafetyLimit, run.output).toBe(false);
    const timeout = run.results.find((r) => r.kind === "timeout");
    if (timeout === undefined) throw new Error(`no time-out result:\n${run.output}`);
    expect(timeout).toMatchObject({ rank: 0, code: "MPI_TIMEOUT" });
    expect(timeout.message).toMatch(/^mpi.barrier: time-out after 1500 ms on communicator 0: a process did not join/);
    expect(timeout.elapsedMs).toBeGreaterThanOrEqual(1500);
    const after = run.results.find((r) => r.kind === "after");
    if (after === undefined) throw new Error(`no result after the time-out:\n${run.output}`);
    expect(after.again).toMatchObject({
      code: "MPI_BROKEN",
      message: expect.stringMatching(/communicator 0 is unusable/),
    });
    expect(after.asyncError).toEqual({
      code: "MPI_TIMEOUT",
      message: expect.stringMatching(/^mpi.allReduceAsync: time-out after 500 ms on communicator 2: a process did not/),
    });
    expect(after.finalize).toMatchObject({
      code: "MPI_BROKEN",
      message: expect.stringMatching(/call abort\(\) instead/),
    });
    // rank 0 then calls abort(3), which ends the job (mpirun's own banner about it is not always printed)
    expect(run.status).toBe(3);
  });

  it("a process killed mid-run ends the job, and mpirun names it", async () => {
    const run = await mpirun("death");
    expect(run.hitSafetyLimit, run.output).toBe(false);
    expect(run.status).not.toBe(0);
    expect(run.output).toMatch(/process rank 1 with PID \d+ on node \S+ exited on signal 9/);
    expect(run.results.filter((r) => r.kind === "death" && r.code === "none")).toEqual([]);
  });

  it("a process killed mid-run makes the survivor fail with a named error when mpirun lets it run", async () => {
    const run = await mpirun("death", ["--mca", "orte_abort_on_non_zero_status", "0"]);
    expect(run.hitSafetyLimit, run.output).toBe(false);
    const survivor = run.results.find((r) => r.kind === "death");
    if (survivor === undefined) throw new Error(`no survivor result:\n${run.output}`);
    expect(survivor).toMatchObject({ rank: 0, round: 3 });
    expect(["MPI_TIMEOUT", "MPI_ERROR"]).toContain(survivor.code);
    expect(survivor.message).toMatch(/^mpi.allReduce: (time-out after 5000 ms|MPI error)/);
    expect(run.status).not.toBe(0);
  });
});
