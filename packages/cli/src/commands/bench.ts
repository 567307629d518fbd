// `threadgrad bench`: gradient throughput of training steps for each worker count (an MLP on random
// data, W6: the cnn preset on Fashion-MNIST, or W7: the chargpt preset on the fortunes text), and
// the scaling efficiency throughput(N) / (N · throughput(1)) of the largest count.
import { availableWorkers, resolveWorkers } from "@threadgrad/workers";
import { EXIT_OK, UsageError } from "../errors.js";
import { busyMachineWarning, readCpuTicks } from "../machine-load.js";
import { formatRate } from "../progress.js";
import { parserOf } from "../settings.js";
import { ValueError, parseMlpSizes, parseNumber } from "../values.js";
import {
  FORTUNES_DIR,
  type ThroughputOptions,
  type ThroughputResult,
  W1,
  W6,
  W7,
  W7_POOL_STEPS,
  runThroughput,
  w6Data,
  w7Data,
} from "../workloads.js";

/** Names the folder (or file) W7's text is read from instead of FORTUNES_DIR. */
export const FORTUNES_ENV = "THREADGRAD_FORTUNES_DIR";

type BenchModel = number[] | "cnn" | "chargpt";

interface BenchSettings {
  workers: number[];
  /** an MLP's widths, "cnn": W6's network on Fashion-MNIST, or "chargpt": W7's on the fortunes text */
  sizes: BenchModel;
  activation: "relu" | "tanh" | "gelu";
  batchSize: number;
  steps: number;
  warmupSteps: number;
  seed: number;
  json: boolean;
}

function parseWorkerList(v: unknown): number[] {
  const items = typeof v === "string" ? v.split(",") : [];
  const list = items.map((item) => {
    const t = item.trim();
    if (t === "auto") return resolveWorkers("auto");
    return parseNumber(t, { min: 1, max: 256, isInteger: true });
  });
  if (list.length === 0) throw new ValueError("is empty");
  return [...new Set(list)].sort((a, b) => a - b);
}

function readBenchSettings(cli: Record<string, unknown>): BenchSettings {
  const errors: string[] = [];
  const get = <T>(flag: string, raw: unknown, fallback: T, parse: (v: unknown) => T): T => {
    if (raw === undefined) return fallback;
    try {
      return parse(raw);
    } catch (err) {
      if (!(err instanceof ValueError)) throw err;
      errors.push(
        flag === "--workers"
          ? `--workers must be a comma-separated list of auto or integers from 1 to 256, got ${JSON.stringify(raw)}`
          : `${flag} ${err.message}`,
      );
      return fallback;
    }
  };
  const positive = (v: unknown) => parseNumber(v, { min: 1, isInteger: true });
  const preset = typeof cli.model === "string" ? cli.model.trim() : "";
  const isCnn = preset === "cnn",
    isGpt = preset === "chargpt";
  const s: BenchSettings = {
    workers: get("--workers", cli.workers, [...new Set([1, availableWorkers()])], parseWorkerList),
    sizes: get("--model", cli.model, [...W1.sizes], parseBenchModel),
    activation: get("--activation", cli.activation, W1.activation, parserOf("activation")),
    batchSize: get(
      "--batch-size",
      cli.batchSize,
      isCnn ? W6.batchSize : isGpt ? W7.batchSize : W1.batchSize,
      parserOf("batchSize"),
    ),
    // A cnn step is about ten times a W1 step's arithmetic, a chargpt step about twenty, nearly all
    // in kernels: fewer steps do.
    steps: get("--steps", cli.steps, isGpt ? 30 : isCnn ? 50 : 200, positive),
    warmupSteps: get("--warmup-steps", cli.warmupSteps, isGpt ? 10 : isCnn ? 20 : 600, (v) =>
      parseNumber(v, { min: 0, isInteger: true }),
    ),
    seed: get("--seed", cli.seed, 0, parserOf("seed")),
    json: cli.json === true,
  };
  if (typeof s.sizes === "string" && cli.activation !== undefined)
    errors.push(
      `--activation applies to mlp models only; the ${s.sizes} preset uses ${s.sizes === "cnn" ? "ReLU" : "GELU"}`,
    );
  if (errors.length > 0) throw new UsageError(errors);
  return s;
}

