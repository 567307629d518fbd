// End-to-end: `threadgrad bench --distributed mpi` in 2 processes under mpirun (one host, TCP over
// loopback) prints one report, from process 0 only, with the job's rows, the one-process rows and
// the all-reduce timings; without the MPI addon it names the packages to install. The mpirun test
// is skipped, saying why, where mpirun or the addon is absent; under CI (whose script installs Open
// MPI and builds the addon) that fails instead. Nothing here asserts a speed.
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { NOT_AVAILABLE } from "../../mpi/src/index.js";
import { mpiMissing, mpirun, reportMissingMpi } from "../../mpi/test/helpers.js";
import { BIN, requireBuilt, run } from "./helpers.js";

// Ends a run that hangs; a passing one takes seconds.
const SAFETY_LIMIT_MS = 150_000;
// W1's MLP 784-256-256-10: weights and biases.
const W1_PARAMETERS = 784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10;

const missing = mpiMissing();
reportMissingMpi(missing, "the mpirun test of packages/cli/test/bench-mpi.test.ts");

beforeAll(requireBuilt);

interface TaggedLine {
  rank: number;
  stream: "stdout" | "stderr";
  text: string;
}

/** Runs `threadgrad ...args` in 2 processes; mpirun tags each line with the process that wrote it. */
async function mpirunBench(args: string[]): Promise<{ status: number | null; output: string; lines: TaggedLine[] }> {
  const { status, output } = await mpirun(BIN, args, { mpirunArgs: ["--tag-output"], safetyLimitMs: SAFETY_LIMIT_MS });
  const lines: TaggedLine[] = [];
  for (const line of output.split("\n")) {
    // Open MPI 4's --tag-output: "[job,rank]<stdout>:text"
    const m = /^\[\d+,(\d+)\]<(stdout|stderr)>:(.*)$/.exec(line);
    if (m) lines.push({ rank: Number(m[1]), stream: m[2] as "stdout" | "stderr", text: m[3]! });
  }
  return { status, output, lines };
}

describe("bench --distributed", () => {
  it("without the MPI addon names the Debian packages to install", async () => {
    const hide = fileURLToPath(new URL("../../workers/src/fixtures/hide-mpi-addon.cjs", import.meta.url));
    const r = await run(["bench", "--distributed", "mpi", "--workers", "1", "--steps", "1"], {
      env: { NODE_OPTIONS: `--require "${hide}"` },
    });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`threadgrad bench: error: DataParallel: distributed: "mpi": ${NOT_AVAILABLE} (`);
    expect(r.stderr).toMatch(/openmpi-bin and libopenmpi-dev/);
    expect(r.stdout).toBe("");
  });

  it("takes mpi only, naming the value it got", async () => {
    const r = await run(["bench", "--distributed", "tcp", "--steps", "1"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('threadgrad bench: --distributed must be mpi (run under mpirun or srun), got "tcp"');
  });
});

describe.skipIf(missing !== null)("bench --distributed mpi in 2 processes (mpirun)", () => {
  it("process 0 alone prints W8's rows, the 1-process row and the all-reduce timings", async () => {
    const args = ["bench", "--distributed", "mpi", "--workers", "1", "--steps", "2", "--warmup-steps", "1", "--json"];
    const r = await mpirunBench(args);
    expect(r.status, r.output).toBe(0);
    // Process 1 trains and times along without a word.
    expect(r.lines.filter((l) => l.rank !== 0)).toEqual([]);
    const events = r.lines
      .filter((l) => l.stream === "stdout")
      .map((l) => JSON.parse(l.text) as Record<string, unknown>);
    const bench = events.pop()!;
    // The 1-process row (1 x 2 workers) needs 2 cores for process 0.
    const hasSingle = (bench.cores as number) >= 2;
    expect(events.map((e) => e.event)).toEqual(hasSingle ? ["bench-result", "bench-result"] : ["bench-result"]);
    expect(events[0]).toMatchObject({ processes: 2, workers: 1, steps: 2 });
    if (hasSingle) expect(events[1]).toMatchObject({ processes: 1, workers: 2, steps: 2 });

    expect(bench).toMatchObject({ processes: 2, processesOnHost: 2, steps: 2, scalingEfficiency: 1 });
    expect(bench.workload).toMatchObject({ name: "W8", sizes: [784, 256, 256, 10], batchSize: 256 });
    expect(bench.mpi).toMatch(/^Open MPI v\d/);
    type Row = { workers: number; processes: number; samplesPerSec: number; vsSingleProcess?: number };
    const [row, ...more] = bench.results as Row[];
    expect(more).toEqual([]);
    expect(row).toMatchObject({ workers: 1, processes: 2 });
    expect(row!.samplesPerSec).toBeGreaterThan(0);
    if (hasSingle) {
      const [single] = bench.singleProcess as Row[];
      expect(single).toMatchObject({ workers: 2, processes: 1 });
      expect(row!.vsSingleProcess).toBeCloseTo(row!.samplesPerSec / single!.samplesPerSec, 9);
    } else {
      expect(bench.singleProcess).toBeNull();
      expect(bench.singleProcessSkipped).toMatch(/^process 0 may use 1 core, fewer than 2/);
      expect(row!.vsSingleProcess).toBeUndefined();
    }

    const allReduce = bench.allReduce as { name: string; byteLength: number; medianMs: number; gbPerSec: number }[];
    expect(allReduce.map((a) => [a.name, a.byteLength])).toEqual([
      ["16 bytes", 16],
      ["W8 gradient", 4 * W1_PARAMETERS],
      ["1 MiB", 1 << 20],
      ["16 MiB", 16 << 20],
    ]);
    for (const a of allReduce) {
      expect(a.medianMs).toBeGreaterThan(0);
      expect(a.gbPerSec).toBeCloseTo(a.byteLength / a.medianMs / 1e6, 9);
    }
  }, 180_000);
});
