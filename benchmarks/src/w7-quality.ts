#!/usr/bin/env node
// W7's quality targets: threadgrad's `chargpt` trained by `threadgrad train --data text:` for N steps
// (on each worker count asked for) and by PyTorch (pytorch/w7_quality.py) on the very same windows,
// each ending with the validation loss as the CLI evaluates a text run. Prints the losses and the
// gaps; exits 1 when a target is missed (threadgrad ≤ PyTorch + 0.05 nats, worker counts within 1e-4).
//   node dist/w7-quality.js [--steps 2000] [--workers 2,1] [--text DIR] [--seed 0] [--init threadgrad] [--out DIR]
import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { readTextCorpus, splitCorpus, windowStart, windowsPerEpoch } from "@threadgrad/cli";
import { manualSeed } from "@threadgrad/core";
import { CHARGPT, Gpt, epochOrder } from "@threadgrad/workers";
import { PYTHON, peerEnv } from "./peers/pytorch.js";

/** W7's batch: windows per step. */
export const W7_BATCH = 32;
/** W7's context: tokens per window. */
export const W7_CONTEXT = 64;
/** Target (a): threadgrad's validation loss may exceed PyTorch's by at most this many nats. */
export const W7_GAP_NATS = 0.05;
/** Target (b): validation losses on different worker counts agree to this. */
export const W7_WORKER_TOLERANCE = 1e-4;
const FORTUNES_DIR = "/usr/share/games/fortunes";
const SCRIPT = fileURLToPath(new URL("../pytorch/w7_quality.py", import.meta.url));
const THREADGRAD = fileURLToPath(new URL("../../packages/cli/dist/bin.js", import.meta.url));

/**
 * The window starts (offsets in the training split) of each of the first `steps` steps of
 * `threadgrad train --data text:` with this seed, batch and context: epoch e's windows are drawn
 * by `windowStart(seed, e, k, ...)` and trained in the order `epochOrder(windows, seed, e)`, in
 * batches of `batch` (an epoch's last batch holds what is left).
 */
export function trainingWindowStarts(
  trainBytes: number,
  steps: number,
  opts: { seed: number; batch: number; context: number },
): Int32Array[] {
  const { seed, batch, context } = opts;
  const windows = windowsPerEpoch(trainBytes, context);
  if (windows < 1) throw new Error(`w7-quality: a training split of ${trainBytes} bytes holds no window of ${context}`);
  const stepsPerEpoch = Math.ceil(windows / batch);
  const out: Int32Array[] = [];
  for (let epoch = 0; out.length < steps; epoch++) {
    const order = epochOrder(windows, seed, epoch);
    for (let s = 0; s < stepsPerEpoch && out.length < steps; s++) {
      const picked = order.subarray(s * batch, Math.min(windows, (s + 1) * batch));
      out.push(picked.map((k) => windowStart(seed, epoch, k, trainBytes, context)));
    }
  }
  return out;
}

/** The windows file w7_quality.py reads: int32 little-endian, per step the window count, then the starts. */
export function encodeWindows(steps: Int32Array[]): Uint8Array {
  const flat = new Int32Array(steps.reduce((n, s) => n + 1 + s.length, 0));
  let at = 0;
  for (const s of steps) {
    flat[at++] = s.length;
    flat.set(s, at);
    at += s.length;
  }
  const bytes = new Uint8Array(flat.byteLength);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < flat.length; i++) view.setInt32(4 * i, flat[i]!, true);
  return bytes;
}

/**
 * The initial weights of `threadgrad train --model chargpt --seed SEED` (DataParallel seeds the
 * default generator, then builds the model) in w7_quality.py's --init form: the float32 values of
 * every parameter in registration order, little-endian, and their [name, shape] list as JSON.
 */
