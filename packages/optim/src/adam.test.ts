import { describe, expect, it } from "vitest";
import { Adam, AdamW } from "./adam.js";
import type { ParamLike } from "./types.js";

const param = (...xs: number[]): ParamLike => ({ data: Float64Array.from(xs), shape: [xs.length], grad: null });
const setGrad = (p: ParamLike, ...xs: number[]) => (p.grad = { data: Float64Array.from(xs), shape: [xs.length] });

describe("Adam", () => {
  it("takes two hand-worked steps", () => {
    const p = param(1);
    const opt = new Adam([p], { lr: 0.1 });
    // Step 1, g = 0.5: m = 0.1·0.5 = 0.05, v = 0.001·0.25 = 0.00025.
    //   stepSize = lr/(1-0.9) = 1, denom = sqrt(0.00025)/sqrt(0.001) + 1e-8 = 0.5 + 1e-8
    //   p = 1 - 0.05/(0.5 + 1e-8) = 1 - 0.1/(1 + 2e-8) = 0.900000002 (to 1e-15)
    setGrad(p, 0.5);
    opt.step();
    expect(p.data[0]).toBeCloseTo(0.900000002, 12);
    // Step 2, g = -1: m = 0.9·0.05 - 0.1 = -0.055, v = 0.999·0.00025 + 0.001 = 0.00124975
    //   stepSize = 0.1/(1-0.81) = 0.1/0.19, denom = sqrt(0.00124975/0.001999) + 1e-8 = 0.790688...
    //   p = 0.900000002 + 0.0289474/0.790688 = 0.900000002 + 0.0366104 = 0.9366104
    setGrad(p, -1);
    opt.step();
    const expected = 0.900000002 + ((0.1 / 0.19) * 0.055) / (Math.sqrt(0.00124975 / 0.001999) + 1e-8);
    expect(Math.abs(p.data[0]! - expected)).toBeLessThan(1e-12);
    expect(p.data[0]).toBeCloseTo(0.9366104, 7);
    expect(opt.state.get(p)!.buffers.expAvg![0]).toBeCloseTo(-0.055, 15);
  });

  it("adds L2 weight decay to the gradient", () => {
    // g = 0.5 + 0.1·1 = 0.6, so m̂ = 0.6, sqrt(v̂) = 0.6: p = 1 - 0.06/(0.6 + 1e-8) ≈ 1 - 0.1·(1 - 1.6667e-8)
    const p = param(1);
    setGrad(p, 0.5);
    new Adam([p], { lr: 0.1, weightDecay: 0.1 }).step();
    expect(Math.abs(p.data[0]! - (1 - 0.06 / (0.6 + 1e-8)))).toBeLessThan(1e-12);
  });

  it("checks every option with one message", () => {
    const ps = [param(1)];
    expect(() => new Adam(ps, { lr: -0.1 })).toThrow(/^Adam: lr must be >= 0, got -0.1$/);
    expect(() => new Adam(ps, { betas: [1, 0.999] })).toThrow(/^Adam: betas\[0\] must be in \[0, 1\), got 1$/);
    expect(() => new Adam(ps, { betas: [0.9, -0.5] })).toThrow(/^Adam: betas\[1\] must be in \[0, 1\), got -0.5$/);
    expect(() => new Adam(ps, { eps: -1e-8 })).toThrow(/^Adam: eps must be >= 0, got -1e-8$/);
    expect(() => new Adam(ps, { weightDecay: NaN })).toThrow(/^Adam: weightDecay must be >= 0, got NaN$/);
    expect(() => new Adam(ps, { weight_decay: 0.1 } as never)).toThrow(/^Adam: unknown option "weight_decay"/);
    expect(() => new AdamW(ps, { lr: -1 })).toThrow(/^AdamW: lr must be >= 0, got -1$/);
  });
});

describe("AdamW", () => {
  it("decays the weight before the update, not through the gradient", () => {
    // p = 1·(1 - 0.1·0.1) = 0.99, then the plain Adam step of the first test: 0.99 - 0.099999998
    const p = param(1);
    setGrad(p, 0.5);
    const opt = new AdamW([p], { lr: 0.1, weightDecay: 0.1 });
    opt.step();
    expect(Math.abs(p.data[0]! - (0.99 - 0.05 / (0.5 + 1e-8)))).toBeLessThan(1e-12);
    expect(p.data[0]).toBeCloseTo(0.890000002, 12);
  });

  it("defaults weightDecay to 1e-2", () => {
    expect(new AdamW([param(1)]).paramGroups[0]!.weightDecay).toBe(1e-2);
    expect(new Adam([param(1)]).paramGroups[0]!.weightDecay).toBe(0);
  });
});
