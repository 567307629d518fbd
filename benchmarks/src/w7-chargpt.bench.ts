// W7: how many tokens per second does a small transformer's training step process? A character
// GPT on the fortunes text (the built-in `chargpt`, W7 as @threadgrad/cli defines it for `threadgrad
// bench --model chargpt`), data-parallel on 1 and 2 workers, against PyTorch on 1 and 2 threads
// (benchmarks/pytorch/peer.py builds the identical model).
import { W7 as CLI_W7, w7Data } from "@threadgrad/cli";
import { DataParallel } from "@threadgrad/workers";
import { kernelBackends } from "./backends.js";
import type { Ctx } from "./measure.js";
import { pytorchRows } from "./peers/pytorch.js";
import { type Row, rowFrom } from "./table.js";
import { measureSteps } from "./w6-cnn.bench.js";

/** Worker counts W7 is reported on. */
export const W7_WORKERS = [1, 2] as const;

/** W7 as benchmarks/README.md defines it. */
export const W7 = {
  vocab: 256,
  context: 64,
  dim: 128,
  heads: 4,
  layers: 2,
  mlp: 512,
  /** windows of `context` tokens per step: 2,048 tokens */
  batch: 32,
  lr: 1e-3,
  parameters: 470_784,
  corpus: "/usr/share/games/fortunes",
} as const;

/** The key every W7 row shares, threadgrad's and the peers', so the table sets them side by side. */
export const W7_KEY = {
  workload: "W7 chargpt",
  config: `batch ${W7.batch} × ${W7.context} tokens`,
  unit: "tokens/s",
  better: "higher",
} as const;

/** Converts ms per step into W7's unit. */
export const tokensPerSec = (ms: number): number => (W7.batch * W7.context * 1000) / ms;

/**
 * threadgrad's W7 rows: `{ ...W7_KEY, impl: "threadgrad, N workers", peer: false, threads: N }` for
 * N = 1, 2: whole DataParallel steps (forward, backward, reduction, Adam) from `measureSteps`
 * (w6-cnn.bench.ts) converted with `tokensPerSec`. The windows are fresh every step: `w7Data`'s pool
 * of windows is redrawn at the end of each epoch over it.
 */
export async function threadgradW7(ctx: Ctx): Promise<Row[]> {
  const model = CLI_W7.model;
  const sizes = ["vocab", "context", "dim", "heads", "layers"] as const;
  if (sizes.some((k) => model[k] !== W7[k]) || CLI_W7.batchSize !== W7.batch || CLI_W7.optimizer.lr !== W7.lr)
    throw new Error("W7: the cli's chargpt workload differs from the one this suite defines");
  const { data, redraw, source, real } = w7Data(0);
  if (!real) console.log(`W7: fortunes text absent, threadgrad trains on ${source}`);
  const kb = await kernelBackends();
  const kernels = kb === null ? "js" : kb.current();
  const rows: Row[] = [];
  for (const workers of W7_WORKERS) {
    const label = `${workers} worker${workers > 1 ? "s" : ""}`;
    ctx.log(`W7 threadgrad, ${label}`);
    const trainer = await DataParallel.create({
      model,
      loss: CLI_W7.loss,
      optimizer: { ...CLI_W7.optimizer },
      workers,
      seed: 0,
      maxBatchSize: W7.batch,
    });
    try {
      const t = await measureSteps(ctx, trainer, data, W7.batch, undefined, (log) => redraw(log.epoch));
      const over = workers > ctx.cores ? `; ${workers} workers > ${ctx.cores} cores` : "";
      rows.push(
        rowFrom({ ...W7_KEY, impl: `threadgrad, ${label}`, peer: false, threads: workers }, t, tokensPerSec, {
          note: `DataParallel, kernels ${kernels}, fresh random windows each step of ${source}${over}`,
          extra: { workers, realData: real, parameters: W7.parameters },
        }),
      );
    } finally {
      await trainer.close();
    }
  }
  return rows;
}

export async function w7CharGpt(ctx: Ctx): Promise<Row[]> {
  return [...(await threadgradW7(ctx)), ...(await pytorchRows(ctx, "w7"))];
}
