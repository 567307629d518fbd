// `threadgrad train --distributed mpi` in 2 processes under mpirun (one host, TCP over loopback), each
// with 1 worker, on slices of the built-in digits: process 0 alone prints and writes the run folder,
// a resume needs as many processes and repeats the uninterrupted run bit for bit, SIGTERM to mpirun
// leaves a checkpoint, and a refusal by process 0 stops the other. Skipped, saying why, where mpirun
// or the MPI addon is absent; under CI (whose script installs Open MPI and builds the addon) that fails.
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadTensor, readTrainerCheckpoint, resolveWorkers } from "@threadgrad/workers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mpiMissing, mpirun as mpirunScript, reportMissingMpi } from "../../mpi/test/helpers.js";
import { BIN, jsonLines, requireBuilt, run, tempDir } from "./helpers.js";

// Open MPI 4.1's mpirun, signalled, sends SIGTERM to the processes this many seconds later and
// SIGKILL as long after that: time for a small run to finish its step and save. (mpirun waits as
// long when a process exits with an error, so only the SIGTERM test sets it.)
const SIGKILL_TIMEOUT_S = 8;
const SIGKILL_TIMEOUT_ARGS = ["--mca", "odls_base_sigkill_timeout", String(SIGKILL_TIMEOUT_S)];
// Ends a run that hangs; a passing run takes seconds (the SIGTERM one about twice the time-out more).
const SAFETY_LIMIT_MS = 100_000;
// 256 digits: 4 steps of 64 an epoch.
const SMALL = ["--limit", "256", "--batch-size", "64"];
const ONE_WORKER = [...SMALL, "--workers", "1"];

const missing = mpiMissing();
reportMissingMpi(missing, "packages/cli/test/distributed.test.ts");

interface MpiRun {
  code: number | null;
  stdout: string;
  stderr: string;
  hitSafetyLimit: boolean;
}

/**
 * `mpirun -np <processes> node dist/bin.js <args>` in `cwd`; `onStdout` sees the output so far and
 * mpirun's child process (to signal it).
 */
async function mpirun(
  processes: number,
  args: string[],
  cwd: string,
  onStdout?: (text: string, child: ChildProcess) => void,
  mpirunArgs: string[] = [],
): Promise<MpiRun> {
  const killAfterMs = 3 * SIGKILL_TIMEOUT_S * 1000;
  const opts = { processes, mpirunArgs, cwd, safetyLimitMs: SAFETY_LIMIT_MS, killAfterMs, onStdout };
  const { status, stdout, stderr, hitSafetyLimit } = await mpirunScript(BIN, args, opts);
  return { code: status, stdout, stderr, hitSafetyLimit };
}

/** A checkpoint's parameters, in order, as plain numbers. */
function parameters(file: string): number[] {
  return [...readTrainerCheckpoint(file).params].flatMap(([name, t]) => Array.from(loadTensor(t, name)));
}

const records = (dir: string) => jsonLines(readFileSync(join(dir, "metrics.jsonl"), "utf8"));

describe("threadgrad train without the MPI addon", () => {
  it("--distributed mpi names the Debian packages to install", async () => {
    requireBuilt();
    const hide = fileURLToPath(new URL("../../workers/src/fixtures/hide-mpi-addon.cjs", import.meta.url));
    const tmp = tempDir();
    try {
      const r = await run(["train", "--distributed", "mpi", ...ONE_WORKER, "--out", join(tmp.path, "run")], {
        env: { NODE_OPTIONS: `--require ${hide}` },
      });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(
        /^threadgrad train: --distributed mpi: MPI is not available: install Debian's openmpi-bin and libopenmpi-dev/,
      );
      expect(r.stderr).toMatch(/\(Cannot find module '.*threadgrad_mpi\.node'\)/);
      expect(existsSync(join(tmp.path, "run"))).toBe(false);
    } finally {
      tmp.cleanup();
    }
  });
});

