import { describe, expect, it } from "vitest";
import { grad, manualSeed, nn, randn, tensor } from "@threadgrad/core";
import { Adam, createOptimizer, type OptimizerName } from "./index.js";

type Matrix = number[][];
const rows = (data: ArrayLike<number>, cols: number): Matrix =>
  Array.from({ length: data.length / cols }, (_, r) => Array.from(data).slice(r * cols, (r + 1) * cols));

/**
 * The example's model, loss and gradient penalty in float64 JavaScript, from the chain rule
 * (weights stored [out, in]): h = tanh(x·W1ᵀ + b1), z = h·W2ᵀ + b2, CE = mean_b −log softmax(z_b)[y_b];
 * dCE/dz = (softmax(z) − onehot(y)) / B, dCE/dh = dz·W2, dCE/dx = (dh ⊙ (1 − h²))·W1;
 * penalty = mean_b ‖dCE/dx_b‖².
 */
function reference(w: { w1: Matrix; b1: number[]; w2: Matrix; b2: number[] }, x: Matrix, y: number[]) {
  const batch = x.length;
  const h = x.map((xb) => w.w1.map((wj, j) => Math.tanh(wj.reduce((a, v, i) => a + v * xb[i]!, w.b1[j]!))));
  const z = h.map((hb) => w.w2.map((wk, k) => wk.reduce((a, v, j) => a + v * hb[j]!, w.b2[k]!)));
  let ce = 0;
  const dx = z.map((zb, b) => {
    const top = Math.max(...zb);
    const e = zb.map((v) => Math.exp(v - top));
    const total = e.reduce((a, v) => a + v, 0);
    ce -= Math.log(e[y[b]!]! / total) / batch;
    const dz = e.map((v, k) => (v / total - (k === y[b] ? 1 : 0)) / batch);
    const da = h[b]!.map((hj, j) => dz.reduce((a, d, k) => a + d * w.w2[k]![j]!, 0) * (1 - hj * hj));
    return x[b]!.map((_, i) => da.reduce((a, d, j) => a + d * w.w1[j]![i]!, 0));
  });
  const penalty = dx.reduce((a, row) => a + row.reduce((s, v) => s + v * v, 0), 0) / batch;
  return { ce, dx, penalty };
}

/** Central difference of f with respect to w1[j][i], in float64. */
function slope(f: (w1: Matrix) => number, w1: Matrix, j: number, i: number, h = 1e-6): number {
  const at = (d: number) => f(w1.map((row, r) => row.map((v, c) => (r === j && c === i ? v + d : v))));
  return (at(h) - at(-h)) / (2 * h);
}

// The root README's first example, as written there, with what its comments say checked.
describe("README example", () => {
  it("trains a step and back-propagates a gradient penalty to the weights", () => {
    manualSeed(0);
    const model = new nn.Sequential(new nn.Linear(4, 16), new nn.Tanh(), new nn.Linear(16, 3));
    const opt = new Adam(model.parameters(), { lr: 1e-2 });
    const x = randn([8, 4]);
    const y = tensor([0, 1, 2, 0, 1, 2, 0, 1]); // int32 class indices
    const weights = () => {
      const [w1, b1, w2, b2] = model.parameters().map((p) => p.data as Float32Array);
      return { w1: rows(w1!, 4), b1: [...b1!], w2: rows(w2!, 16), b2: [...b2!] };
    };
    const xs = rows(x.data, 4),
      ys = [...y.data];
    const before = weights();

    opt.zeroGrad();
    const loss = nn.F.crossEntropy(model.forward(x), y);
    loss.backward(); // only for a scalar: a non-scalar output asks for .sum()/.mean() or a gradient
    opt.step();
    expect(loss.item()).toBeCloseTo(reference(before, xs, ys).ce, 6);
    const ceSlope = (j: number, i: number) => slope((w1) => reference({ ...before, w1 }, xs, ys).ce, before.w1, j, i);
    // Adam's first step moves every weight by lr against its gradient's sign (m̂ = g, v̂ = g²).
    const after = weights();
    for (const [j, row] of after.w1.entries())
      for (const [i, v] of row.entries()) {
        const g = ceSlope(j, i);
        if (Math.abs(g) > 1e-5) expect(v - before.w1[j]![i]!).toBeCloseTo(-1e-2 * Math.sign(g), 6);
      }
    expect(() => model.forward(x).backward()).toThrow(/grad can be implicitly created only for scalar outputs/);

    // Gradients as values, differentiable again: a gradient penalty.
    const xi = x.clone().requiresGrad_();
    const [dx] = grad(nn.F.crossEntropy(model.forward(xi), y), [xi], { createGraph: true });
    const penalty = dx!.pow(2).sum(1).mean();
    penalty.backward(); // second-order gradients reach the weights
    const want = reference(after, xs, ys);
    for (const [b, row] of rows(dx!.data, 4).entries())
      for (const [i, v] of row.entries()) expect(v).toBeCloseTo(want.dx[b]![i]!, 6);
    expect(penalty.item()).toBeCloseTo(want.penalty, 6);
    // .grad adds up: the first backward's dCE/dW1 (before the step) plus dPenalty/dW1 (after it).
    const penaltySlope = (j: number, i: number) =>
      slope((w1) => reference({ ...after, w1 }, xs, ys).penalty, after.w1, j, i);
    const w1Grad = rows(model.parameters()[0]!.grad!.data, 4);
    const fromPenalty = w1Grad.map((row, j) => row.map((_, i) => penaltySlope(j, i)));
    const expected = fromPenalty.map((row, j) => row.map((v, i) => ceSlope(j, i) + v));
    const tolerance = 1e-4 * Math.max(...expected.flat().map(Math.abs));
    for (const [j, row] of w1Grad.entries())
      for (const [i, v] of row.entries()) expect(Math.abs(v - expected[j]![i]!)).toBeLessThan(tolerance);
    // The penalty's share stands well clear of the tolerance, so a missing second-order term would show.
    expect(Math.max(...fromPenalty.flat().map(Math.abs))).toBeGreaterThan(10 * tolerance);
  });

  it.each<[OptimizerName, Record<string, unknown>]>([
    ["adam", { lr: 1e-2 }],
    ["adamw", { lr: 1e-2 }],
    ["sgd", { lr: 0.1, momentum: 0.9, nesterov: true }],
    ["rmsprop", { lr: 1e-2, centered: true }],
    ["adagrad", { lr: 0.1 }],
  ])("%s trains the README's model: the loss falls by more than half in 100 steps", (name, options) => {
    manualSeed(1);
    const model = new nn.Sequential(new nn.Linear(4, 16), new nn.Tanh(), new nn.Linear(16, 3));
    const opt = createOptimizer(name, model.parameters(), options as never);
    const x = randn([32, 4]);
    const y = x.argmax(1).clamp(0, 2).to("int32"); // a learnable rule: the largest of the first three features
    let first = 0,
      last = 0;
    for (let i = 0; i < 100; i++) {
      opt.zeroGrad();
      const loss = nn.F.crossEntropy(model.forward(x), y);
      loss.backward();
      opt.step();
      if (i === 0) first = loss.item();
      last = loss.item();
    }
    expect(last).toBeLessThan(first / 2);
  });
});
