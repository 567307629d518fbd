import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { mulberry32 } from "@threadgrad/core";
import { adamUpdate } from "./flat/adam.js";
import { FLT_MIN } from "./flat/flush.js";
import { sgdUpdate } from "./flat/sgd.js";
import { rmspropUpdate } from "./flat/rmsprop.js";
import { createOptimizer, flatStep, stateBuffers, type OptionsByName } from "./factory.js";
import type { FloatArray, OptimizerName, ParamLike } from "./types.js";

const bytes = (a: FloatArray) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** Deterministic pseudo-random numbers in [-1, 1). */
function rng(seed: number): () => number {
  const uniform = mulberry32(seed);
  return () => uniform() * 2 - 1;
}

/** Sorted distinct cut points splitting [0, n) into pieces. */
const cutsOf = (n: number, raw: number[]) => [0, ...[...new Set(raw.map((c) => c % (n + 1)))].sort((a, b) => a - b), n];

const optionsArb: { [N in OptimizerName]: fc.Arbitrary<Partial<OptionsByName[N]>> } = {
  adam: fc.record({
    lr: fc.constantFrom(1e-3, 0.1),
    weightDecay: fc.constantFrom(0, 0.1),
    amsgrad: fc.boolean(),
    maximize: fc.boolean(),
  }),
  adamw: fc.record({
    lr: fc.constantFrom(1e-3, 0.1),
    weightDecay: fc.constantFrom(0, 0.1),
    amsgrad: fc.boolean(),
    maximize: fc.boolean(),
  }),
  sgd: fc
    .record({
      lr: fc.constantFrom(0.1),
      momentum: fc.constantFrom(0, 0.9),
      dampening: fc.constantFrom(0),
      weightDecay: fc.constantFrom(0, 0.1),
      nesterov: fc.boolean(),
      maximize: fc.boolean(),
    })
    .map((o) => ({ ...o, nesterov: o.nesterov && o.momentum > 0 })),
  rmsprop: fc.record({
    momentum: fc.constantFrom(0, 0.9),
    centered: fc.boolean(),
    weightDecay: fc.constantFrom(0, 0.1),
    maximize: fc.boolean(),
  }),
  adagrad: fc.record({
    lrDecay: fc.constantFrom(0, 0.1),
    initialAccumulatorValue: fc.constantFrom(0, 0.1),
    weightDecay: fc.constantFrom(0, 0.1),
  }),
};

describe("flat path", () => {
  for (const name of Object.keys(optionsArb) as OptimizerName[]) {
    it(`${name}: updating slices separately equals the object API bit for bit`, () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 40 }),
          fc.array(fc.nat(), { maxLength: 6 }),
          fc.array(fc.nat(), { maxLength: 6 }),
          fc.boolean(),
          fc.integer(),
          optionsArb[name],
          (n, paramCuts, sliceCuts, isF32, seed, options) => {
            const make = (xs: ArrayLike<number>) => (isF32 ? Float32Array.from(xs) : Float64Array.from(xs));
            const next = rng(seed);
            const flat = make(Array.from({ length: n }, next));
            // Object API: the flat buffer cut into several parameters.
            const pc = cutsOf(n, paramCuts);
            const params: ParamLike[] = pc
              .slice(1)
              .map((end, k) => ({ data: flat.slice(pc[k], end), shape: [end - pc[k]!], grad: null }));
            const opt = createOptimizer(name, params, options);
            // Flat path: the same buffer, updated one slice at a time.
            const sc = cutsOf(n, sliceCuts);
            const flatParams = flat.slice();
            const state = stateBuffers(name, options).map((b) => make(new Array(n).fill(b.init)));
            for (let step = 1; step <= 4; step++) {
              const grads = make(Array.from({ length: n }, next));
              opt.step(params.map((_, k) => ({ data: grads.slice(pc[k], pc[k + 1]), shape: [pc[k + 1]! - pc[k]!] })));
              for (let k = 1; k < sc.length; k++)
                flatStep(name, options, { params: flatParams, grads, state, start: sc[k - 1]!, end: sc[k]!, step });
            }
            const joined = make(params.flatMap((p) => [...p.data]));
            expect(bytes(flatParams).equals(bytes(joined))).toBe(true);
            stateBuffers(name, options).forEach((b, i) => {
              const objState = make(params.flatMap((p) => [...opt.state.get(p)!.buffers[b.name]!]));
              expect(bytes(state[i]!).equals(bytes(objState))).toBe(true);
            });
          },
        ),
        { numRuns: 60, seed: 42 },
      );
    });
  }

  it("flatStep's lr overrides the options' lr", () => {
    const a = Float64Array.of(1),
      b = Float64Array.of(1);
    flatStep(
      "sgd",
      { lr: 0.5 },
      { params: a, grads: Float64Array.of(1), state: [], start: 0, end: 1, step: 1, lr: 0.1 },
    );
    sgdUpdate(b, Float64Array.of(1), null, 0, 1, 1, {
      lr: 0.1,
      momentum: 0,
      dampening: 0,
      weightDecay: 0,
      nesterov: false,
      maximize: false,
    });
    expect(a[0]).toBe(b[0]);
  });

  it("describes the state buffers each optimizer needs", () => {
    expect(stateBuffers("adam").map((b) => b.name)).toEqual(["expAvg", "expAvgSq"]);
    expect(stateBuffers("adamw", { amsgrad: true }).map((b) => b.name)).toEqual(["expAvg", "expAvgSq", "maxExpAvgSq"]);
    expect(stateBuffers("sgd")).toEqual([]);
    expect(stateBuffers("sgd", { momentum: 0.9 }).map((b) => b.name)).toEqual(["momentumBuffer"]);
    expect(stateBuffers("rmsprop", { momentum: 0.9, centered: true }).map((b) => b.name)).toEqual([
      "squareAvg",
      "momentumBuffer",
      "gradAvg",
    ]);
    expect(stateBuffers("adagrad", { initialAccumulatorValue: 0.1 })).toEqual([{ name: "sum", init: 0.1 }]);
  });

  it("rejects the wrong number of state arrays and ranges outside the buffer", () => {
    const p = new Float32Array(4),
      g = new Float32Array(4);
    expect(() =>
      flatStep("adam", {}, { params: p, grads: g, state: [new Float32Array(4)], start: 0, end: 4, step: 1 }),
    ).toThrow(/^flatStep: adam expects 2 state arrays \(expAvg, expAvgSq\), got 1$/);
    expect(() => flatStep("sgd", {}, { params: p, grads: g, state: [], start: 2, end: 5, step: 1 })).toThrow(
      /range \[2, 5\)/,
    );
    expect(() => flatStep("sgd", {}, { params: p, grads: g, state: [], start: 0, end: 4, step: 0 })).toThrow(
      /step must be an integer >= 1, got 0/,
    );
    expect(() => flatStep("adam", { lr: -1 }, { params: p, grads: g, state: [], start: 0, end: 4, step: 1 })).toThrow(
      /^Adam: lr must be >= 0, got -1$/,
    );
    expect(() =>
      flatStep("nadam" as OptimizerName, {}, { params: p, grads: g, state: [], start: 0, end: 4, step: 1 }),
    ).toThrow(/unknown optimizer "nadam"/);
  });
});

