// The PyTorch peer: benchmarks/pytorch/peer.py, run with Debian's /usr/bin/python3 and its torch
// (python3-torch), measures W1, W4, W6 and W7 on 1 and 2 threads and prints the suite's rows as JSON
// lines. Where `python3 -c "import torch"` fails the suite prints one line saying why and goes on.
import { type SpawnSyncReturns, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Ctx } from "../measure.js";
import type { Row } from "../table.js";
import type { MlpInputs } from "./tfjs.js";

/** Debian's interpreter, whose torch is python3-torch; THREADGRAD_BENCH_PYTHON names another. */
export const PYTHON = process.env.THREADGRAD_BENCH_PYTHON || "/usr/bin/python3";
/** benchmarks/pytorch/peer.py, from dist/peers/ (and from src/peers/ under vitest) */
export const PEER_SCRIPT = fileURLToPath(new URL("../../pytorch/peer.py", import.meta.url));
/** Thread counts the peer measures, as W6 and W7 compare them with 1 and 2 workers. */
export const PEER_THREADS = [1, 2] as const;

/**
 * The environment the peer runs in: OpenBLAS forced to its AVX-512 kernels (`OPENBLAS_CORETYPE=
 * SkylakeX`: on these AMD CPUs it picks slower ones otherwise, and an OPENBLAS_CORETYPE the machine
 * sets for everything, such as Haswell, is overridden) where the CPU has AVX-512 (`cpuFlags`, from
 * /proc/cpuinfo); elsewhere those kernels would die on an illegal instruction, so the environment
 * is left as it is.
 */
export function peerEnv(base: NodeJS.ProcessEnv = process.env, cpuFlags: string = readCpuFlags()): NodeJS.ProcessEnv {
  if (!/\bavx512f\b/.test(cpuFlags)) return { ...base };
  return { ...base, OPENBLAS_CORETYPE: "SkylakeX" };
}

function readCpuFlags(): string {
  try {
    return /^flags\s*:(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "";
  } catch {
    return "";
  }
}

export type PeerWorkload = "w1" | "w2" | "w3" | "w4" | "w6" | "w6-train" | "w7";

/**
 * Why the peer cannot run, from the outcome of `python3 -c "import torch; print(torch.__version__)"`,
 * or null when it can: one line, naming the interpreter and the first line of its error.
 */
export function torchSkipReason(
  probe: Pick<SpawnSyncReturns<string>, "status" | "stdout" | "stderr" | "error" | "signal">,
): string | null {
  if (probe.error !== undefined) return `${PYTHON} did not start (${probe.error.message})`;
  if (probe.status === 0) return null;
  const lines = `${probe.stderr ?? ""}`.trim().split("\n");
  // A Python traceback ends with the exception: that line says what is missing.
  const last = lines.at(-1)?.trim() || (probe.signal ? `killed by ${probe.signal}` : `exit status ${probe.status}`);
  return `${PYTHON} -c "import torch" failed: ${last}`;
}

let probed: { skip: string | null; version: string } | undefined;

/** Whether torch imports (asked once per run), and its version. */
export function probeTorch(): { skip: string | null; version: string } {
  if (probed === undefined) {
    const r = spawnSync(PYTHON, ["-c", "import torch; print(torch.__version__)"], {
      encoding: "utf8",
      env: peerEnv(),
      timeout: 120_000,
    });
    probed = { skip: torchSkipReason(r), version: `${r.stdout ?? ""}`.trim() };
  }
  return probed;
}

const ROW_FIELDS = ["workload", "config", "impl", "unit", "better", "median", "min", "max", "samples"] as const;

/**
 * The rows in the peer's stdout: one JSON object per line (other lines are ignored). Each must have
 * the suite's row fields; a row that lacks one is refused with the field and the line.
 */
export function parsePeerRows(stdout: string): Row[] {
  const rows: Row[] = [];
  for (const line of stdout.split("\n")) {
    const text = line.trim();
    if (!text.startsWith("{")) continue;
    const r = JSON.parse(text) as Record<string, unknown>;
    for (const f of ROW_FIELDS) {
      if (!(f in r)) throw new Error(`pytorch peer: a row has no field '${f}': ${text.slice(0, 200)}`);
    }
    if (typeof r.median !== "number" || !(r.median > 0))
      throw new Error(`pytorch peer: field 'median' must be a positive number, got ${JSON.stringify(r.median)}`);
    rows.push({ ...(r as unknown as Row), peer: true });
  }
  return rows;
}

/** Writes the MLP workloads' rows and initial weights where peer.py's --inputs reads them. */
export function writeMlpInputs(dir: string, a: MlpInputs): void {
  writeFileSync(join(dir, "mlp-x.f32"), new Uint8Array(a.x.buffer, a.x.byteOffset, a.x.byteLength));
  writeFileSync(join(dir, "mlp-y.i32"), new Uint8Array(a.y.buffer, a.y.byteOffset, a.y.byteLength));
  const weights = a.weights.flatMap(({ w, b }) => [w, b]);
  const flat = new Float32Array(weights.reduce((n, t) => n + t.length, 0));
  let at = 0;
  for (const t of weights) {
    flat.set(t, at);
    at += t.length;
  }
  writeFileSync(join(dir, "mlp-weights.f32"), new Uint8Array(flat.buffer));
}

/** Notes already printed, so a missing torch is said once per run, not once per workload. */
const said = new Set<string>();

/**
 * The peer's rows for one workload (empty, after a one-line note, where torch is missing). For W1
 * and W4 give `mlp`: the rows and weights threadgrad starts from.
 */
export async function pytorchRows(ctx: Ctx, workload: PeerWorkload, mlp?: MlpInputs): Promise<Row[]> {
  const { skip } = probeTorch();
  if (skip !== null) {
    const note = `pytorch peer skipped: ${skip}`;
    if (!said.has(note)) console.log(note);
    said.add(note);
    return [];
  }
  const dir = mlp ? mkdtempSync(join(tmpdir(), "threadgrad-pytorch-")) : null;
  try {
    if (dir !== null && mlp) writeMlpInputs(dir, mlp);
    const args = [PEER_SCRIPT, "--workload", workload, "--threads", PEER_THREADS.join(",")];
    if (ctx.quick) args.push("--quick");
    if (dir !== null) args.push("--inputs", dir);
    ctx.log(`pytorch ${workload}`);
    const { code, stdout, stderr } = await runPython(args);
    if (code !== 0) {
      const last = stderr.trim().split("\n").at(-1) ?? "";
      throw new Error(`pytorch peer (${workload}) exited with ${code}: ${last}`);
    }
    return parsePeerRows(stdout);
  } finally {
    if (dir !== null) rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs peer.py; its progress lines go to stderr as they come, stdout is collected. */
function runPython(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(PYTHON, args, { env: peerEnv(), stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "",
      stderr = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => {
      stdout += s;
    });
    child.stderr.setEncoding("utf8").on("data", (s: string) => {
      stderr += s;
      process.stderr.write(s);
    });
    child.on("error", reject);
    child.on("close", (code) => resolvePromise({ code, stdout, stderr }));
  });
}
