// Scaling: how does DataParallel's throughput grow with workers? W1 and W4 at each worker count
// (default 1..available cores): steady-state samples/s of one step (warm-up skipped) and the
// scaling efficiency throughput(N) / (N × throughput(1)).
import { randomClassification } from "@threadgrad/cli";
import { type DataParallel as DP, DataParallel, type LossSpec, type ModelSpec } from "@threadgrad/workers";
import { kernelBackends } from "./backends.js";
import { W1_SPEC as W1 } from "./inputs.js";
import { type Ctx, measure } from "./measure.js";
import { type Row, rowFrom } from "./table.js";
import { W4 } from "./w4-model.js";

interface Case {
  workload: string;
  model: ModelSpec;
  loss: LossSpec;
}

const w4Module = new URL("./w4-model.js", import.meta.url).href;

const CASES: Case[] = [
  { workload: "W1 scaling", model: { kind: "mlp", sizes: [...W1.sizes], activation: W1.activation }, loss: "crossEntropy" },
  // The penalty needs the input gradient: the model records its input, the loss differentiates
  // to it (DataParallel's loss sees only (output, target)); see w4-model.ts.
  { workload: "W4 scaling", model: { module: w4Module, export: "createModel" }, loss: { module: w4Module, export: "w4ShardLoss" } },
];

/** Eight batches, reshuffled every epoch, as `threadgrad bench` uses: no batch is replayed. */
const DATA_BATCHES = 8;

/**
 * Exactly one training step: fit stops when its signal is aborted (checked before each step) and
 * the next call resumes from the trainer's progress, mid-epoch.
 */
async function oneStep(trainer: DP, data: ReturnType<typeof randomClassification>, batchSize: number): Promise<void> {
  const stop = new AbortController();
  await trainer.fit(data, { epochs: Number.MAX_SAFE_INTEGER, batchSize, signal: stop.signal, onStep: () => stop.abort() });
}

export async function scaling(ctx: Ctx): Promise<Row[]> {
  const rows: Row[] = [];
  const kb = await kernelBackends();
  const kernels = kb === null ? "js" : kb.current();
  const batch = W1.batch;
  if (W4.batch !== batch) throw new Error(`scaling: W4's batch (${W4.batch}) must equal W1's (${batch})`);
  const data = randomClassification(DATA_BATCHES * batch, W1.sizes[0]!, W1.sizes.at(-1)!, W1.seed);
  for (const c of CASES) {
    const perWorker: [number, Row][] = [];
    for (const workers of ctx.workers) {
      const config = `${workers} worker${workers > 1 ? "s" : ""}, batch ${batch}`;
      ctx.log(`${c.workload} ${config}`);
      const trainer = await DataParallel.create({
        model: c.model, loss: c.loss, optimizer: { name: "adam", lr: W1.lr }, workers, seed: W1.seed, maxBatchSize: batch,
      });
      try {
        await oneStep(trainer, data, batch); // sends the data set to the workers: not measured
        const t = await measure(`${c.workload} ×${workers}`, async () => {
          await oneStep(trainer, data, batch);
        }, ctx, { warmupIterations: 3 });
        const over = workers > ctx.cores ? `; ${workers} workers > ${ctx.cores} cores` : "";
        const row = rowFrom(
          { workload: c.workload, config, impl: "threadgrad", peer: false, threads: workers, unit: "samples/s", better: "higher" },
          t, (ms) => (batch * 1000) / ms, { note: `DataParallel, kernels ${kernels}${over}` },
        );
        rows.push(row);
        perWorker.push([workers, row]);
      } finally {
        await trainer.close();
      }
    }
    const one = perWorker.find(([n]) => n === 1)?.[1].median ?? undefined;
    for (const [n, row] of perWorker) {
      const eff = one === undefined || row.median === null ? null : row.median / (n * one);
      row.extra = { ...row.extra, efficiency: eff };
      row.note = `efficiency ${eff === null ? "n/a (no 1-worker run)" : `${(eff * 100).toFixed(0)}%`}; ${row.note}`;
    }
  }
  return rows;
}
