// Training across 2 processes under mpirun (one host, TCP over loopback): the run matches the same
// run on 1 process with 2 workers, repeats bit for bit, and a failing process stops the other with
// a named error. Skipped, saying why, where mpirun or the MPI addon is absent; under CI (whose
// script installs Open MPI and builds the addon) that fails instead.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as mpi from "@threadgrad/mpi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mpiMissing, mpirun as mpirunScript, reportMissingMpi } from "../../mpi/test/helpers.js";
import { assertBuilt } from "./fixtures/harness.mjs";
import { MPI_FIT, MPI_OPTIONS, mpiData, parameterValues } from "./fixtures/mpi-setup.mjs";
import { loadTensor } from "./checkpoint.js";
import { finalizeMpi, processesSharingCores } from "./distributed.js";
import { readTrainerCheckpoint } from "./persist.js";
import { DataParallel } from "./trainer.js";

const script = fileURLToPath(new URL("./fixtures/mpi-train.mjs", import.meta.url));
const packageDir = fileURLToPath(new URL("../", import.meta.url));
// Ends a run that hangs; a passing run takes seconds.
const SAFETY_LIMIT_MS = 90_000;

const missing = mpiMissing();
reportMissingMpi(missing, "packages/workers/src/distributed.test.ts");

interface Result {
  processRank: number;
  processCount: number;
  error?: string;
  elapsedMs?: number;
  losses: number[];
  evalLoss: number;
  evalAccuracy: number;
  predictions: number[];
  params: number[];
}

interface Run {
  status: number | null;
  output: string;
  hitSafetyLimit: boolean;
  results: Result[];
}

let runs = 0;

/** Runs mpi-train.mjs `scenario` in 2 processes, each writing its result into a folder of this run's own. */
async function mpirun(dir: string, [scenario, workers, ...rest]: string[]): Promise<Run> {
  const folder = join(dir, `run-${++runs}`);
  mkdirSync(folder);
  const opts = { cwd: packageDir, safetyLimitMs: SAFETY_LIMIT_MS };
  const { status, output, hitSafetyLimit } = await mpirunScript(script, [scenario!, workers!, folder, ...rest], opts);
  const results = [0, 1]
    .map((rank) => join(folder, `result-${rank}.json`))
    .filter((file) => existsSync(file))
    .map((file) => JSON.parse(readFileSync(file, "utf8")) as Result);
  return { status, output, hitSafetyLimit, results };
}

function maxAbsDiff(a: number[], b: number[]): number {
  expect(a.length).toBe(b.length);
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
}

describe("DataParallel's distributed option", () => {
  it("asking for MPI without its addon names the Debian packages to install", () => {
    const hide = fileURLToPath(new URL("./fixtures/hide-mpi-addon.cjs", import.meta.url));
    const run = spawnSync(
      process.execPath,
      ["--require", hide, fileURLToPath(new URL("./fixtures/mpi-missing.mjs", import.meta.url))],
      {
        encoding: "utf8",
        timeout: 60_000,
      },
    );
    expect(run.status, run.stderr).toBe(0);
    const message = run.stdout.trim();
    expect(message.startsWith(`RESULT DataParallel: distributed: "mpi": ${mpi.NOT_AVAILABLE} (`), message).toBe(true);
    expect(message).toMatch(/openmpi-bin and libopenmpi-dev/);
    expect(message).toMatch(/\(Cannot find module '.*threadgrad_mpi\.node'\)$/);
  });

  it("'auto' shares the cores among a host's processes unless mpirun bound each to its own", () => {
    const world = { rank: 1, size: 4, localRank: 1, localSize: 2 };
    expect(processesSharingCores(world, {})).toBe(2);
    expect(processesSharingCores(world, { OMPI_MCA_orte_bound_at_launch: "1" })).toBe(1);
  });

  it("finalizeMpi does nothing in a process that never initialised MPI", () => {
    // This test process never calls init (the trainers under test run in mpirun's processes).
    expect(() => finalizeMpi()).not.toThrow();
  });

  it("refuses a transport other than mpi, naming it", async () => {
    const opts = { model: { kind: "mlp" as const, sizes: [2, 2] }, workers: 1, distributed: "tcp" as never };
    await expect(DataParallel.create(opts)).rejects.toThrow(
      'DataParallel: distributed must be "mpi" or absent, got "tcp"',
    );
  });
});

