// Spawns the BUILT binary (packages/cli/dist/bin.js), as a user would run it. Build first:
// `npx tsc -b` from the repo root (`pnpm test` does).
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const BIN = fileURLToPath(new URL("../dist/bin.js", import.meta.url));

export function requireBuilt(): void {
  if (!existsSync(BIN))
    throw new Error(`cli tests: ${BIN} is missing; build first with \`npx tsc -b\` from the repo root`);
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  /** called with each chunk of stdout, and the child, e.g. to send SIGINT after the first step */
  onStdout?: (text: string, child: ReturnType<typeof spawn>) => void;
  /** called with each chunk of stderr, and the child, e.g. to send a second signal once the first is seen */
  onStderr?: (text: string, child: ReturnType<typeof spawn>) => void;
  timeoutMs?: number;
  /** variables added to this process's environment for the child */
  env?: Record<string, string>;
}

/** Runs `node dist/bin.js ...args` and collects its output. */
export function run(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "",
      stderr = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`threadgrad ${args.join(" ")} timed out; stderr:\n${stderr}`));
    }, opts.timeoutMs ?? 60_000);
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
      opts.onStdout?.(stdout, child);
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
      opts.onStderr?.(stderr, child);
    });
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Every stdout line parsed as JSON (throws on a line that is not). */
export function jsonLines(stdout: string): Record<string, unknown>[] {
  return stdout
    .trim()
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** A fresh temporary folder, removed by the returned cleanup. */
export function tempDir(prefix = "threadgrad-cli-"): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

export { encodeIdx as idxBytes } from "../src/data/idx.js";

/**
 * A small finished run in `dir` (1 epoch on 200 built-in digits, one worker) for tests that need a
 * real checkpoint; returns its checkpoint-latest path.
 */
export async function trainSmallRun(dir: string): Promise<string> {
  const r = await run(["train", "--limit", "200", "--epochs", "1", "--workers", "1", "--quiet", "--out", dir]);
  if (r.code !== 0) throw new Error(`threadgrad train failed (${r.code}):\n${r.stderr}`);
  return `${dir}/checkpoint-latest.msgpack`;
}
