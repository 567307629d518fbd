// Soak: does a long DataParallel run stay flat? W1 for 10,000 steps (--quick: 300) on every core:
// resident memory after warm-up and at the end, throughput, and the step breakdown from the ranks
// (forward+backward, waiting for peers, reduction, sharded update, and what is left over).
import { randomClassification } from "@threadgrad/cli";
import { DataParallel, type StepInfo } from "@threadgrad/workers";
import { W1_SPEC as W1 } from "./inputs.js";
import type { Ctx } from "./measure.js";
import type { Row } from "./table.js";

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1] ?? NaN;
const rssMiB = (): number => process.memoryUsage().rss / 2 ** 20;

export async function soak(ctx: Ctx): Promise<Row[]> {
  const steps = ctx.quick ? 300 : 10_000;
  const warmup = ctx.quick ? 30 : 200;
  const workers = ctx.cores;
  const batch = W1.batch;
  const data = randomClassification(16 * batch, W1.sizes[0]!, W1.sizes.at(-1)!, W1.seed);
  ctx.log(`soak: W1, ${workers} workers, ${steps} steps`);
  const trainer = await DataParallel.create({
    model: { kind: "mlp", sizes: [...W1.sizes], activation: W1.activation },
    optimizer: { name: "adam", lr: W1.lr },
    workers,
    seed: W1.seed,
  });
  try {
    const stepsPerEpoch = data.length / batch;
    await trainer.fit(data, { epochs: Math.ceil(warmup / stepsPerEpoch), batchSize: batch });
    global.gc?.();
    const rssStart = rssMiB();
    const timings: StepInfo["timings"][] = [];
    const t0 = performance.now();
    await trainer.fit(data, {
      epochs: trainer.progress.epoch + Math.ceil(steps / stepsPerEpoch),
      batchSize: batch,
      onStep: (s) => void timings.push(s.timings),
    });
    const seconds = (performance.now() - t0) / 1000;
    global.gc?.();
    const rssEnd = rssMiB();
    const sps = (timings.length * batch) / seconds;
    const b = {
      computeMs: median(timings.map((t) => t.computeMs)),
      waitMs: median(timings.map((t) => t.waitMs)),
      reduceMs: median(timings.map((t) => t.reduceMs)),
      updateMs: median(timings.map((t) => t.updateMs)),
    };
    // Main hands out 8 steps at once and sees their results together, so single steps have no wall
    // time of their own: the mean step is the run's time over its steps, and what the ranks' timed
    // phases (slowest rank's) leave of it is "other" (gathering rows, zeroing, main's hand-out).
    const mean = (xs: number[]): number => xs.reduce((a, v) => a + v, 0) / Math.max(xs.length, 1);
    const stepMs = (seconds * 1000) / timings.length;
    // The critical path: the slowest rank's forward+backward, then the reduction and update. The
    // faster ranks' wait for it lies inside the first, so it is reported, not added.
    const phases = timings.map((t) => t.computeMs + t.reduceMs + t.updateMs);
    const other = stepMs - mean(phases);
    const pct = (ms: number) => `${((100 * ms) / stepMs).toFixed(1)}%`;
    const m = {
      compute: mean(timings.map((t) => t.computeMs)),
      wait: mean(timings.map((t) => t.waitMs)),
      reduce: mean(timings.map((t) => t.reduceMs)),
      update: mean(timings.map((t) => t.updateMs)),
    };
    const key = { workload: "Soak W1", impl: "threadgrad", peer: false, threads: workers, better: "higher" as const };
    return [
      {
        ...key,
        config: `${timings.length} steps, ${workers} workers, batch ${batch}`,
        unit: "samples/s",
        median: sps,
        min: null,
        max: null,
        samples: timings.length,
        note:
          `RSS ${rssStart.toFixed(0)} MiB after warm-up, ${rssEnd.toFixed(0)} MiB at the end ` +
          `(${rssEnd - rssStart >= 0 ? "+" : ""}${(rssEnd - rssStart).toFixed(1)})`,
        extra: { rssStartMiB: rssStart, rssEndMiB: rssEnd },
      },
      {
        ...key,
        better: "lower",
        config: "step breakdown",
        unit: "ms/step",
        median: stepMs,
        min: null,
        max: null,
        samples: timings.length,
        note:
          `mean step; of it the slowest rank's forward+backward ${pct(m.compute)}, reduce ${pct(m.reduce)}, ` +
          `update ${pct(m.update)}, other ${pct(other)} ` +
          `(gathering rows, zeroing, main's hand-out); the faster rank waits ${pct(m.wait)}; ` +
          `medians forward+backward ${b.computeMs.toFixed(2)}, ` +
          `wait ${b.waitMs.toFixed(2)}, reduce ${b.reduceMs.toFixed(3)}, update ${b.updateMs.toFixed(3)} ms`,
        extra: {
          ...b,
          otherMs: other,
          meanComputeMs: m.compute,
          meanWaitMs: m.wait,
          meanReduceMs: m.reduce,
          meanUpdateMs: m.update,
        },
      },
    ];
  } finally {
    await trainer.close();
  }
}