describe("subnormal flushing", () => {
  const isSubnormal = (x: number) => x !== 0 && Math.abs(x) < FLT_MIN;
  const adamOpts = {
    lr: 1e-3,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weightDecay: 0,
    amsgrad: true,
    maximize: false,
    decoupledWeightDecay: false,
  };

  it("float32 Adam state decaying towards zero never stores a subnormal and ends at exactly 0", () => {
    const p = new Float32Array(1),
      zero = new Float32Array(1);
    const m = Float32Array.of(2e-38),
      v = Float32Array.of(2e-38),
      vmax = new Float32Array(1);
    for (let t = 1; t <= 10; t++) {
      adamUpdate(p, zero, m, v, vmax, 0, 1, t, adamOpts);
      for (const x of [m[0]!, v[0]!, vmax[0]!]) expect(isSubnormal(x)).toBe(false);
    }
    expect(m[0]).toBe(0); // 2e-38·0.9^6 < FLT_MIN
  });

  it("a tiny float32 gradient leaves a zero second moment instead of a subnormal", () => {
    const p = new Float32Array(1),
      m = new Float32Array(1),
      v = new Float32Array(1);
    adamUpdate(p, Float32Array.of(1e-20), m, v, null, 0, 1, 1, { ...adamOpts, amsgrad: false });
    expect(v[0]).toBe(0); // 0.001·1e-40 would be subnormal
    expect(m[0]).toBeCloseTo(1e-21, 25);
  });

  it("float64 state is left as computed", () => {
    const p = new Float64Array(1),
      m = Float64Array.of(2e-38),
      v = new Float64Array(1);
    for (let t = 1; t <= 10; t++)
      adamUpdate(p, new Float64Array(1), m, v, null, 0, 1, t, { ...adamOpts, amsgrad: false });
    expect(m[0]).toBeGreaterThan(0);
    expect(m[0]).toBeLessThan(FLT_MIN);
  });

  it("float32 SGD momentum and RMSprop buffers are flushed too", () => {
    const buf = Float32Array.of(2e-38),
      p = new Float32Array(1),
      zero = new Float32Array(1);
    const sgd = { lr: 0.1, momentum: 0.5, dampening: 0, weightDecay: 0, nesterov: false, maximize: false };
    sgdUpdate(p, zero, buf, 0, 1, 2, sgd);
    expect(buf[0]).toBe(0); // 1e-38 < FLT_MIN
    const sq = Float32Array.of(2e-38),
      ga = Float32Array.of(2e-38),
      mb = Float32Array.of(2e-38);
    const rms = { lr: 0.1, alpha: 0.5, eps: 1e-8, weightDecay: 0, momentum: 0.5, centered: true, maximize: false };
    rmspropUpdate(p, zero, sq, ga, mb, 0, 1, 1, rms);
    expect([sq[0], ga[0], mb[0]]).toEqual([0, 0, 0]);
  });

  it("exports FLT_MIN as the smallest normal float32", () => {
    expect(FLT_MIN).toBe(2 ** -126);
    expect(Math.fround(FLT_MIN)).toBe(FLT_MIN);
  });
});
