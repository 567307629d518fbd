import { Tensor } from "../tensor/tensor.js";
import { enableGrad, noGrad } from "./grad-mode.js";
import { grad } from "./engine.js";

export interface GradcheckOptions {
  eps?: number;
  atol?: number;
  rtol?: number;
  /** Throw on failure (default) or return false. */
  raiseException?: boolean;
}

type Fn = (...xs: Tensor[]) => Tensor;

function sumOutputs(fn: Fn, xs: Tensor[], weights: Float64Array | null): number {
  const out = noGrad(() => fn(...xs));
  let s = 0;
  for (let i = 0; i < out.numel; i++) s += Number(out.data[i]) * (weights ? weights[i]! : 1);
  return s;
}

/**
 * Compares the analytic gradient of `fn` (reduced with fixed random weights when not scalar) with
 * central differences, element by element, in float64. Reports the worst element and both values.
 */
export function gradcheck(fn: Fn, inputs: Tensor[], opts: GradcheckOptions = {}): boolean {
  const { eps = 1e-6, atol = 1e-5, rtol = 1e-3, raiseException = true } = opts;
  for (const [i, x] of inputs.entries()) {
    if (x.requiresGrad && x.dtype !== "float64") {
      throw new Error(`gradcheck: input ${i} is ${x.dtype}; finite differences need float64 inputs`);
    }
  }
  const probe = noGrad(() => fn(...inputs));
  const weights = new Float64Array(probe.numel);
  for (let i = 0; i < weights.length; i++) weights[i] = Math.sin(1.7 * i + 0.3) + 1.25;
  const w = new Tensor(weights, probe.shape);
  const differentiable = inputs.filter((x) => x.requiresGrad);
  const out = fn(...inputs);
  const analytic = out.requiresGrad
    ? grad(out, differentiable, { gradOutputs: out.dtype === "float64" ? w : w.to(out.dtype), allowUnused: true })
    : differentiable.map(() => null);
  let worst: { input: number; index: number; a: number; n: number; excess: number } | null = null;
  differentiable.forEach((x, k) => {
    const a = analytic[k];
    for (let j = 0; j < x.numel; j++) {
      const v = x.data[j]!;
      x.data[j] = v + eps;
      const up = sumOutputs(fn, inputs, weights);
      x.data[j] = v - eps;
      const down = sumOutputs(fn, inputs, weights);
      x.data[j] = v;
      const numeric = (up - down) / (2 * eps);
      const analyticValue = a ? Number(a.data[j]) : 0;
      const excess = Math.abs(analyticValue - numeric) - (atol + rtol * Math.abs(numeric));
      if (!(excess <= 0) && (worst === null || excess > worst.excess || Number.isNaN(excess))) {
        worst = { input: inputs.indexOf(x), index: j, a: analyticValue, n: numeric, excess };
      }
    }
  });
  if (worst === null) return true;
  const wv = worst as { input: number; index: number; a: number; n: number };
  if (!raiseException) return false;
  throw new Error(
    `gradcheck: Jacobian mismatch for input ${wv.input} at element ${wv.index}: ` +
      `analytic ${wv.a}, numerical ${wv.n} (atol ${atol}, rtol ${rtol})`,
  );
}

/** Checks second derivatives: the gradient (with a graph) is itself gradchecked. */
export function gradgradcheck(fn: Fn, inputs: Tensor[], opts: GradcheckOptions = {}): boolean {
  const differentiable = inputs.filter((x) => x.requiresGrad);
  // Finite differences evaluate this under noGrad; the inner gradient still needs a graph.
  const firstOrder = (...xs: Tensor[]): Tensor =>
    enableGrad(() => {
      const out = fn(...xs);
      const weights = new Float64Array(out.numel);
      for (let i = 0; i < weights.length; i++) weights[i] = Math.cos(0.9 * i + 0.2) + 1.5;
      const w = new Tensor(weights, out.shape);
      const used = xs.filter((x) => x.requiresGrad);
      const gs = grad(out, used, {
        gradOutputs: out.dtype === "float64" ? w : w.to(out.dtype),
        createGraph: true,
        allowUnused: true,
      });
      let total: Tensor | null = null;
      gs.forEach((g, i) => {
        if (g === null) return;
        // A fixed nonlinear-free weighting of every gradient element keeps the check a scalar.
        const ww = new Float64Array(g.numel);
        for (let j = 0; j < ww.length; j++) ww[j] = Math.sin(0.7 * j + i) + 1.1;
        const term = g.mul(new Tensor(ww, g.shape)).sum();
        total = total === null ? term : total.add(term);
      });
      return total ?? new Tensor(new Float64Array(1), []);
    });
  if (differentiable.length === 0) return true;
  return gradcheck(firstOrder, inputs, opts);
}
