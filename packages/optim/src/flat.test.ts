import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { mulberry32 } from "@threadgrad/core";
import { adamUpdate } from "./flat/adam.js";
import { FLT_MIN } from "./flat/flush.js";
import { sgdUpdate } from "./flat/sgd.js";
import { rmspropUpdate } from "./flat/rmsprop.js";
import { flatStep, resolveFlatOptions, stateBuffers, type OptionsByName } from "./factory.js";
import type { FloatArray, OptimizerName } from "./types.js";

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

/**
 * One element's update, re-stated in float64 from the algorithms in PyTorch's torch.optim
 * documentation; `s` is that element's state, under the names `stateBuffers` gives. `maximize`
 * negates the gradient before anything else, as PyTorch's implementation does.
 */
type Reference<O> = (o: O, p: number, g: number, s: State, t: number) => number;
type State = Record<string, number>;

const adamReference =
  (isDecoupled: boolean): Reference<OptionsByName["adam"]> =>
  (o, p, grad, s, t) => {
    const [beta1, beta2] = o.betas;
    let g = o.maximize ? -grad : grad;
    if (isDecoupled)
      p -= o.lr * o.weightDecay * p; // AdamW: θ ← θ - γλθ
    else g += o.weightDecay * p; // Adam: g ← g + λθ
    s.expAvg = beta1 * s.expAvg! + (1 - beta1) * g;
    s.expAvgSq = beta2 * s.expAvgSq! + (1 - beta2) * g * g;
    const mHat = s.expAvg / (1 - beta1 ** t);
    // amsgrad: the running max of the raw second moment, bias-corrected afterwards
    if (o.amsgrad) s.maxExpAvgSq = Math.max(s.maxExpAvgSq!, s.expAvgSq);
    const vHat = (o.amsgrad ? s.maxExpAvgSq! : s.expAvgSq) / (1 - beta2 ** t);
    return p - (o.lr * mHat) / (Math.sqrt(vHat) + o.eps);
  };

const REFERENCES: { [N in OptimizerName]: Reference<OptionsByName[N]> } = {
  adam: adamReference(false),
  adamw: adamReference(true),
  sgd: (o, p, grad, s, t) => {
    let g = (o.maximize ? -grad : grad) + o.weightDecay * p;
    if (o.momentum !== 0) {
      s.momentumBuffer = t > 1 ? o.momentum * s.momentumBuffer! + (1 - o.dampening) * g : g;
      g = o.nesterov ? g + o.momentum * s.momentumBuffer : s.momentumBuffer;
    }
    return p - o.lr * g;
  },
  rmsprop: (o, p, grad, s) => {
    const g = (o.maximize ? -grad : grad) + o.weightDecay * p;
    s.squareAvg = o.alpha * s.squareAvg! + (1 - o.alpha) * g * g;
    let v = s.squareAvg;
    if (o.centered) {
      s.gradAvg = o.alpha * s.gradAvg! + (1 - o.alpha) * g;
      v -= s.gradAvg * s.gradAvg;
    }
    if (o.momentum === 0) return p - (o.lr * g) / (Math.sqrt(v) + o.eps);
    s.momentumBuffer = o.momentum * s.momentumBuffer! + g / (Math.sqrt(v) + o.eps);
    return p - o.lr * s.momentumBuffer;
  },
  adagrad: (o, p, grad, s, t) => {
    const lr = o.lr / (1 + (t - 1) * o.lrDecay);
    const g = (o.maximize ? -grad : grad) + o.weightDecay * p;
    s.sum = s.sum! + g * g;
    return p - (lr * g) / (Math.sqrt(s.sum) + o.eps);
  },
};

describe("flat path", () => {
  for (const name of Object.keys(optionsArb) as OptimizerName[]) {
    it(`${name}: any slicing follows PyTorch's update rule, and equals one whole-buffer call bit for bit`, () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 40 }),
          fc.array(fc.nat(), { maxLength: 6 }),
          fc.boolean(),
          fc.integer(),
          optionsArb[name],
          (n, sliceCuts, isF32, seed, options) => {
            const make = (xs: ArrayLike<number>) => (isF32 ? Float32Array.from(xs) : Float64Array.from(xs));
            const next = rng(seed);
            const specs = stateBuffers(name, options);
            const resolved = resolveFlatOptions(name, options);
            // Flat path: the buffer updated one slice at a time, and a copy updated in one call.
            const sliced = make(Array.from({ length: n }, next));
            const whole = sliced.slice();
            const slicedState = specs.map((b) => make(new Array(n).fill(b.init)));
            const wholeState = slicedState.map((b) => b.slice());
            // Reference: each element on its own, in float64.
            const expected = [...sliced];
            const refState: State[] = expected.map(() => Object.fromEntries(specs.map((b) => [b.name, b.init])));
            const cuts = cutsOf(n, sliceCuts);
            for (let step = 1; step <= 4; step++) {
              const grads = make(Array.from({ length: n }, next));
              for (let k = 1; k < cuts.length; k++)
                flatStep(name, options, {
                  params: sliced,
                  grads,
                  state: slicedState,
                  start: cuts[k - 1]!,
                  end: cuts[k]!,
                  step,
                });
              flatStep(name, options, { params: whole, grads, state: wholeState, start: 0, end: n, step });
              const reference = REFERENCES[name] as Reference<OptionsByName[typeof name]>;
              for (let i = 0; i < n; i++)
                expected[i] = reference(resolved, expected[i]!, grads[i]!, refState[i]!, step);
            }
            expect(bytes(sliced).equals(bytes(whole))).toBe(true);
            for (const [k, b] of slicedState.entries()) expect(bytes(b).equals(bytes(wholeState[k]!))).toBe(true);
            // float64 differs from the reference by evaluation order only; float32 stores round
            // parameters and state to 24 bits after every step.
            const tol = isF32 ? 1e-6 : 1e-12;
            const near = (got: number, want: number) => Math.abs(got - want) <= tol * (1 + Math.abs(want));
            for (let i = 0; i < n; i++) {
              expect(near(sliced[i]!, expected[i]!), `param ${i}: ${sliced[i]} vs ${expected[i]}`).toBe(true);
              specs.forEach((b, k) => {
                const want = refState[i]![b.name]!;
                expect(near(slicedState[k]![i]!, want), `${b.name}[${i}]: ${slicedState[k]![i]} vs ${want}`).toBe(true);
              });
            }
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