/** `--model`: mlp:SIZES, cnn (W6's network) or chargpt (W7's). */
function parseBenchModel(v: unknown): BenchModel {
  const preset = typeof v === "string" ? v.trim() : "";
  if (preset === "cnn" || preset === "chargpt") return preset;
  try {
    return parseMlpSizes(v);
  } catch (err) {
    if (err instanceof ValueError)
      throw new ValueError(err.message.replace("(the only built-in model is mlp)", "or cnn or chargpt"));
    throw err;
  }
}

const ms = (v: number, width = 7) => v.toFixed(2).padStart(width);

/** The results as a table; a token model's rate column is tokens/s. */
function table(results: ThroughputResult[]): string[] {
  const base = results.find((r) => r.workers === 1);
  const isTokens = results.some((r) => r.tokensPerSec !== undefined);
  const lines = [
    `workers  ${isTokens ? " tokens/s" : "samples/s"}  speed-up  efficiency   step ms: p10  median     p90 | ` +
      "compute    wait  reduce  update   other",
  ];
  for (const r of results) {
    const speedup = base ? r.samplesPerSec / base.samplesPerSec : NaN;
    const b = r.breakdown;
    const su = Number.isFinite(speedup) ? `${speedup.toFixed(2)}x` : "-";
    const eff = Number.isFinite(speedup) ? `${((100 * speedup) / r.workers).toFixed(0)}%` : "-";
    const rate = formatRate(r.tokensPerSec ?? r.samplesPerSec);
    lines.push(
      `${String(r.workers).padStart(7)}  ${rate.padStart(9)}  ${su.padStart(8)}  ${eff.padStart(10)}   ` +
        `${ms(r.p10StepMs, 12)} ${ms(r.medianStepMs)} ${ms(r.p90StepMs)} | ` +
        `${ms(b.computeMs)} ${ms(b.waitMs)} ${ms(b.reduceMs)} ${ms(b.updateMs)} ${ms(b.otherMs)}`,
    );
  }
  return lines;
}

/** What a bench run trains: the workload as the JSON reports it, its runThroughput options and its title line. */
interface BenchPlan {
  workload: Record<string, unknown>;
  run: Pick<ThroughputOptions, "model" | "data" | "redraw" | "sizes" | "activation">;
  title: string;
  /** said on stderr: the real data was absent */
  note: string | null;
}

/** The workload `--model` names: W1 or another mlp, W6 (cnn) or W7 (chargpt). */
function planBench(s: BenchSettings): BenchPlan {
  if (s.sizes === "chargpt") return planW7(s);
  if (s.sizes === "cnn") {
    // W6 trains on Fashion-MNIST: a stream of its real batches (a seeded shuffle), or random data of
    // its shape when it is not installed, and the output says which.
    const d = w6Data(s.seed);
    return {
      workload: {
        name: s.batchSize === W6.batchSize ? "W6" : "custom",
        model: "cnn",
        sampleShape: [1, 28, 28],
        batchSize: s.batchSize,
        loss: "crossEntropy",
        optimizer: W6.optimizer,
        data: d.source,
        realData: d.real,
      },
      run: { model: W6.model, data: d.data },
      title:
        `cnn (conv 32, conv 64, linear 128, 10) on [${s.batchSize}, 1, 28, 28], batch ${s.batchSize}, ` +
        `cross-entropy, adam lr 1e-3, ${d.source}, shuffled with seed ${s.seed}`,
      note: d.real ? null : `Fashion-MNIST absent: ${d.source}`,
    };
  }
  const sizes = s.sizes;
  const isW1 = sizes.join() === W1.sizes.join() && s.activation === W1.activation && s.batchSize === W1.batchSize;
  return {
    workload: {
      name: isW1 ? "W1" : "custom",
      sizes,
      activation: s.activation,
      batchSize: s.batchSize,
      loss: "crossEntropy",
      optimizer: W1.optimizer,
    },
    run: { sizes, activation: s.activation },
    title:
      `mlp:${sizes.join(",")} ${s.activation}, batch ${s.batchSize}, cross-entropy, ` +
      `adam lr 1e-3, random N(0,1) data (seed ${s.seed})`,
    note: null,
  };
}

