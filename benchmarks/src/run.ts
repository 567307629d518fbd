#!/usr/bin/env node
// `pnpm bench`: runs the suites, prints one table, optionally writes JSON.
//   node dist/run.js [--quick] [--json FILE] [--only w1,profile,w2,w3,w4,w5,w6,w6train,w7,scaling,soak] [--workers 1,2]
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { formatMachine, machineInfo } from "./machine.js";
import { peerEnv } from "./peers/pytorch.js";
import { type Ctx, since } from "./measure.js";
import { type Row, formatTable, skipRow } from "./table.js";
import { w1MlpStep } from "./w1-mlp-step.bench.js";
import { w2FashionMnist } from "./w2-fashion-mnist.bench.js";
import { w3Sgemm } from "./w3-sgemm.bench.js";
import { w4DoubleBackward } from "./w4-double-backward.bench.js";
import { w5AllReduce } from "./w5-all-reduce.bench.js";
import { w6Cnn, w6Training } from "./w6-cnn.bench.js";
import { w7CharGpt } from "./w7-chargpt.bench.js";
import { scaling } from "./scaling.bench.js";
import { soak } from "./soak.bench.js";
import { w1Profile } from "./w1-profile.bench.js";

const SUITES: Record<string, [string, (ctx: Ctx) => Promise<Row[]>]> = {
  w1: ["W1 mlp-step", w1MlpStep],
  profile: ["W1 profile", w1Profile],
  w2: ["W2 fashion-mnist", w2FashionMnist],
  w3: ["W3 sgemm", w3Sgemm],
  w4: ["W4 double-backward", w4DoubleBackward],
  w5: ["W5 all-reduce", w5AllReduce],
  w6: ["W6 cnn", w6Cnn],
  w6train: ["W6 training", w6Training],
  w7: ["W7 chargpt", w7CharGpt],
  scaling: ["Scaling", scaling],
  soak: ["Soak", soak],
};

const USAGE = `usage: node dist/run.js [options]
  --quick           a smoke test in under a minute: few iterations, small W2 (never to judge speed)
  --json FILE       also write the machine, options and every row as JSON
  --only LIST       suites to run, comma-separated: ${Object.keys(SUITES).join(",")} (default all)
  --workers LIST    worker counts for W5 and scaling, e.g. 1,2,4 (default 1..available cores)
  -h, --help        this text`;

function parseList(s: string, what: string): number[] {
  const out = s.split(",").map((v) => Number(v.trim()));
  if (out.some((n) => !Number.isInteger(n) || n < 1 || n > 256))
    throw new Error(`--${what}: expected integers from 1 to 256, got '${s}'`);
  return [...new Set(out)].sort((a, b) => a - b);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      json: { type: "string" },
      only: { type: "string" },
      workers: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const only = values.only ? values.only.split(",").map((s) => s.trim().toLowerCase()) : Object.keys(SUITES);
  const unknown = only.filter((s) => !(s in SUITES));
  if (unknown.length > 0)
    throw new Error(`--only: unknown suite ${unknown.join(", ")}; choose from ${Object.keys(SUITES).join(", ")}`);
  // threadgrad's native matmul opens the same OpenBLAS as the PyTorch peer: give it the same
  // kernels (set before the library is first opened, which machineInfo does).
  const coretype = peerEnv().OPENBLAS_CORETYPE;
  if (coretype !== undefined) process.env.OPENBLAS_CORETYPE = coretype;
  const machine = await machineInfo();
  const cores = machine.availableCores;
  const workers = values.workers
    ? parseList(values.workers, "workers")
    : Array.from({ length: cores }, (_, i) => i + 1);
  const t0 = performance.now();
  const ctx: Ctx = { quick: values.quick, workers, cores, log: (msg) => console.error(`[${since(t0)}] ${msg}`) };
  console.log(formatMachine(machine));
  if (ctx.quick) console.log("mode     --quick: a smoke test; these numbers are not results");
  console.log("");
  const rows: Row[] = [];
  let failed = 0;
  for (const name of only) {
    const [title, suite] = SUITES[name]!;
    try {
      rows.push(...(await suite(ctx)));
    } catch (err) {
      failed++;
      console.error(`${title} failed:`, err);
      rows.push(
        skipRow(
          { workload: title, config: "", impl: "threadgrad", peer: false, threads: "", unit: "" },
          `FAILED: ${(err as Error).message.split("\n")[0]}`,
        ),
      );
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  console.log(formatTable(rows));
  console.log(
    `\n${rows.length} rows in ${seconds.toFixed(1)} s${ctx.quick ? " (--quick)" : ""}; ` +
      "medians of repeated runs, min–max beside them.",
  );
  if (values.json) {
    // Through `pnpm bench` this runs in benchmarks/; a relative path means the caller's folder.
    const file = resolve(process.env.INIT_CWD ?? process.cwd(), values.json);
    const report = { machine, options: { quick: ctx.quick, only, workers }, seconds, rows };
    writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`wrote ${file}`);
  }
  return failed > 0 ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 2;
  },
);
