// Each optimizer against a plain re-statement of PyTorch's algorithm (the pseudo-code in the
// torch.optim docs, in the order the implementation evaluates it), over 20 steps in float64.
import { describe, expect, it } from "vitest";
import { createOptimizer, type OptionsByName } from "./factory.js";
import type { OptimizerName, ParamLike } from "./types.js";

type Vec = number[];
type Ref = (theta: Vec, g: Vec, t: number) => void;

const N = 5;
const THETA0 = [0.5, -1.2, 2.0, 0.03, -0.7];
// A gradient that depends on the parameters and the step, so errors compound over the run.
const gradAt = (theta: Vec, t: number): Vec => theta.map((x, i) => Math.sin(x * (i + 1) + t) + 0.1 * x);

function refAdam(o: OptionsByName["adam"], decoupled: boolean): Ref {
  const m = new Array(N).fill(0),
    v = new Array(N).fill(0),
    vmax = new Array(N).fill(0);
  const [b1, b2] = o.betas;
  return (theta, grad, t) => {
    for (let i = 0; i < N; i++) {
      let g = o.maximize ? -grad[i]! : grad[i]!;
      if (decoupled) theta[i]! *= 1 - o.lr * o.weightDecay;
      else g += o.weightDecay * theta[i]!;
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      const mHat = m[i] / (1 - b1 ** t);
      // amsgrad keeps the max of the raw second moment and bias-corrects it afterwards, as
      // PyTorch's implementation does (older docs put the max after the correction).
      vmax[i] = Math.max(vmax[i], v[i]);
      const vHat = (o.amsgrad ? vmax[i] : v[i]) / (1 - b2 ** t);
      theta[i]! -= (o.lr * mHat) / (Math.sqrt(vHat) + o.eps);
    }
  };
}

function refSgd(o: OptionsByName["sgd"]): Ref {
  const b = new Array(N).fill(0);
  return (theta, grad, t) => {
    for (let i = 0; i < N; i++) {
      let g = (o.maximize ? -grad[i]! : grad[i]!) + o.weightDecay * theta[i]!;
      if (o.momentum !== 0) {
        b[i] = t > 1 ? o.momentum * b[i] + (1 - o.dampening) * g : g;
        g = o.nesterov ? g + o.momentum * b[i] : b[i];
      }
      theta[i]! -= o.lr * g;
    }
  };
}

function refRmsprop(o: OptionsByName["rmsprop"]): Ref {
  const v = new Array(N).fill(0),
    gAve = new Array(N).fill(0),
    b = new Array(N).fill(0);
  return (theta, grad) => {
    for (let i = 0; i < N; i++) {
      const g = (o.maximize ? -grad[i]! : grad[i]!) + o.weightDecay * theta[i]!;
      v[i] = o.alpha * v[i] + (1 - o.alpha) * g * g;
      let vt = v[i];
      if (o.centered) {
        gAve[i] = o.alpha * gAve[i] + (1 - o.alpha) * g;
        vt -= gAve[i] * gAve[i];
      }
      if (o.momentum > 0) {
        b[i] = o.momentum * b[i] + g / (Math.sqrt(vt) + o.eps);
        theta[i]! -= o.lr * b[i];
      } else {
        theta[i]! -= (o.lr * g) / (Math.sqrt(vt) + o.eps);
      }
    }
  };
}

function refAdagrad(o: OptionsByName["adagrad"]): Ref {
  const sum = new Array(N).fill(o.initialAccumulatorValue);
  return (theta, grad, t) => {
    const lr = o.lr / (1 + (t - 1) * o.lrDecay);
    for (let i = 0; i < N; i++) {
      const g = (o.maximize ? -grad[i]! : grad[i]!) + o.weightDecay * theta[i]!;
      sum[i] += g * g;
      theta[i]! -= (lr * g) / (Math.sqrt(sum[i]) + o.eps);
    }
  };
}

/** Every combination of the listed option values. */
function combos<T extends object>(choices: { [K in keyof T]: T[K][] }): T[] {
  return Object.entries(choices).reduce<object[]>(
    (acc, [k, vs]) => acc.flatMap((a) => (vs as unknown[]).map((v) => ({ ...a, [k]: v }))),
    [{}],
  ) as T[];
}

function compare<N extends OptimizerName>(name: N, options: OptionsByName[N], ref: Ref): void {
  const theta = [...THETA0];
  // Two parameters, to cover the mapping from grads list to groups.
  const a: ParamLike = { data: Float64Array.from(THETA0.slice(0, 2)), shape: [2], grad: null };
  const b: ParamLike = { data: Float64Array.from(THETA0.slice(2)), shape: [3], grad: null };
  const opt = createOptimizer(name, [a, b], options);
  for (let t = 1; t <= 20; t++) {
    const g = gradAt(theta, t);
    ref(theta, g, t);
    opt.step([
      { data: Float64Array.from(g.slice(0, 2)), shape: [2] },
      { data: Float64Array.from(g.slice(2)), shape: [3] },
    ]);
    const ours = [...a.data, ...b.data];
    for (let i = 0; i < N; i++) expect(Math.abs(ours[i]! - theta[i]!)).toBeLessThan(1e-10);
  }
}

describe("optimizers follow PyTorch's algorithms for 20 steps", () => {
  const adamCombos = combos<OptionsByName["adam"]>({
    lr: [0.05],
    betas: [
      [0.9, 0.999],
      [0.5, 0.9],
    ],
    eps: [1e-8, 0.1],
    weightDecay: [0, 0.1],
    amsgrad: [false, true],
    maximize: [false, true],
  });
  it.each(adamCombos)("adam %o", (o) => compare("adam", o, refAdam(o, false)));
  it.each(adamCombos)("adamw %o", (o) => compare("adamw", o, refAdam(o, true)));

  const sgdCombos = combos<OptionsByName["sgd"]>({
    lr: [0.05],
    momentum: [0, 0.9],
    dampening: [0, 0.3],
    weightDecay: [0, 0.1],
    nesterov: [false, true],
    maximize: [false, true],
  }).filter((o) => !o.nesterov || (o.momentum > 0 && o.dampening === 0));
  it.each(sgdCombos)("sgd %o", (o) => compare("sgd", o, refSgd(o)));

  const rmsCombos = combos<OptionsByName["rmsprop"]>({
    lr: [0.01],
    alpha: [0.99, 0.5],
    eps: [1e-8],
    weightDecay: [0, 0.1],
    momentum: [0, 0.9],
    centered: [false, true],
    maximize: [false, true],
  });
  it.each(rmsCombos)("rmsprop %o", (o) => compare("rmsprop", o, refRmsprop(o)));

  const adagradCombos = combos<OptionsByName["adagrad"]>({
    lr: [0.1],
    lrDecay: [0, 0.05],
    weightDecay: [0, 0.1],
    initialAccumulatorValue: [0, 0.5],
    eps: [1e-10],
    maximize: [false, true],
  });
  it.each(adagradCombos)("adagrad %o", (o) => compare("adagrad", o, refAdagrad(o)));
});