export function chargptInitialWeights(seed: number): { weights: Uint8Array; layout: [string, number[]][] } {
  manualSeed(seed);
  const params = [...new Gpt(CHARGPT).namedParameters()];
  const flat = new Float32Array(params.reduce((n, [, p]) => n + p.numel, 0));
  let at = 0;
  for (const [, p] of params) {
    flat.set(p.data as Float32Array, at);
    at += p.numel;
  }
  const weights = new Uint8Array(flat.byteLength);
  const view = new DataView(weights.buffer);
  for (let i = 0; i < flat.length; i++) view.setFloat32(4 * i, flat[i]!, true);
  return { weights, layout: params.map(([name, p]) => [name, [...p.shape]]) };
}

/** The last line of `stdout` that is a JSON object, parsed; `what` names the program in the error. */
export function lastJson(stdout: string, what: string): Record<string, unknown> {
  const line = stdout
    .trim()
    .split("\n")
    .reverse()
    .find((l) => l.trim().startsWith("{"));
  if (line === undefined) throw new Error(`w7-quality: ${what} printed no JSON result`);
  return JSON.parse(line) as Record<string, unknown>;
}

function numberField(r: Record<string, unknown>, key: string, what: string): number {
  const v = r[key];
  if (typeof v !== "number" || !Number.isFinite(v))
    throw new Error(`w7-quality: ${what}'s result has no finite ${key}: ${JSON.stringify(r).slice(0, 300)}`);
  return v;
}

/** Runs a program, its stderr passed through; resolves with its stdout, rejects unless it exits 0. */
function runProgram(file: string, args: string[], env: NodeJS.ProcessEnv, what: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(file, args, { env, stdio: ["ignore", "pipe", "inherit"] });
    let stdout = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => {
      stdout += s;
    });
    child.on("error", (e) => reject(new Error(`w7-quality: ${what} did not start: ${e.message}`)));
    child.on("close", (code, signal) => {
      if (code === 0) resolvePromise(stdout);
      else reject(new Error(`w7-quality: ${what} failed (${signal ?? `exit status ${code}`})`));
    });
  });
}

