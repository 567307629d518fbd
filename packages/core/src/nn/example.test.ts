import { expect, test } from "vitest";
import { type Tensor, manualSeed, noGrad, tensor } from "../index.js";
import { Linear, Sequential, Tanh } from "./layers.js";
import { mseLoss } from "../losses/losses.js";

// End to end through nn and losses: a 2-layer float64 MLP learns XOR with plain gradient descent
// written inline (optimizers live in @threadgrad/optim, which core must not import).
test("plain SGD on a 2-layer float64 MLP cuts the XOR loss tenfold", () => {
  manualSeed(0);
  const net = new Sequential(
    new Linear(2, 8, { dtype: "float64" }),
    new Tanh(),
    new Linear(8, 1, { dtype: "float64" }),
  );
  const x = tensor(Float64Array.from([0, 0, 0, 1, 1, 0, 1, 1]), { shape: [4, 2] });
  const y = tensor(Float64Array.from([0, 1, 1, 0]), { shape: [4, 1] });
  const lr = 0.2;
  const step = (): number => {
    net.zeroGrad();
    const loss = mseLoss(net.forward(x), y);
    loss.backward();
    noGrad(() => {
      for (const p of net.parameters()) p.sub_((p.grad as Tensor).mul(lr));
    });
    return loss.item();
  };
  const first = step();
  let last = first;
  for (let i = 0; i < 1500; i++) last = step();
  expect(last).toBeLessThan(first / 10);
  const pred = Array.from(noGrad(() => net.forward(x)).data, (v) => (v > 0.5 ? 1 : 0));
  expect(pred).toEqual([0, 1, 1, 0]);
});