describe.skipIf(missing !== null)("DataParallel across 2 processes over MPI (mpirun)", () => {
  let dir = "";
  beforeAll(() => {
    assertBuilt();
    dir = mkdtempSync(join(tmpdir(), "threadgrad-mpi-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("2 processes x 1 worker train as 1 process x 2 workers, the same bits every run", async () => {
    const checkpoint = join(dir, "two-by-one.msgpack");
    const run = await mpirun(dir, ["train", "1", checkpoint]);
    expect(run.status, run.output).toBe(0);
    expect(run.results.map((r) => [r.processRank, r.processCount])).toEqual([
      [0, 2],
      [1, 2],
    ]);
    const [first, second] = run.results as [Result, Result];
    // Both processes hold the same parameters and report the same global figures.
    expect(second).toEqual({ ...first, processRank: 1 });

    const reference = await DataParallel.create({ ...MPI_OPTIONS, workers: 2 });
    try {
      const data = mpiData();
      const fit = await reference.fit(data, MPI_FIT);
      const evaluation = await reference.evaluate(data, { batchSize: 20 });
      const params = parameterValues(reference);
      expect(first.losses).toHaveLength(2);
      expect(
        maxAbsDiff(
          first.losses,
          fit.history.map((h) => h.loss),
        ),
      ).toBeLessThanOrEqual(1e-6);
      expect(Math.abs(first.evalLoss - evaluation.loss)).toBeLessThanOrEqual(1e-6);
      expect(first.evalAccuracy).toBe(evaluation.accuracy);
      expect(first.predictions).toEqual(Array.from(evaluation.predictions!));
      expect(maxAbsDiff(first.params, params)).toBeLessThanOrEqual(1e-6);
      // Training moved the parameters well beyond the tolerance, so the comparison means something.
      const initial = await DataParallel.create({ ...MPI_OPTIONS, workers: 1 });
      expect(maxAbsDiff(first.params, parameterValues(initial))).toBeGreaterThan(1e-2);
      await initial.close();
    } finally {
      await reference.close();
    }

    // Process 0 wrote the checkpoint, with the parameters every process holds.
    expect(existsSync(checkpoint)).toBe(true);
    const stored = readTrainerCheckpoint(checkpoint);
    expect(stored.progress).toMatchObject({ epoch: 2, globalStep: 8 });
    const storedValues = [...stored.params].flatMap(([name, t]) => Array.from(loadTensor(t, name)));
    expect(storedValues).toEqual(first.params);

    const again = await mpirun(dir, ["train", "1"]);
    expect(again.status, again.output).toBe(0);
    expect(again.results[0]!.params).toEqual(first.params);
    expect(again.results[0]!.losses).toEqual(first.losses);

    // Stopped after the first epoch and resumed from the checkpoint by both processes: the same bits.
    const resumed = await mpirun(dir, ["resume", "1", join(dir, "resume.msgpack")]);
    expect(resumed.status, resumed.output).toBe(0);
    expect(resumed.results).toHaveLength(2);
    for (const r of resumed.results) {
      expect(r.losses).toEqual([first.losses[1]]);
      expect(r.params).toEqual(first.params);
    }
  });

  it("2 processes x 2 workers (two communicators in use at once) train as 1 process x 4 workers", async () => {
    const run = await mpirun(dir, ["train", "2"]);
    expect(run.status, run.output).toBe(0);
    const [first, second] = run.results as [Result, Result];
    expect(second).toEqual({ ...first, processRank: 1 });
    const reference = await DataParallel.create({ ...MPI_OPTIONS, workers: 4 });
    try {
      const data = mpiData();
      const fit = await reference.fit(data, MPI_FIT);
      const evaluation = await reference.evaluate(data, { batchSize: 20 });
      expect(
        maxAbsDiff(
          first.losses,
          fit.history.map((h) => h.loss),
        ),
      ).toBeLessThanOrEqual(1e-6);
      expect(Math.abs(first.evalLoss - evaluation.loss)).toBeLessThanOrEqual(1e-6);
      expect(first.predictions).toEqual(Array.from(evaluation.predictions!));
      expect(maxAbsDiff(first.params, parameterValues(reference))).toBeLessThanOrEqual(1e-6);
    } finally {
      await reference.close();
    }
  });

  it("closing a trainer frees the communicators it made: trainers come and go without leaking any", async () => {
    const run = await mpirun(dir, ["lifetime", "2"]);
    expect(run.status, run.output).toBe(0);
    expect(run.results).toHaveLength(2);
    for (const r of run.results as unknown as { counts: number[][]; refused: string; afterRefused: number }[]) {
      // open: one communicator per worker; closed: none
      expect(r.counts).toEqual([
        [2, 0],
        [2, 0],
        [2, 0],
      ]);
      expect(r.refused).toMatch(/lr/);
      expect(r.afterRefused).toBe(0);
    }
  });

  it("a stop asked in one process stops every process after the same step", async () => {
    const run = await mpirun(dir, ["stop", "1"]);
    expect(run.status, run.output).toBe(0);
    const [first, second] = run.results as [Result & { globalStep: number }, Result & { globalStep: number }];
    // Process 1 aborted during step 2; without agreeing, process 0 would hand out step 3 alone.
    expect(first.globalStep).toBe(2);
    expect(second).toEqual({ ...first, processRank: 1 });
  });

  it("a process whose model throws makes the other stop with a named MPI time-out, not hang", async () => {
    const run = await mpirun(dir, ["fault", "1"]);
    expect(run.hitSafetyLimit, run.output).toBe(false);
    const [survivor, failed] = run.results;
    if (survivor === undefined || failed === undefined) throw new Error(`missing results:\n${run.output}`);
    expect(failed).toMatchObject({ processRank: 1, error: "worker rank 0: model exploded on purpose" });
    expect(survivor.processRank).toBe(0);
    expect(survivor.error).toMatch(/^worker rank 0: mpi\.allReduce: time-out after 8000 ms on communicator \d+/);
    // Process 0 then ends the job with MPI_Abort(5).
    expect(run.status).toBe(5);
  });
});
