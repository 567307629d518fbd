import { describe, expect, it } from "vitest";
import { SGD } from "./sgd.js";
import type { ParamLike } from "./types.js";

const param = (...xs: number[]): ParamLike => ({ data: Float64Array.from(xs), shape: [xs.length], grad: null });
const setGrad = (p: ParamLike, ...xs: number[]) => (p.grad = { data: Float64Array.from(xs), shape: [xs.length] });

function run(options: ConstructorParameters<typeof SGD>[1], grads: number[]): number[] {
  const p = param(1);
  const opt = new SGD([p], options);
  return grads.map((g) => {
    setGrad(p, g);
    opt.step();
    return p.data[0]!;
  });
}

describe("SGD", () => {
  it("takes hand-worked steps with momentum", () => {
    // step 1: buf = g = 0.5 (no dampening on first use); p = 1 - 0.1·0.5 = 0.95
    // step 2: buf = 0.9·0.5 + (-1) = -0.55;             p = 0.95 + 0.055 = 1.005
    const [p1, p2] = run({ lr: 0.1, momentum: 0.9 }, [0.5, -1]);
    expect(Math.abs(p1! - 0.95)).toBeLessThan(1e-12);
    expect(Math.abs(p2! - 1.005)).toBeLessThan(1e-12);
  });

  it("takes hand-worked steps with nesterov momentum", () => {
    // step 1: buf = 0.5, d = 0.5 + 0.9·0.5 = 0.95;        p = 1 - 0.095 = 0.905
    // step 2: buf = -0.55, d = -1 + 0.9·(-0.55) = -1.495; p = 0.905 + 0.1495 = 1.0545
    const [p1, p2] = run({ lr: 0.1, momentum: 0.9, nesterov: true }, [0.5, -1]);
    expect(Math.abs(p1! - 0.905)).toBeLessThan(1e-12);
    expect(Math.abs(p2! - 1.0545)).toBeLessThan(1e-12);
  });

  it("dampens only after the first step", () => {
    // step 2: buf = 0.9·0.5 + (1 - 0.5)·(-1) = -0.05; p = 0.95 + 0.005 = 0.955
    const [p1, p2] = run({ lr: 0.1, momentum: 0.9, dampening: 0.5 }, [0.5, -1]);
    expect(Math.abs(p1! - 0.95)).toBeLessThan(1e-12);
    expect(Math.abs(p2! - 0.955)).toBeLessThan(1e-12);
  });

  it("negates the gradient before weight decay when maximizing", () => {
    // d = -0.5 + 0.1·1 = -0.4; p = 1 + 0.04
    const [p1] = run({ lr: 0.1, weightDecay: 0.1, maximize: true }, [0.5]);
    expect(Math.abs(p1! - 1.04)).toBeLessThan(1e-12);
  });

  it("rejects nesterov without momentum", () => {
    expect(() => new SGD([param(1)], { nesterov: true })).toThrow(
      /^SGD: nesterov requires momentum > 0 and dampening = 0, got momentum 0, dampening 0$/,
    );
    expect(() => new SGD([param(1)], { momentum: 0.9, dampening: 0.1, nesterov: true })).toThrow(/dampening 0.1/);
    expect(() => new SGD([param(1)], { momentum: -0.9 })).toThrow(/^SGD: momentum must be >= 0, got -0.9$/);
  });
});