/**
 * W7 trains on fresh random windows of the fortunes text every step: a pool of at most
 * W7_POOL_STEPS steps' windows, redrawn each time the trainer has gone through it; random tokens
 * when the text is absent, and the output says which.
 */
function planW7(s: BenchSettings): BenchPlan {
  const { context } = W7.model;
  const windows = s.batchSize * Math.min(W7_POOL_STEPS, s.warmupSteps + s.steps);
  const d = w7Data(s.seed, windows, process.env[FORTUNES_ENV] || FORTUNES_DIR);
  const tokens = (s.batchSize * context).toLocaleString("en-US");
  return {
    workload: {
      name: s.batchSize === W7.batchSize ? "W7" : "custom",
      model: "chargpt",
      context,
      batchSize: s.batchSize,
      tokensPerStep: s.batchSize * context,
      loss: W7.loss,
      optimizer: W7.optimizer,
      data: d.source,
      realData: d.real,
    },
    run: { model: W7.model, data: d.data, redraw: d.redraw },
    title:
      `chargpt (vocab 256, context ${context}, dim 128, 4 heads, 2 layers; 470,784 parameters), batch ` +
      `${s.batchSize} windows of ${context} tokens (${tokens} tokens per step), cross-entropy over every ` +
      `position, adam lr 1e-3, fresh random windows of ${d.source} every step (seed ${s.seed})`,
    note: d.real ? null : `fortunes text absent: ${d.source}`,
  };
}

/** Runs `threadgrad bench` with commander's option values; returns the exit status. */
export async function runBench(cli: Record<string, unknown>): Promise<number> {
  const s = readBenchSettings(cli);
  const out = (line: string) => process.stdout.write(`${line}\n`);
  const cores = availableWorkers();
  const plan = planBench(s);
  const { workload } = plan;
  if (s.workers.some((w) => w > cores)) {
    process.stderr.write(
      `bench: note: ${Math.max(...s.workers)} workers on ${cores} usable cores oversubscribes them; expect lower efficiency\n`,
    );
  }
  if (plan.note !== null) process.stderr.write(`bench: note: ${plan.note}\n`);
  if (!s.json) {
    out(`bench ${workload.name}: ${plan.title}`);
    out(`${s.steps} timed steps after ${s.warmupSteps} warm-up steps; Node ${process.version}, ${cores} usable cores`);
  }
  const results: ThroughputResult[] = [];
  const ticksBefore = readCpuTicks();
  for (const workers of s.workers) {
    const r = await runThroughput({
      workers,
      steps: s.steps,
      warmupSteps: s.warmupSteps,
      ...plan.run,
      batchSize: s.batchSize,
      seed: s.seed,
    });
    results.push(r);
    if (s.json) out(JSON.stringify({ event: "bench-result", ...r }));
  }
  const busy = busyMachineWarning(ticksBefore, readCpuTicks(), cores);
  if (busy !== null) process.stderr.write(`${busy}\n`);
  const base = results.find((r) => r.workers === 1);
  const largest = results[results.length - 1]!;
  const scalingEfficiency =
    base && largest.workers > 1 ? largest.samplesPerSec / (largest.workers * base.samplesPerSec) : base ? 1 : null;
  if (s.json) {
    out(
      JSON.stringify({
        event: "bench",
        workload,
        steps: s.steps,
        node: process.version,
        cores,
        results: results.map((r) => ({
          workers: r.workers,
          samplesPerSec: r.samplesPerSec,
          ...(r.tokensPerSec !== undefined ? { tokensPerSec: r.tokensPerSec } : {}),
          medianStepMs: r.medianStepMs,
          breakdown: r.breakdown,
        })),
        scalingEfficiency,
      }),
    );
    return EXIT_OK;
  }
  for (const line of table(results)) out(line);
  out("median ms per step of the slowest rank: compute = forward + backward of its shard, wait = for the other ranks,");
  out(
    "reduce = reduce-scatter and norm exchange, update = its optimizer " +
      "slice, other = the rest (dispatch, wake-ups, main thread)",
  );
  if (scalingEfficiency === null) out("scaling efficiency: needs a 1-worker run (add 1 to --workers)");
  else out(`scaling efficiency at ${largest.workers} workers: ${(100 * scalingEfficiency).toFixed(1)}%`);
  return EXIT_OK;
}
