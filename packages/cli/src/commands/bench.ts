// `threadgrad bench`: gradient throughput of training steps for each worker count (an MLP on random
// data, W6: the cnn preset on Fashion-MNIST, or W7: the chargpt preset on the fortunes text), and
// the scaling efficiency throughput(N) / (N · throughput(1)) of the largest count. With
// --distributed mpi, across the processes of an MPI job (bench-mpi.ts).
import { cpus } from "node:os";
import { describeMatmul } from "@threadgrad/core";
import { availableWorkers, finalizeMpi, resolveWorkers } from "@threadgrad/workers";
import { EXIT_OK, UsageError } from "../errors.js";
import { type CpuTicks, busyMachineWarning, readCpuTicks } from "../machine-load.js";
import { formatRate } from "../progress.js";
import {
  type AllReduceRow,
  type MpiJob,
  type SingleProcessRows,
  allReduceTable,
  jobCpuTicks,
  joinMpiJob,
  parameterCount,
  parseDistributed,
  singleProcessRows,
  timeAllReduces,
} from "./bench-mpi.js";
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

/** `--workers`: a list of counts; `auto` is this process's share of the host's cores. */
function parseWorkerList(v: unknown, processesOnHost: number): number[] {
  const items = typeof v === "string" ? v.split(",") : [];
  const list = items.map((item) => {
    const t = item.trim();
    if (t === "auto") return resolveWorkers("auto", processesOnHost);
    return parseNumber(t, { min: 1, max: 256, isInteger: true });
  });
  if (list.length === 0) throw new ValueError("is empty");
  return [...new Set(list)].sort((a, b) => a - b);
}

