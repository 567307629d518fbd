import { expect, test } from "vitest";
import { type Tensor, tensor } from "../index.js";

// A 2-layer MLP as a PyTorch user writes it with plain tensor ops (Linear → tanh → Linear, weights
// stored [out, in] as in PyTorch) on a mean squared error. The expected values below are computed
// with plain JavaScript loops from the chain rule, independent of the library:
//   z = x·W1ᵀ + b1, h = tanh(z), o = h·W2ᵀ + b2, L = mean((o − y)²)
//   dL/do = 2(o − y)/(N·K), dW2 = doᵀ·h, db2 = Σₙ do, dh = do·W2,
//   dz = dh ⊙ (1 − h²), dW1 = dzᵀ·x, db1 = Σₙ dz
const X = [
  [0.5, -1.2, 0.3],
  [1.5, 0.2, -0.7],
];
const Y = [
  [0.1, -0.4],
  [0.9, 0.25],
];
const W1 = [
  [0.2, -0.3, 0.1],
  [0.7, 0.05, -0.4],
  [-0.6, 0.25, 0.9],
  [0.15, 0.8, -0.2],
];
const B1 = [0.01, -0.02, 0.03, 0.0];
const W2 = [
  [0.3, -0.5, 0.2, 0.6],
  [-0.1, 0.4, 0.7, -0.35],
];
const B2 = [0.05, -0.05];

function reference() {
  const N = X.length,
    H = W1.length,
    K = W2.length,
    D = X[0]!.length;
  const h = X.map((x) => W1.map((w, j) => Math.tanh(w.reduce((a, wi, i) => a + wi * x[i]!, B1[j]!))));
  const o = h.map((hn) => W2.map((w, k) => w.reduce((a, wj, j) => a + wj * hn[j]!, B2[k]!)));
  let loss = 0;
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) loss += (o[n]![k]! - Y[n]![k]!) ** 2;
  loss /= N * K;
  const dO = o.map((on, n) => on.map((v, k) => (2 * (v - Y[n]![k]!)) / (N * K)));
  const dW2 = W2.map((_, k) => W1.map((_, j) => dO.reduce((a, d, n) => a + d[k]! * h[n]![j]!, 0)));
  const dB2 = W2.map((_, k) => dO.reduce((a, d) => a + d[k]!, 0));
  const dZ = h.map((hn, n) => hn.map((v, j) => W2.reduce((a, w, k) => a + dO[n]![k]! * w[j]!, 0) * (1 - v * v)));
  const dW1 = Array.from({ length: H }, (_, j) =>
    Array.from({ length: D }, (_, i) => dZ.reduce((a, dz, n) => a + dz[j]! * X[n]![i]!, 0)),
  );
  const dB1 = Array.from({ length: H }, (_, j) => dZ.reduce((a, dz) => a + dz[j]!, 0));
  return { loss, dW1, dB1, dW2, dB2 };
}

const leaf = (v: number[] | number[][]) => tensor(v, { dtype: "float64", requiresGrad: true });

function expectClose(actual: Tensor | null, expected: number[] | number[][]) {
  const flat = (expected as (number | number[])[]).flat();
  expect(actual!.shape.reduce((a, b) => a * b, 1)).toBe(flat.length);
  Array.from(actual!.data).forEach((v, i) => {
    expect(Math.abs(v - flat[i]!)).toBeLessThanOrEqual(1e-12);
  });
}

test("a 2-layer MLP on a mean squared error matches hand-derived gradients to 1e-12", () => {
  const w1 = leaf(W1),
    b1 = leaf(B1),
    w2 = leaf(W2),
    b2 = leaf(B2);
  const x = tensor(X, { dtype: "float64" }),
    y = tensor(Y, { dtype: "float64" });
  const out = x.matmul(w1.T).add(b1).tanh().matmul(w2.T).add(b2);
  const loss = out.sub(y).pow(2).mean();
  loss.backward();
  const ref = reference();
  expect(Math.abs(loss.item() - ref.loss)).toBeLessThanOrEqual(1e-12);
  expectClose(w1.grad, ref.dW1);
  expectClose(b1.grad, ref.dB1);
  expectClose(w2.grad, ref.dW2);
  expectClose(b2.grad, ref.dB2);
});
