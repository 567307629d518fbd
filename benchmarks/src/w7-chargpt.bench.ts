// W7: how many tokens per second does a small transformer's training step process? A character
// GPT on the fortunes text, against PyTorch on 1 and 2 threads (benchmarks/pytorch/peer.py builds
// the identical model). threadgrad's rows come from `threadgradW7`.
import type { Ctx } from "./measure.js";
import { pytorchRows } from "./peers/pytorch.js";
import { type Row, skipRow } from "./table.js";

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
 * N = 1, 2, from `measureSteps` (w6-cnn.bench.ts) converted with `tokensPerSec`. Until threadgrad has
 * the model, one row says so.
 */
export async function threadgradW7(_ctx: Ctx): Promise<Row[]> {
  return [skipRow({ ...W7_KEY, impl: "threadgrad", peer: false, threads: "" }, "not measured: no threadgrad W7 yet")];
}

export async function w7CharGpt(ctx: Ctx): Promise<Row[]> {
  return [...(await threadgradW7(ctx)), ...(await pytorchRows(ctx, "w7"))];
}
