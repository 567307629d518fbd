// `threadgrad bench`: gradient throughput of training steps for each worker count (an MLP on random
// data, or W6: the cnn preset on Fashion-MNIST), and the scaling efficiency
// throughput(N) / (N · throughput(1)) of the largest count.
import { availableWorkers, resolveWorkers } from "@threadgrad/workers";
import { EXIT_OK, UsageError } from "../errors.js";
import { busyMachineWarning, readCpuTicks } from "../machine-load.js";
import { formatRate } from "../progress.js";
import { parserOf } from "../settings.js";
import { ValueError, parseMlpSizes, parseNumber } from "../values.js";
import { type ThroughputResult, W1, W6, runThroughput, w6Data } from "../workloads.js";

interface BenchSettings {
  workers: number[];
  /** an MLP's widths, or "cnn": W6's network on Fashion-MNIST */
  sizes: number[] | "cnn";
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
  const isCnn = typeof cli.model === "string" && cli.model.trim() === "cnn";
  const s: BenchSettings = {
    workers: get("--workers", cli.workers, [...new Set([1, availableWorkers()])], parseWorkerList),
    sizes: get("--model", cli.model, [...W1.sizes], parseBenchModel),
    activation: get("--activation", cli.activation, W1.activation, parserOf("activation")),
    batchSize: get("--batch-size", cli.batchSize, isCnn ? W6.batchSize : W1.batchSize, parserOf("batchSize")),
    // A cnn step is about ten times a W1 step's arithmetic, nearly all in kernels: fewer steps do.
    steps: get("--steps", cli.steps, isCnn ? 50 : 200, positive),
    warmupSteps: get("--warmup-steps", cli.warmupSteps, isCnn ? 20 : 600, (v) =>
      parseNumber(v, { min: 0, isInteger: true }),
    ),
    seed: get("--seed", cli.seed, 0, parserOf("seed")),
    json: cli.json === true,
  };
  if (s.sizes === "cnn" && cli.activation !== undefined)
    errors.push("--activation applies to mlp models only; the cnn preset uses ReLU");
  if (errors.length > 0) throw new UsageError(errors);
  return s;
}

/** `--model`: mlp:SIZES, or cnn (W6's network). */
function parseBenchModel(v: unknown): number[] | "cnn" {
  if (typeof v === "string" && v.trim() === "cnn") return "cnn";
  try {
    return parseMlpSizes(v);
  } catch (err) {
    if (err instanceof ValueError)
      throw new ValueError(err.message.replace("(the only built-in model is mlp)", "or cnn"));
    throw err;
  }
}

const ms = (v: number, width = 7) => v.toFixed(2).padStart(width);

function table(results: ThroughputResult[]): string[] {
  const base = results.find((r) => r.workers === 1);
  const lines = [
    "workers  samples/s  speed-up  efficiency   step ms: p10  median     p90 | compute    wait  reduce  update   other",
  ];
  for (const r of results) {
    const speedup = base ? r.samplesPerSec / base.samplesPerSec : NaN;
    const b = r.breakdown;
    const su = Number.isFinite(speedup) ? `${speedup.toFixed(2)}x` : "-";
    const eff = Number.isFinite(speedup) ? `${((100 * speedup) / r.workers).toFixed(0)}%` : "-";
    lines.push(
      `${String(r.workers).padStart(7)}  ${formatRate(r.samplesPerSec).padStart(9)}  ${su.padStart(8)}  ${eff.padStart(10)}   ` +
        `${ms(r.p10StepMs, 12)} ${ms(r.medianStepMs)} ${ms(r.p90StepMs)} | ` +
        `${ms(b.computeMs)} ${ms(b.waitMs)} ${ms(b.reduceMs)} ${ms(b.updateMs)} ${ms(b.otherMs)}`,
    );
  }
  return lines;
}

/** Runs `threadgrad bench` with commander's option values; returns the exit status. */
export async function runBench(cli: Record<string, unknown>): Promise<number> {
  const s = readBenchSettings(cli);
  const out = (line: string) => process.stdout.write(`${line}\n`);
  const cores = availableWorkers();
  const cnn = s.sizes === "cnn";
  const sizes = cnn ? [] : (s.sizes as number[]);
  const isW1 =
    !cnn && sizes.join() === W1.sizes.join() && s.activation === W1.activation && s.batchSize === W1.batchSize;
  // W6 trains on Fashion-MNIST: a stream of its real batches (a seeded shuffle), or random data of
  // its shape when it is not installed, and the output says which.
  const cnnData = cnn ? w6Data(s.seed) : null;
  const workload = cnn
    ? {
        name: s.batchSize === W6.batchSize ? "W6" : "custom",
        model: "cnn",
        sampleShape: [1, 28, 28],
        batchSize: s.batchSize,
        loss: "crossEntropy",
        optimizer: W6.optimizer,
        data: cnnData!.source,
        realData: cnnData!.real,
      }
    : {
        name: isW1 ? "W1" : "custom",
        sizes,
        activation: s.activation,
        batchSize: s.batchSize,
        loss: "crossEntropy",
        optimizer: W1.optimizer,
      };
  if (s.workers.some((w) => w > cores)) {
    process.stderr.write(
      `bench: note: ${Math.max(...s.workers)} workers on ${cores} usable cores oversubscribes them; expect lower efficiency\n`,
    );
  }
  if (cnnData !== null && !cnnData.real) process.stderr.write(`bench: note: Fashion-MNIST absent: ${cnnData.source}\n`);
  if (!s.json) {
    out(
      cnnData !== null
        ? `bench ${workload.name}: cnn (conv 32, conv 64, linear 128, 10) on [${s.batchSize}, 1, 28, 28], ` +
            `batch ${s.batchSize}, cross-entropy, adam lr 1e-3, ${cnnData.source}, shuffled with seed ${s.seed}`
        : `bench ${workload.name}: mlp:${sizes.join(",")} ${s.activation}, batch ${s.batchSize}, cross-entropy, ` +
            `adam lr 1e-3, random N(0,1) data (seed ${s.seed})`,
    );
    out(`${s.steps} timed steps after ${s.warmupSteps} warm-up steps; Node ${process.version}, ${cores} usable cores`);
  }
  const results: ThroughputResult[] = [];
  const ticksBefore = readCpuTicks();
  for (const workers of s.workers) {
    const r = await runThroughput({
      workers,
      steps: s.steps,
      warmupSteps: s.warmupSteps,
      ...(cnnData !== null ? { model: W6.model, data: cnnData.data } : { sizes, activation: s.activation }),
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