const USAGE = `usage: node dist/w7-quality.js [options]
  --steps N         optimizer steps for every run (default 2000)
  --workers LIST    threadgrad worker counts, comma-separated (default 2,1); none: PyTorch only
  --text DIR        the corpus (default ${FORTUNES_DIR})
  --seed N          threadgrad's --seed (its weights and windows); PyTorch's manual_seed (default 0)
  --init WHICH      PyTorch's initial weights: threadgrad (its very weights, default) or pytorch
                    (PyTorch's own draw of the same scheme)
  --out DIR         where the windows, weights and threadgrad's run folders go (default $TMPDIR/threadgrad-w7-quality)
  -h, --help        this text`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      steps: { type: "string", default: "2000" },
      workers: { type: "string", default: "2,1" },
      text: { type: "string", default: FORTUNES_DIR },
      seed: { type: "string", default: "0" },
      init: { type: "string", default: "threadgrad" },
      out: { type: "string", default: join(tmpdir(), "threadgrad-w7-quality") },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const steps = Number(values.steps);
  const seed = Number(values.seed);
  if (!Number.isInteger(steps) || steps < 1)
    throw new Error(`--steps: expected a positive integer, got '${values.steps}'`);
  if (!Number.isInteger(seed) || seed < 0)
    throw new Error(`--seed: expected a non-negative integer, got '${values.seed}'`);
  const workers =
    values.workers === "none"
      ? []
      : values.workers.split(",").map((v) => {
          const n = Number(v.trim());
          if (!Number.isInteger(n) || n < 1)
            throw new Error(`--workers: expected none or integers ≥ 1, got '${values.workers}'`);
          return n;
        });
  if (values.init !== "threadgrad" && values.init !== "pytorch")
    throw new Error(`--init: expected threadgrad or pytorch, got '${values.init}'`);
  const text = resolve(values.text);
  const out = resolve(values.out);
  mkdirSync(out, { recursive: true });

  const { train } = splitCorpus(readTextCorpus(text).bytes);
  const windowsFile = join(out, "windows.i32");
  const starts = trainingWindowStarts(train.length, steps, { seed, batch: W7_BATCH, context: W7_CONTEXT });
  writeFileSync(windowsFile, encodeWindows(starts));
  console.error(`w7-quality: ${steps} steps' windows (threadgrad's, seed ${seed}) in ${windowsFile}`);

  const results: { impl: string; valLoss: number; seconds: number }[] = [];
  const pyArgs = [SCRIPT, "--steps", String(steps), "--text", text, "--windows", windowsFile, "--seed", String(seed)];
  if (values.init === "threadgrad") {
    const initFile = join(out, "init.f32");
    const { weights, layout } = chargptInitialWeights(seed);
    writeFileSync(initFile, weights);
    writeFileSync(`${initFile}.json`, JSON.stringify(layout));
    pyArgs.push("--init", initFile);
  }
  const py = lastJson(await runProgram(PYTHON, pyArgs, peerEnv(), "pytorch (w7_quality.py)"), "pytorch");
  const pytorch = numberField(py, "valLoss", "pytorch");
  results.push({ impl: String(py.impl), valLoss: pytorch, seconds: numberField(py, "seconds", "pytorch") });
  console.error(`w7-quality: pytorch ${py.init}; its first losses ${JSON.stringify(py.firstLosses)}`);

  const threadgrad: number[] = [];
  for (const w of workers) {
    const args = ["train", "--data", `text:${text}`, "--model", "chargpt", "--batch-size", String(W7_BATCH)];
    args.push("--lr", "1e-3", "--seed", String(seed), "--max-steps", String(steps), "--eval-every", `${steps}steps`);
    args.push("--workers", String(w), "--out", join(out, `threadgrad-${w}w`), "--overwrite", "--quiet", "--json");
    const what = `threadgrad train on ${w} worker${w === 1 ? "" : "s"}`;
    console.error(`w7-quality: ${what}`);
    const t0 = performance.now();
    const r = lastJson(await runProgram(process.execPath, [THREADGRAD, ...args], process.env, what), what);
    const valLoss = numberField(r, "valLoss", what);
    threadgrad.push(valLoss);
    results.push({
      impl: `threadgrad, ${w} worker${w === 1 ? "" : "s"}`,
      valLoss,
      seconds: (performance.now() - t0) / 1000,
    });
  }

  const init = values.init === "threadgrad" ? "the same initial weights" : "each framework's own initial draw";
  console.log(
    `W7 chargpt, ${steps} steps of ${W7_BATCH} windows of ${W7_CONTEXT} (the same windows), ${init}, Adam 1e-3`,
  );
  for (const r of results)
    console.log(
      `  ${r.impl.padEnd(26)} validation loss ${r.valLoss.toFixed(5)} nats/byte  (${r.seconds.toFixed(0)} s)`,
    );
  let ok = true;
  const verdict = (pass: boolean) => (pass ? "met" : "MISSED");
  for (const [i, v] of threadgrad.entries()) {
    const gap = v - pytorch;
    const pass = gap <= W7_GAP_NATS;
    ok &&= pass;
    console.log(
      `  (a) ${workers[i]} worker(s) − pytorch: ${gap >= 0 ? "+" : ""}${gap.toFixed(5)} nats ` +
        `(target ≤ ${W7_GAP_NATS}) ${verdict(pass)}`,
    );
  }
  if (threadgrad.length > 1) {
    const spread = Math.max(...threadgrad) - Math.min(...threadgrad);
    const pass = spread <= W7_WORKER_TOLERANCE;
    ok &&= pass;
    console.log(
      `  (b) spread over worker counts ${workers.join(", ")}: ${spread.toExponential(2)} ` +
        `(target ≤ ${W7_WORKER_TOLERANCE}) ${verdict(pass)}`,
    );
  }
  console.log(JSON.stringify({ steps, seed, init: values.init, results }));
  return ok ? 0 : 1;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then(
    (code) => process.exit(code),
    (e: unknown) => {
      console.error(e instanceof Error ? e.message : String(e));
      process.exit(2);
    },
  );
}
