// W4: how fast is a training step whose loss holds a gradient (a double backward), and does each
// implementation get its gradients right? samples/s, plus a finite-difference check of the
// gradient of the penalty term (the part that needs second-order gradients).
import { tensor } from "@threadgrad/core";
import { buildMlp } from "@threadgrad/workers";
import { forEachBackend } from "./backends.js";
import { type FdResult, type GradProblem, fdCheck } from "./fd-check.js";
import { W1_SPEC, firstRows, mlpProblem, setWeights, streamInputs } from "./inputs.js";
import { type Ctx, measure } from "./measure.js";
import { pytorchRows } from "./peers/pytorch.js";
import { type MlpInputs, type TfForm, tfSession, tfTrainStep, tfW4Problem } from "./peers/tfjs.js";
import { type Row, rowFrom, skipRow } from "./table.js";
import { W4, w4Loss } from "./w4-model.js";

/** Samples of the batch the gradient check uses (the full batch would only make it slower). */
export const CHECK_ROWS = 32;

const spec = { ...W4, sizes: [...W4.sizes], activation: "tanh" as const };

/** threadgrad's W4 penalty term as a function of the weights, and its gradient. */
function threadgradProblem(inp: MlpInputs): GradProblem {
  const model = buildMlp(inp.sizes, "tanh");
  const x = tensor(inp.x, { shape: [inp.batch, inp.sizes[0]!] });
  const y = tensor(inp.y, { shape: [inp.batch] });
  return {
    value(weights) {
      setWeights(model, weights);
      return w4Loss(model, x, y, 0).item();
    },
    grad(weights) {
      setWeights(model, weights);
      model.zeroGrad();
      w4Loss(model, x, y, 0).backward();
      const p = model.parameters();
      return weights.map((_, l) => ({
        w: Float32Array.from(p[2 * l]!.grad!.data as Float32Array),
        b: Float32Array.from(p[2 * l + 1]!.grad!.data as Float32Array),
      }));
    },
  };
}

export const describeCheck = (r: FdResult) =>
  `${r.ok ? "grads OK" : "grads WRONG"} (FD rel err ${r.relErr.toExponential(1)})`;

export async function w4DoubleBackward(ctx: Ctx): Promise<Row[]> {
  const rows: Row[] = [];
  const config = `batch ${W4.batch}`;
  const key = { workload: "W4 double-backward", config, unit: "samples/s", better: "higher" as const, threads: 1 };
  const perSec = (ms: number) => (W4.batch * 1000) / ms;
  if (spec.sizes.join() !== W1_SPEC.sizes.join() || spec.batch !== W1_SPEC.batch)
    throw new Error("W4: must use W1's MLP sizes and batch");
  const base = mlpProblem(spec);
  const check = firstRows(base.arrays, CHECK_ROWS);
  rows.push(
    ...(await forEachBackend(async (_b, impl) => {
      ctx.log(`W4 ${impl}`);
      const fd = fdCheck(threadgradProblem(check), check.weights);
      const { model, opt, x, y } = mlpProblem(spec);
      const step = () => {
        opt.zeroGrad();
        w4Loss(model, x, y).backward();
        opt.step();
      };
      const t = await measure(`${impl} W4`, step, ctx);
      return rowFrom({ ...key, impl, peer: false }, t, perSec, {
        note: describeCheck(fd),
        extra: { gradsOk: fd.ok, fdRelErr: fd.relErr },
      });
    })),
  );
  const forms: ["cpu" | "wasm", TfForm, string][] = [
    ["cpu", "plain", "as written: tf.grad inside optimizer.minimize"],
    ["cpu", "dx", "dCE/dx written out (softmax − onehot, back through the layers)"],
    ["wasm", "plain", "as written: tf.grad inside optimizer.minimize"],
    ["wasm", "dx+T", "dCE/dx written out, transposes hoisted"],
  ];
  for (const [backend, form, what] of forms) {
    const impl = `tfjs-${backend}${form === "plain" ? "" : `/${form}`}`;
    const session = await tfSession(backend);
    if (typeof session === "string") {
      rows.push(skipRow({ ...key, impl, peer: true }, session));
      continue;
    }
    ctx.log(`W4 ${impl}`);
    const fd = fdCheck(tfW4Problem(session, check, form, "penalty"), check.weights);
    const op = tfTrainStep(session, base.arrays, form, true);
    try {
      const t = await measure(
        `${impl} W4`,
        op.run,
        ctx,
        backend === "cpu" ? { iterations: 5, warmupIterations: 1 } : {},
      );
      rows.push(
        rowFrom({ ...key, impl, peer: true, threads: session.threads }, t, perSec, {
          note: `${describeCheck(fd)}; ${what}`,
          extra: { gradsOk: fd.ok, fdRelErr: fd.relErr },
        }),
      );
    } finally {
      op.dispose();
    }
  }
  // PyTorch's double backward (torch.autograd.grad with create_graph) is its own, not checked here.
  rows.push(...(await pytorchRows(ctx, "w4", streamInputs(spec, base.arrays.weights))));
  return rows;
}
