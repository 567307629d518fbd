import { describe, expect, it } from "vitest";
import { grad, manualSeed, nn, randn, tensor } from "@threadgrad/core";
import { Adam, createOptimizer, type OptimizerName } from "./index.js";

// The README's first example, as written there, with its claims checked.
describe("README example", () => {
  it("trains a step and back-propagates a gradient penalty to the weights", () => {
    manualSeed(0);
    const model = new nn.Sequential(new nn.Linear(4, 16), new nn.Tanh(), new nn.Linear(16, 3));
    const opt = new Adam(model.parameters(), { lr: 1e-2 });
    const x = randn([8, 4]);
    const y = tensor([0, 1, 2, 0, 1, 2, 0, 1]);
    const before = (model.parameters()[0]!.data as Float32Array).slice();

    opt.zeroGrad();
    const loss = nn.F.crossEntropy(model.forward(x), y);
    loss.backward();
    opt.step();
    expect(model.parameters()[0]!.data).not.toEqual(before);
    expect(() => model.forward(x).backward()).toThrow(/grad can be implicitly created only for scalar outputs/);

    opt.zeroGrad();
    const xi = x.clone().requiresGrad_();
    const [dx] = grad(nn.F.crossEntropy(model.forward(xi), y), [xi], { createGraph: true });
    const penalty = dx!.pow(2).sum(1).mean();
    penalty.backward();
    const w0 = model.parameters()[0]!;
    expect(w0.grad).not.toBeNull();
    expect([...w0.grad!.data].some((v) => v !== 0)).toBe(true);
    expect(xi.grad).not.toBeNull();
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
