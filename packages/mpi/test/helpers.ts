// What every test that launches processes under mpirun shares: finding Open MPI (and the addon),
// skipping or failing when it is absent, and running a Node script in a few processes on this host
// with a safety limit. Used by this folder's tests and by the workers' and cli's MPI tests.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { it } from "vitest";
import { LOOPBACK_MPIRUN_ARGS, NOT_AVAILABLE, isAvailable } from "../src/index.js";

const hasMpirun = spawnSync("mpirun", ["--version"], { encoding: "utf8" }).status === 0;

/**
 * Why the MPI tests cannot run on this machine (no mpirun, or with `needsAddon` no built addon),
 * or null when they can.
 * @example const missing = mpiMissing();
 */
export function mpiMissing({ needsAddon = true } = {}): string | null {
  if (!hasMpirun) return "mpirun not found: install Debian's openmpi-bin and libopenmpi-dev to run the MPI tests";
  if (needsAddon && !isAvailable()) return `${NOT_AVAILABLE} (the MPI addon is not built)`;
  return null;
}

/**
 * Where `missing` is not null: under CI (whose script installs Open MPI and builds the addon) adds a
 * test that fails with it, elsewhere warns that `what` is skipped. Call it at a test file's top level.
 * @example reportMissingMpi(missing, "packages/mpi/test/mpirun.test.ts");
 */
export function reportMissingMpi(missing: string | null, what: string): void {
  if (missing === null) return;
  if (process.env.CI) {
    it("MPI and its addon are installed (CI installs Open MPI and builds the addon before the tests)", () => {
      throw new Error(missing);
    });
  } else {
    console.warn(`skipping ${what}: ${missing}`);
  }
}

export interface MpirunOptions {
  /** how many processes (-np); default 2 */
  processes?: number;
  /** mpirun options added after the loopback ones, e.g. `["--tag-output"]` */
  mpirunArgs?: readonly string[];
  cwd?: string;
  /** ends a run that hangs: SIGTERM to mpirun after this long, SIGKILL `killAfterMs` later */
  safetyLimitMs: number;
  /** default 5000 */
  killAfterMs?: number;
  /** called with all of stdout so far, and mpirun's child process (to signal it) */
  onStdout?: (stdout: string, child: ChildProcess) => void;
}

export interface MpirunResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout and stderr interleaved as they arrived */
  output: string;
  hitSafetyLimit: boolean;
}

/**
 * Runs `node script ...args` in `processes` processes on this host under mpirun and collects what
 * they print.
 * @example const run = await mpirun("fixture.mjs", ["collectives"], { safetyLimitMs: 60_000 });
 */
export function mpirun(script: string, args: readonly string[], opts: MpirunOptions): Promise<MpirunResult> {
  const np = String(opts.processes ?? 2);
  const all = [...LOOPBACK_MPIRUN_ARGS, ...(opts.mpirunArgs ?? []), "-np", np, process.execPath, script, ...args];
  return new Promise((resolve, reject) => {
    const child = spawn("mpirun", all, { cwd: opts.cwd, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "",
      stderr = "",
      output = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
      output += chunk;
      opts.onStdout?.(stdout, child);
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
      output += chunk;
    });
    let hitSafetyLimit = false;
    // SIGTERM first: mpirun passes it on to its processes, which SIGKILL would orphan.
    const timer = setTimeout(() => {
      hitSafetyLimit = true;
      child.kill("SIGTERM");
      setTimeout(() => child.kill("SIGKILL"), opts.killAfterMs ?? 5000).unref();
    }, opts.safetyLimitMs);
    child.on("error", reject);
    child.on("close", (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr, output, hitSafetyLimit });
    });
  });
}
