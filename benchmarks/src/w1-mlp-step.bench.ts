// W1: how many samples per second does one training step of the reference MLP process on one
// thread? (W1 itself is defined in @threadgrad/cli, shared with `threadgrad bench`.) threadgrad
// (one row per kernel backend) against tfjs (CPU, WebAssembly, and the WebAssembly form with
// transposes hoisted) and PyTorch (1 and 2 threads, on a stream of batches). One step = zero grads,
// forward, loss, backward, Adam.
import { nn } from "@threadgrad/core";
import { forEachBackend } from "./backends.js";
import { W1_SPEC as W1, mlpProblem, streamInputs } from "./inputs.js";
import { type Ctx, measure } from "./measure.js";
import { pytorchRows } from "./peers/pytorch.js";
import { type TfForm, tfSession, tfTrainStep } from "./peers/tfjs.js";
import { type Row, rowFrom, skipRow } from "./table.js";

export async function w1MlpStep(ctx: Ctx): Promise<Row[]> {
  const rows: Row[] = [];
  const key = {
    workload: "W1 mlp-step",
    config: `batch ${W1.batch}`,
    unit: "samples/s",
    better: "higher" as const,
    threads: 1,
  };
  const perSec = (ms: number) => (W1.batch * 1000) / ms;
  const base = mlpProblem(W1);
  rows.push(
    ...(await forEachBackend(async (_b, impl) => {
      ctx.log(`W1 ${impl}`);
      const { model, opt, x, y } = mlpProblem(W1);
      const step = () => {
        opt.zeroGrad();
        nn.F.crossEntropy((model.forward as (t: typeof x) => typeof x)(x), y).backward();
        opt.step();
      };
      return rowFrom({ ...key, impl, peer: false }, await measure(`${impl} W1`, step, ctx), perSec);
    })),
  );
  const forms: ["cpu" | "wasm", TfForm, string?][] = [
    ["cpu", "plain"],
    ["wasm", "plain"],
    ["wasm", "T", "transposes hoisted: custom-gradient matmul on explicit transposes"],
  ];
  for (const [backend, form, note] of forms) {
    const impl = `tfjs-${backend}${form === "plain" ? "" : `/${form}`}`;
    const session = await tfSession(backend);
    if (typeof session === "string") {
      rows.push(skipRow({ ...key, impl, peer: true }, session));
      continue;
    }
    ctx.log(`W1 ${impl}`);
    const op = tfTrainStep(session, base.arrays, form, false);
    try {
      const t = await measure(
        `${impl} W1`,
        op.run,
        ctx,
        backend === "cpu" ? { iterations: 5, warmupIterations: 1 } : {},
      );
      rows.push(rowFrom({ ...key, impl, peer: true, threads: session.threads }, t, perSec, note ? { note } : {}));
    } finally {
      op.dispose();
    }
  }
  rows.push(...(await pytorchRows(ctx, "w1", streamInputs(W1, base.arrays.weights))));
  return rows;
}