describe.skipIf(missing !== null)("threadgrad train --distributed mpi in 2 processes (mpirun)", () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeAll(() => {
    requireBuilt();
    tmp = tempDir("threadgrad-cli-mpi-");
  });
  afterAll(() => tmp.cleanup());

  it("prints one process's output, writes the run folder once, and a resume repeats the run bit for bit", async () => {
    const whole = join(tmp.path, "whole");
    const r = await mpirun(
      2,
      ["train", "--distributed", "mpi", ...ONE_WORKER, "--epochs", "2", "--json", "--out", whole],
      tmp.path,
    );
    expect(r.hitSafetyLimit, r.stderr).toBe(false);
    expect(r.code, r.stderr).toBe(0);
    const events = jsonLines(r.stdout);
    // 2 epochs of 4 steps: each event once, as process 0 printed it.
    const epoch = [...Array(4).fill("step"), "epoch", "eval"];
    expect(events.map((e) => e.event)).toEqual(["start", ...epoch, ...epoch, "summary"]);
    expect(events[0]).toMatchObject({ workers: 1, processes: 2 });
    const summary = events.at(-1)!;
    expect(summary).toMatchObject({ workers: 1, processes: 2 });
    expect(summary.samplesPerSec).toBeGreaterThan(0);
    // Each step's samples are the global batch: every process's shard together.
    expect(events.filter((e) => e.event === "step").map((e) => e.samples)).toEqual([64, 64, 64, 64, 64, 64, 64, 64]);
    expect(records(whole).filter((m) => m.event === "start")).toHaveLength(1);
    expect(records(whole).filter((m) => m.event === "step")).toHaveLength(8);
    const ckpt = readTrainerCheckpoint(join(whole, "checkpoint-latest.msgpack"));
    expect(ckpt.progress).toMatchObject({ epoch: 2, globalStep: 8 });
    expect(ckpt.extra.cli).toMatchObject({ processes: 2, settings: { distributed: "mpi" } });

    // The same run stopped after its first epoch and resumed by 2 processes: the same bits.
    const half = join(tmp.path, "half");
    const first = await mpirun(
      2,
      ["train", "--distributed", "mpi", ...ONE_WORKER, "--epochs", "1", "--quiet", "--out", half],
      tmp.path,
    );
    expect(first.code, first.stderr).toBe(0);
    const latest = join(half, "checkpoint-latest.msgpack");
    const resumed = await mpirun(2, ["train", "--resume", latest, "--epochs", "2", "--json"], tmp.path);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(jsonLines(resumed.stdout).filter((e) => e.event === "summary")).toHaveLength(1);
    expect(readTrainerCheckpoint(latest).progress).toMatchObject({ epoch: 2, globalStep: 8 });
    expect(parameters(latest)).toEqual(parameters(join(whole, "checkpoint-latest.msgpack")));

    // One process may not resume what two started: it would split the batches otherwise.
    const alone = await run(["train", "--resume", latest, "--epochs", "3"], { timeoutMs: 60_000 });
    expect(alone.code, alone.stderr).toBe(2);
    expect(alone.stderr).toContain(
      `threadgrad train: --resume: ${latest} was written by a run of 2 processes, and this run has 1 process; ` +
        "a run resumes with as many processes: run it under mpirun -np 2",
    );
    expect(readTrainerCheckpoint(latest).progress).toMatchObject({ epoch: 2, globalStep: 8 });
  });

  it("when process 0 refuses the run folder, the other process stops too, naming process 0", async () => {
    const taken = join(tmp.path, "taken");
    mkdirSync(taken);
    const ours = join(taken, "metrics.jsonl");
    writeFileSync(ours, "{}\n");
    const r = await mpirun(
      2,
      ["train", "--distributed", "mpi", ...ONE_WORKER, "--epochs", "1", "--out", taken],
      tmp.path,
    );
    expect(r.hitSafetyLimit, r.stderr).toBe(false);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain(`threadgrad train: --out ${taken} already holds a run's files (metrics.jsonl)`);
    expect(r.stderr).toContain(
      "threadgrad train: process 1 of 2: process 0 refused the run (its message says why); stopping too",
    );
    expect(readFileSync(ours, "utf8")).toBe("{}\n");
  });

  it("SIGTERM to mpirun stops both processes at the same step with a loadable checkpoint", async () => {
    const out = join(tmp.path, "stopped");
    // Far more epochs than run before the signal arrives: the stop, not the end, finishes it.
    const args = ["train", "--distributed", "mpi", ...SMALL, "--workers", "auto", "--epochs", "1000", "--json"];
    let isSent = false;
    const onStdout = (text: string, child: ChildProcess) => {
      if (!isSent && text.includes('"event":"step"')) {
        isSent = true;
        child.kill("SIGTERM");
      }
    };
    const r = await mpirun(2, [...args, "--out", out], tmp.path, onStdout, SIGKILL_TIMEOUT_ARGS);
    expect(r.hitSafetyLimit, r.stderr).toBe(false);
    expect(isSent).toBe(true);
    expect(r.code).not.toBe(0);
    // --workers auto gives each process its share of this host's cores.
    expect(jsonLines(r.stdout.slice(0, r.stdout.indexOf("\n")))[0]).toMatchObject({
      event: "start",
      processes: 2,
      workers: resolveWorkers("auto", 2),
    });
    // mpirun stops passing output on once signalled; the run folder shows where the run stopped.
    const ckpt = readTrainerCheckpoint(join(out, "checkpoint-latest.msgpack"));
    const steps = records(out).filter((m) => m.event === "step");
    expect(ckpt.progress.globalStep).toBe(steps.at(-1)!.step);
    expect(ckpt.progress.epoch).toBeLessThan(1000);
    expect(ckpt.extra.cli).toMatchObject({ processes: 2 });
  });
});
