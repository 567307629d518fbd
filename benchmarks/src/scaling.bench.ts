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
  {
    workload: "W1 scaling",
    model: { kind: "mlp", sizes: [...W1.sizes], activation: W1.activation },
    loss: "crossEntropy",
  },
  // The penalty needs the input gradient: the model records its input, the loss differentiates
  // to it (DataParallel's loss sees only (output, target)); see w4-model.ts.
  {
    workload: "W4 scaling",
    model: { module: w4Module, export: "createModel" },
    loss: { module: w4Module, export: "w4ShardLoss" },
  },
];

/** Eight batches, reshuffled every epoch, as `threadgrad bench` uses: no batch is replayed. */
const DATA_BATCHES = 8;

/** One epoch (DATA_BATCHES steps), as training runs them: main keeps `stepsInFlight` handed out. */
async function oneEpoch(trainer: DP, data: ReturnType<typeof randomClassification>, batchSize: number): Promise<void> {
  await trainer.fit(data, { epochs: trainer.progress.epoch + 1, batchSize });
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
    // Each worker count with the default steps in flight; W1 on 2+ workers also with one step in
    // flight (main hands out each step after the last one's results), to show what that costs.
    // W4's module model runs without a step region by default (the trainer cannot know that a
    // module keeps no tensor of the step): also with one (its module keeps none), labelled.
    const runs = ctx.workers.flatMap((workers) => [
      { workers, inFlight: undefined as number | undefined, stepRegion: undefined as boolean | undefined },
      ...(c.workload === "W1 scaling" && workers > 1 ? [{ workers, inFlight: 1, stepRegion: undefined }] : []),
      ...(c.workload === "W4 scaling" ? [{ workers, inFlight: undefined, stepRegion: true }] : []),
    ]);
    for (const { workers, inFlight, stepRegion } of runs) {
      const inFlightNote = inFlight === undefined ? "" : `, ${inFlight} step in flight`;
      const regionNote = stepRegion ? ", step region" : "";
      const config = `${workers} worker${workers > 1 ? "s" : ""}, batch ${batch}${inFlightNote}${regionNote}`;
      ctx.log(`${c.workload} ${config}`);
      const trainer = await DataParallel.create({
        model: c.model,
        loss: c.loss,
        optimizer: { name: "adam", lr: W1.lr },
        workers,
        seed: W1.seed,
        maxBatchSize: batch,
        stepsInFlight: inFlight,
        stepRegion,
      });
      try {
        await oneEpoch(trainer, data, batch); // sends the data set to the workers: not measured
        const t = await measure(
          `${c.workload} ×${workers}`,
          async () => {
            await oneEpoch(trainer, data, batch);
            // At least 30 epochs and 6 s: W1 needs ~800 steps before V8 has compiled the code that
            // runs once per step (main's and the ranks'), and background compiles steal a core.
          },
          ctx,
          { warmupIterations: 30, warmupTime: 6000 },
        );
        const over = workers > ctx.cores ? `; ${workers} workers > ${ctx.cores} cores` : "";
        const row = rowFrom(
          {
            workload: c.workload,
            config,
            impl: "threadgrad",
            peer: false,
            threads: workers,
            unit: "samples/s",
            better: "higher",
          },
          t,
          (ms) => (DATA_BATCHES * batch * 1000) / ms,
          {
            note:
              `DataParallel, ${trainer.options.stepsInFlight} in flight, kernels ${kernels}, ` +
              `timed by epochs of ${DATA_BATCHES} steps${over}`,
          },
        );
        rows.push(row);
        if (inFlight === undefined && stepRegion === undefined) perWorker.push([workers, row]);
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