function readBenchSettings(cli: Record<string, unknown>, processesOnHost = 1): BenchSettings {
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
    workers: get("--workers", cli.workers, [...new Set([1, resolveWorkers("auto", processesOnHost)])], (v) =>
      parseWorkerList(v, processesOnHost),
    ),
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

/** A row's rate and step-time columns. */
function rowTail(r: ThroughputResult): string {
  const b = r.breakdown;
  return (
    `${ms(r.p10StepMs, 12)} ${ms(r.medianStepMs)} ${ms(r.p90StepMs)} | ` +
    `${ms(b.computeMs)} ${ms(b.waitMs)} ${ms(b.reduceMs)} ${ms(b.updateMs)} ${ms(b.otherMs)}`
  );
}

const TABLE_TAIL = "step ms: p10  median     p90 | compute    wait  reduce  update   other";
const rateOf = (r: ThroughputResult) => formatRate(r.tokensPerSec ?? r.samplesPerSec).padStart(9);

/** The results as a table; a token model's rate column is tokens/s. */
function table(results: ThroughputResult[]): string[] {
  const base = results.find((r) => r.workers === 1);
  const isTokens = results.some((r) => r.tokensPerSec !== undefined);
  const lines = [`workers  ${isTokens ? " tokens/s" : "samples/s"}  speed-up  efficiency   ${TABLE_TAIL}`];
  for (const r of results) {
    const speedup = base ? r.samplesPerSec / base.samplesPerSec : NaN;
    const su = Number.isFinite(speedup) ? `${speedup.toFixed(2)}x` : "-";
    const eff = Number.isFinite(speedup) ? `${((100 * speedup) / r.workers).toFixed(0)}%` : "-";
    lines.push(
      `${String(r.workers).padStart(7)}  ${rateOf(r)}  ${su.padStart(8)}  ${eff.padStart(10)}   ${rowTail(r)}`,
    );
  }
  return lines;
}

/**
 * The rows of an MPI job (P processes × N workers, global rates), each followed by its one-process
 * equivalent (1 × P·N) when there is one, and the ratio of the two.
 */
function mpiTable(job: MpiJob, results: ThroughputResult[], single: ThroughputResult[] | null): string[] {
  const isTokens = results.some((r) => r.tokensPerSec !== undefined);
  const lines = [`processes  workers  ${isTokens ? " tokens/s" : "samples/s"}  vs 1 process   ${TABLE_TAIL}`];
  results.forEach((r, i) => {
    const one = single?.[i];
    const ratio = one ? `${(r.samplesPerSec / one.samplesPerSec).toFixed(2)}x` : "-";
    lines.push(
      `${String(job.size).padStart(9)}  ${String(r.workers).padStart(7)}  ${rateOf(r)}  ${ratio.padStart(12)}   ${rowTail(r)}`,
    );
    if (one)
      lines.push(
        `${"1".padStart(9)}  ${String(one.workers).padStart(7)}  ${rateOf(one)}  ${"".padStart(12)}   ${rowTail(one)}`,
      );
  });
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

/** The built-in model a plan trains, as a spec: what its gradient all-reduce sends. */
function modelOf(plan: BenchPlan): Parameters<typeof parameterCount>[0] {
  const { model, sizes, activation } = plan.run;
  return model ?? { kind: "mlp", sizes: [...(sizes ?? W1.sizes)], activation };
}

/** A result as the final JSON line lists it. */
function resultJson(r: ThroughputResult, processes: number | null, vsSingleProcess?: number) {
  return {
    workers: r.workers,
    ...(processes !== null ? { processes } : {}),
    samplesPerSec: r.samplesPerSec,
    ...(r.tokensPerSec !== undefined ? { tokensPerSec: r.tokensPerSec } : {}),
    medianStepMs: r.medianStepMs,
    breakdown: r.breakdown,
    ...(vsSingleProcess !== undefined ? { vsSingleProcess } : {}),
  };
}

/** Runs `threadgrad bench` with commander's option values; returns the exit status. */
export async function runBench(cli: Record<string, unknown>): Promise<number> {
  const distributed = parseDistributed(cli.distributed);
  // Flags are checked before MPI starts, so every process of a job refuses them alike.
  let s = readBenchSettings(cli);
  const job = distributed ? joinMpiJob() : null;
  if (job) s = readBenchSettings(cli, job.localSize);
  // Process 0 speaks for an MPI job; the others train and time along in silence.
  const isFirst = (job?.rank ?? 0) === 0;
  const out = (line: string) => {
    if (isFirst) process.stdout.write(`${line}\n`);
  };
  const note = (line: string) => {
    if (isFirst) process.stderr.write(`${line}\n`);
  };
  const cores = availableWorkers();
  const plan = planBench(s);
  const { workload } = plan;
  // W8 is W1 across the processes of an MPI job.
  if (job && workload.name === "W1") workload.name = "W8";
  // The job's processes on this host share its cores, unless mpirun bound each to cores of its own
  // (then this process may use fewer than the host has).
  const processesOnHost = job && cores >= cpus().length ? job.localSize : 1;
  if (s.workers.some((w) => w * processesOnHost > cores)) {
    const most = Math.max(...s.workers);
    const who = job ? `${most} workers in each of ${processesOnHost} processes` : `${most} workers`;
    note(`bench: note: ${who} on ${cores} usable cores oversubscribes them; expect lower efficiency`);
  }
  if (plan.note !== null) note(`bench: note: ${plan.note}`);
  if (!s.json) {
    const across = job ? `, across ${job.size} MPI processes` : "";
    out(`bench ${workload.name}: ${plan.title}${across}`);
    const where = job ? `; ${job.size} processes (${job.localSize} on this host), ${job.library}` : "";
    const usable = `${cores} usable cores${job ? " per process" : ""}`;
    out(`${s.steps} timed steps after ${s.warmupSteps} warm-up steps; Node ${process.version}, ${usable}${where}`);
    out(`matmul: ${describeMatmul()}`);
  }
  const measure = (workers: number, over?: "mpi") =>
    runThroughput({
      workers,
      steps: s.steps,
      warmupSteps: s.warmupSteps,
      ...plan.run,
      batchSize: s.batchSize,
      seed: s.seed,
      ...(over ? { distributed: over } : {}),
    });
  const results: ThroughputResult[] = [];
  const ticksBefore = job ? await jobCpuTicks() : readCpuTicks();
  for (const workers of s.workers) {
    const r = await measure(workers, distributed);
    results.push(r);
    if (s.json) out(JSON.stringify({ event: "bench-result", ...(job ? { processes: job.size } : {}), ...r }));
  }
  let single: SingleProcessRows | null = null;
  let allReduce: AllReduceRow[] = [];
  let ticksAfter: CpuTicks | null = null;
  if (job) {
    single = await singleProcessRows(job, s.workers, cores, (workers) => measure(workers));
    if (s.json && "rows" in single)
      for (const r of single.rows) out(JSON.stringify({ event: "bench-result", processes: 1, ...r }));
    allReduce = timeAllReduces(String(workload.name), parameterCount(modelOf(plan)));
    ticksAfter = await jobCpuTicks();
    finalizeMpi();
  } else ticksAfter = readCpuTicks();
  const singleRows = single && "rows" in single ? single.rows : null;
  const busy = busyMachineWarning(ticksBefore, ticksAfter, cores);
  if (busy !== null) note(busy);
  const base = results.find((r) => r.workers === 1);
  const largest = results[results.length - 1]!;
  const scalingEfficiency =
    base && largest.workers > 1 ? largest.samplesPerSec / (largest.workers * base.samplesPerSec) : base ? 1 : null;
  const ratioOf = (i: number) => {
    const one = singleRows?.[i];
    return one ? results[i]!.samplesPerSec / one.samplesPerSec : undefined;
  };
  if (s.json) {
    out(
      JSON.stringify({
        event: "bench",
        workload,
        ...(job ? { processes: job.size, processesOnHost: job.localSize, mpi: job.library } : {}),
        steps: s.steps,
        node: process.version,
        cores,
        matmul: describeMatmul(),
        results: results.map((r, i) => resultJson(r, job?.size ?? null, ratioOf(i))),
        ...(job ? { singleProcess: singleRows?.map((r) => resultJson(r, 1)) ?? null } : {}),
        ...(single && "skipped" in single ? { singleProcessSkipped: single.skipped } : {}),
        ...(job ? { allReduce } : {}),
        scalingEfficiency,
      }),
    );
    return EXIT_OK;
  }
  for (const line of job ? mpiTable(job, results, singleRows) : table(results)) out(line);
  out("median ms per step of the slowest rank: compute = forward + backward of its shard, wait = for the other ranks,");
  out(
    "reduce = reduce-scatter and norm exchange, update = its optimizer " +
      "slice, other = the rest (dispatch, wake-ups, main thread)",
  );
  if (job) {
    out("across processes: wait includes an MPI barrier, reduce the MPI all-reduce of the rank's gradient segment");
    if (single && "skipped" in single) out(`no 1-process rows: ${single.skipped}`);
    else
      out(
        `vs 1 process = samples/s of ${job.size} processes x N workers / samples/s of 1 process x ${job.size}N workers`,
      );
  }
  if (scalingEfficiency === null) out("scaling efficiency: needs a 1-worker run (add 1 to --workers)");
  else if (!job || largest.workers > 1)
    out(`scaling efficiency at ${largest.workers} workers: ${(100 * scalingEfficiency).toFixed(1)}%`);
  if (job) for (const line of allReduceTable(job, allReduce)) out(line);
  return EXIT_OK;
}
