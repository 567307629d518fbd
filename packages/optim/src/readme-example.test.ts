import { describe, expect, it } from "vitest";
import { grad, manualSeed, nn, randn, tensor } from "@threadgrad/core";
import { Adam } from "./index.js";

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
});
