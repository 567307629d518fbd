import { tensor } from "@threadgrad/core";
import { describe, expect, it } from "vitest";
import { Adam } from "./adam.js";
import { createOptimizer } from "./factory.js";
import { SGD } from "./sgd.js";
import type { GradLike, OptimizerName, ParamLike } from "./types.js";

const param = (...xs: number[]): ParamLike => ({ data: Float32Array.from(xs), shape: [xs.length], grad: null });
const grad = (...xs: number[]): GradLike => ({ data: Float32Array.from(xs), shape: [xs.length] });

describe("Optimizer", () => {
  it("step() with no gradient anywhere explains the grad(...) trap", () => {
    const opt = new Adam([param(1, 2)]);
    expect(() => opt.step()).toThrow(/^Adam: step\(\) found no gradients.*grad\(\.\.\.\).*step\(grads\)/);
  });

  it("step(grads) applies the list grad(...) returns, skipping null entries", () => {
    const a = param(1),
      b = param(2),
      c = param(3);
    const opt = new SGD([{ params: [a, b] }, { params: [c], lr: 1 }], { lr: 0.5 });
    opt.step([grad(1), null, grad(1)]);
    expect([a.data[0], b.data[0], c.data[0]]).toEqual([0.5, 2, 2]);
    expect(a.grad).toBeNull();
    expect(() => opt.step([grad(1)])).toThrow(/^SGD: step\(grads\) got 1 gradients for 3 parameters$/);
    expect(() => opt.step([grad(1, 2), null, null])).toThrow(/^SGD: gradient 0 has 2 elements, parameter has 1$/);
    expect(() => opt.step([null, null, null])).toThrow(/^SGD: step\(grads\) got only null gradients/);
  });

  it("parameter groups keep their own options and addParamGroup fills the rest from the defaults", () => {
    const opt = new Adam([{ params: [param(1)], lr: 0.1 }], { lr: 0.01, betas: [0.8, 0.9] });
    opt.addParamGroup({ params: [param(2)], weightDecay: 0.5 });
    expect(opt.paramGroups.map((g) => [g.lr, g.betas[0], g.weightDecay])).toEqual([
      [0.1, 0.8, 0],
      [0.01, 0.8, 0.5],
    ]);
    expect(() => opt.addParamGroup({ params: opt.paramGroups[0]!.params })).toThrow(/more than one parameter group/);
    expect(() => opt.addParamGroup({ params: [param(3)], lr: -0.1 })).toThrow(/^Adam: lr must be >= 0, got -0.1$/);
    expect(() => new Adam([])).toThrow(/^Adam: got an empty parameter list$/);
  });

  it("zeroGrad drops gradients, or zero-fills them with setToNone false or when bound to a shared buffer", () => {
    const free = param(1),
      kept = param(1);
    free.grad = grad(3);
    const bound = tensor([1], { dtype: "float64", requiresGrad: true });
    const boundData = new Float64Array([3]);
    bound.bindGrad(boundData); // core's Tensor: grad = null zero-fills a bound buffer
    new SGD([free, bound]).zeroGrad();
    expect(free.grad).toBeNull();
    expect(bound.grad?.data).toBe(boundData);
    expect([...boundData]).toEqual([0]);
    kept.grad = grad(3);
    new SGD([kept]).zeroGrad({ setToNone: false });
    expect([...kept.grad.data]).toEqual([0]);
  });
});

describe("stateDict", () => {
  const names: OptimizerName[] = ["adam", "adamw", "sgd", "rmsprop", "adagrad"];
  const extra = {
    adam: { amsgrad: true },
    adamw: {},
    sgd: { momentum: 0.9, nesterov: true },
    rmsprop: { momentum: 0.5, centered: true },
    adagrad: { lrDecay: 0.1 },
  };
  const gradAt = (t: number, k: number) => grad(Math.sin(t + k), Math.cos(3 * t - k));

  it.each(names)("%s: resuming from a mid-training state dict follows the same trajectory bit for bit", (name) => {
    const make = () => [param(0.5, -1), param(2, 0.25)];
    const straight = make();
    const opt = createOptimizer(name, [{ params: [straight[0]!] }, { params: [straight[1]!], lr: 0.05 }], extra[name]);
    for (let t = 1; t <= 10; t++) opt.step([gradAt(t, 0), gradAt(t, 1)]);

    const first = make();
    const before = createOptimizer(name, [{ params: [first[0]!] }, { params: [first[1]!], lr: 0.05 }], extra[name]);
    for (let t = 1; t <= 4; t++) before.step([gradAt(t, 0), gradAt(t, 1)]);
    const sd = before.stateDict();
    const resumed = first.map((p) => ({ ...p, data: p.data.slice() }));
    const after = createOptimizer(name, [{ params: [resumed[0]!] }, { params: [resumed[1]!] }], {});
    after.loadStateDict(structuredClone(sd));
    expect(after.stateDict()).toEqual(sd);
    for (let t = 5; t <= 10; t++) after.step([gradAt(t, 0), gradAt(t, 1)]);
    expect(resumed.map((p) => [...p.data])).toEqual(straight.map((p) => [...p.data]));
  });

  it("holds copies, numbers parameters across groups and saves the options", () => {
    const a = param(1),
      b = param(2);
    const opt = new Adam([{ params: [a] }, { params: [b], lr: 0.5 }]);
    opt.step([grad(1), grad(1)]);
    const sd = opt.stateDict();
    expect(sd.paramGroups.map((g) => [g.params, g.lr])).toEqual([
      [[0], 1e-3],
      [[1], 0.5],
    ]);
    expect(sd.state[1]!.step).toBe(1);
    (sd.state[0]!.expAvg as Float32Array)[0] = 99;
    expect(opt.state.get(a)!.buffers.expAvg![0]).not.toBe(99);
  });

  it("rejects a state dict of the wrong shape and changes nothing", () => {
    const opt = new Adam([param(1, 2), param(3)]);
    opt.step([grad(1, 1), grad(1)]);
    const good = opt.stateDict();
    const wrongLength = {
      ...good,
      state: { ...good.state, 1: { step: 1, expAvg: new Float32Array(5), expAvgSq: new Float32Array(1) } },
    };
    expect(() => opt.loadStateDict(wrongLength)).toThrow(
      /^Adam: state of parameter 1: expAvg has 5 elements, parameter has 1$/,
    );
    expect(() => opt.loadStateDict({ ...good, paramGroups: [] })).toThrow(
      /^Adam: state dict has 0 parameter groups, optimizer has 1$/,
    );
    expect(() => opt.loadStateDict({ ...good, paramGroups: [{ ...good.paramGroups[0]!, params: [0] }] })).toThrow(
      /^Adam: parameter group 0 has 1 parameters in the state dict, 2 in the optimizer$/,
    );
    expect(() => opt.loadStateDict({ ...good, state: { 7: good.state[0]! } })).toThrow(
      /state for parameter 7, optimizer has 2 parameters/,
    );
    expect(() =>
      opt.loadStateDict({ ...good, state: { 0: { ...good.state[0]!, momentumBuffer: new Float32Array(2) } } }),
    ).toThrow(/unknown buffer "momentumBuffer"/);
    expect(() => opt.loadStateDict({ ...good, state: { 0: { ...good.state[0]!, step: -1 } } })).toThrow(
      /integer step >= 0, got -1/,
    );
    expect(() => opt.loadStateDict({ ...good, paramGroups: [{ ...good.paramGroups[0]!, lr: -2 }] })).toThrow(
      /^Adam: lr must be >= 0, got -2$/,
    );
    expect(opt.stateDict()).toEqual(good);
  });
});
