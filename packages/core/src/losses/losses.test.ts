import { describe, expect, test } from "vitest";
import { Generator, type Tensor, gradcheck, gradgradcheck, randn, tensor } from "../index.js";
import {
  type Reduction,
  binaryCrossEntropyWithLogits,
  crossEntropy,
  huberLoss,
  l1Loss,
  mseLoss,
  nllLoss,
  smoothL1Loss,
} from "./losses.js";

// Every expected value is computed here from the formula in PyTorch's documentation, with plain
// JavaScript loops over float64 numbers, independently of the tensor ops under test.

const f64 = (values: number[], shape: number[], requiresGrad = false): Tensor =>
  tensor(Float64Array.from(values), { shape, requiresGrad });
const i32 = (values: number[], shape = [values.length]): Tensor => tensor(Int32Array.from(values), { shape });
const draw = (n: number, seed: number, scale = 1): number[] =>
  Array.from(randn([n], { dtype: "float64", generator: new Generator(seed) }).data, (v) => v * scale);

function expectClose(actual: Tensor, expected: number | number[], tol = 1e-12): void {
  const want = typeof expected === "number" ? [expected] : expected;
  expect(actual.numel).toBe(want.length);
  want.forEach((w, i) => {
    const a = Number(actual.data[i]);
    expect(Math.abs(a - w), `element ${i}: ${a} vs ${w}`).toBeLessThanOrEqual(tol * (1 + Math.abs(w)));
  });
}

function reduceRef(l: number[], reduction: Reduction): number | number[] {
  const s = l.reduce((a, b) => a + b, 0);
  return reduction === "none" ? l : reduction === "sum" ? s : s / l.length;
}

const REDUCTIONS: Reduction[] = ["none", "sum", "mean"];
const logSigmoid = (x: number): number => (x >= 0 ? -Math.log1p(Math.exp(-x)) : x - Math.log1p(Math.exp(x)));
function logSoftmaxRow(row: number[]): number[] {
  const m = Math.max(...row);
  const lse = m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
  return row.map((v) => v - lse);
}

const X = draw(12, 1, 1.5),
  Y = draw(12, 2, 1.5);
const pointwise: [string, (x: Tensor, y: Tensor, r: Reduction) => Tensor, (d: number) => number][] = [
  ["mseLoss", (x, y, r) => mseLoss(x, y, { reduction: r }), (d) => d * d],
  ["l1Loss", (x, y, r) => l1Loss(x, y, { reduction: r }), (d) => Math.abs(d)],
  [
    "huberLoss delta 0.7",
    (x, y, r) => huberLoss(x, y, { reduction: r, delta: 0.7 }),
    (d) => (Math.abs(d) < 0.7 ? 0.5 * d * d : 0.7 * (Math.abs(d) - 0.35)),
  ],
  [
    "smoothL1Loss beta 0.6",
    (x, y, r) => smoothL1Loss(x, y, { reduction: r, beta: 0.6 }),
    (d) => (Math.abs(d) < 0.6 ? (0.5 * d * d) / 0.6 : Math.abs(d) - 0.3),
  ],
  ["smoothL1Loss beta 0", (x, y, r) => smoothL1Loss(x, y, { reduction: r, beta: 0 }), (d) => Math.abs(d)],
];

describe("pointwise regression losses", () => {
  for (const [name, fn, ref] of pointwise) {
    for (const r of REDUCTIONS) {
      test(`${name} with reduction ${r} equals the documented formula`, () => {
        expectClose(
          fn(f64(X, [3, 4]), f64(Y, [3, 4]), r),
          reduceRef(
            X.map((x, i) => ref(x - Y[i]!)),
            r,
          ),
        );
      });
    }
    test(`${name} passes gradcheck and gradgradcheck wrt input`, () => {
      const x = f64(X, [3, 4], true),
        y = f64(Y, [3, 4]);
      expect(gradcheck((a) => fn(a, y, "mean"), [x])).toBe(true);
      expect(gradgradcheck((a) => fn(a, y, "sum"), [x])).toBe(true);
    });
  }
  test("smoothL1Loss with the default beta of 1 equals huberLoss with delta 1", () => {
    expectClose(smoothL1Loss(f64(X, [12]), f64(Y, [12])), huberLoss(f64(X, [12]), f64(Y, [12])).item());
  });
});

describe("binaryCrossEntropyWithLogits", () => {
  const x = draw(6, 3, 2),
    y = [0, 1, 0.3, 1, 0, 0.8];
  const w = [0.5, 2],
    pw = [3, 0.25];
  // l = -w·[pw·y·log σ(x) + (1 - y)·log(1 - σ(x))], weight and posWeight broadcast over [3, 2]
  const ref = (xs: number[], ys: number[], withWeights: boolean) =>
    xs.map((xi, i) => {
      const c = i % 2,
        p = withWeights ? pw[c]! : 1,
        wc = withWeights ? w[c]! : 1;
      return -wc * (p * ys[i]! * logSigmoid(xi) + (1 - ys[i]!) * logSigmoid(-xi));
    });
  for (const r of REDUCTIONS) {
    test(`reduction ${r} without weights equals the documented formula`, () => {
      expectClose(
        binaryCrossEntropyWithLogits(f64(x, [3, 2]), f64(y, [3, 2]), { reduction: r }),
        reduceRef(ref(x, y, false), r),
      );
    });
    test(`reduction ${r} with weight and posWeight equals the documented formula`, () => {
      const out = binaryCrossEntropyWithLogits(f64(x, [3, 2]), f64(y, [3, 2]), {
        reduction: r,
        weight: f64(w, [2]),
        posWeight: f64(pw, [2]),
      });
      expectClose(out, reduceRef(ref(x, y, true), r));
    });
  }
  test("logits of ±100 give finite losses and gradients equal to the formula", () => {
    const xs = [100, -100, 100, -100],
      ys = [1, 0, 0, 1];
    const xt = f64(xs, [4], true);
    const out = binaryCrossEntropyWithLogits(xt, f64(ys, [4]), { reduction: "none" });
    expectClose(out, ref(xs, ys, false));
    expectClose(out, [0, 0, 100, 100]);
    out.sum().backward();
    // d/dx = σ(x) - y
    expectClose(xt.grad!, [0, 0, 1, -1]);
  });
  test("passes gradcheck and gradgradcheck wrt input with weight and posWeight", () => {
    const xt = f64(x, [3, 2], true),
      opts = { weight: f64(w, [2]), posWeight: f64(pw, [2]) };
    expect(gradcheck((a) => binaryCrossEntropyWithLogits(a, f64(y, [3, 2]), opts), [xt])).toBe(true);
    expect(gradgradcheck((a) => binaryCrossEntropyWithLogits(a, f64(y, [3, 2]), opts), [xt])).toBe(true);
  });
});

// Class-index losses: logits [N=5, C=4], one target ignored (ignoreIndex 2 is a valid class id).
const N = 5,
  C = 4,
  LOGITS = draw(N * C, 4, 2),
  W = [0.3, 1.7, 0.9, 2.2];
const TARGETS = [1, 2, 0, 3, 2];
const rows = (v: number[], n: number, c: number) => Array.from({ length: n }, (_, i) => v.slice(i * c, (i + 1) * c));

/** PyTorch's nll formula: l_n = -w[y_n]·x[n, y_n], zero when ignored; mean divides by Σ w[y_n]. */
function nllRef(logp: number[][], t: number[], r: Reduction, w?: number[], ignore = -100): number | number[] {
  const l = t.map((c, n) => (c === ignore ? 0 : -(w ? w[c]! : 1) * logp[n]![c]!));
  const wsum = t.reduce((a, c) => a + (c === ignore ? 0 : w ? w[c]! : 1), 0);
  return r === "mean" ? l.reduce((a, b) => a + b, 0) / wsum : reduceRef(l, r);
}

/** (1-ε)·nll + (ε/C)·smooth with smooth_n = -Σ_c w_c·log p_nc, zero when ignored. */
function ceRef(logits: number[][], t: number[], r: Reduction, o: { w?: number[]; ignore?: number; eps?: number } = {}) {
  const logp = logits.map(logSoftmaxRow),
    eps = o.eps ?? 0,
    ignore = o.ignore ?? -100,
    c = logits[0]!.length;
  const nll = nllRef(logp, t, r, o.w, ignore);
  const smooth = logp.map((row, n) => (t[n] === ignore ? 0 : -row.reduce((a, v, k) => a + (o.w ? o.w[k]! : 1) * v, 0)));
  const denom = t.reduce((a, k) => a + (k === ignore ? 0 : o.w ? o.w[k]! : 1), 0);
  const sm = r === "mean" ? smooth.reduce((a, b) => a + b, 0) / denom : reduceRef(smooth, r);
  if (typeof nll === "number") return (1 - eps) * nll + (eps / c) * (sm as number);
  return nll.map((v, i) => (1 - eps) * v + (eps / c) * (sm as number[])[i]!);
}

describe("nllLoss", () => {
  const logp = rows(LOGITS, N, C).map(logSoftmaxRow);
  for (const r of REDUCTIONS) {
    test(`reduction ${r} with weight and ignoreIndex equals the documented formula`, () => {
      const out = nllLoss(f64(logp.flat(), [N, C]), i32(TARGETS), {
        reduction: r,
        weight: f64(W, [C]),
        ignoreIndex: 2,
      });
      expectClose(out, nllRef(logp, TARGETS, r, W, 2));
    });
  }
  test("mean divides by the summed weights of the non-ignored targets", () => {
    const out = nllLoss(f64(logp.flat(), [N, C]), i32(TARGETS), { weight: f64(W, [C]), ignoreIndex: 2 });
    const num = -(W[1]! * logp[0]![1]! + W[0]! * logp[2]![0]! + W[3]! * logp[3]![3]!);
    expectClose(out, num / (W[1]! + W[0]! + W[3]!));
  });
  test("passes gradcheck and gradgradcheck wrt input", () => {
    const x = f64(logp.flat(), [N, C], true),
      opts = { weight: f64(W, [C]), ignoreIndex: 2 };
    expect(gradcheck((a) => nllLoss(a, i32(TARGETS), opts), [x])).toBe(true);
    expect(gradgradcheck((a) => nllLoss(a, i32(TARGETS), opts), [x])).toBe(true);
  });
});

describe("crossEntropy with class indices", () => {
  const logits = rows(LOGITS, N, C);
  const cases: [string, { w?: number[]; ignore?: number; eps?: number }][] = [
    ["no options", {}],
    ["weight", { w: W }],
    ["ignoreIndex", { ignore: 2 }],
    ["labelSmoothing 0.2", { eps: 0.2 }],
    ["weight, ignoreIndex and labelSmoothing 0.2", { w: W, ignore: 2, eps: 0.2 }],
    ["labelSmoothing 0.3 and ignoreIndex", { ignore: 2, eps: 0.3 }],
  ];
  const optsOf = (o: { w?: number[]; ignore?: number; eps?: number }, r: Reduction) => ({
    reduction: r,
    weight: o.w ? f64(o.w, [C]) : undefined,
    ignoreIndex: o.ignore,
    labelSmoothing: o.eps,
  });
  for (const [name, o] of cases) {
    for (const r of REDUCTIONS) {
      test(`${name}, reduction ${r}, equals the documented formula`, () => {
        expectClose(crossEntropy(f64(LOGITS, [N, C]), i32(TARGETS), optsOf(o, r)), ceRef(logits, TARGETS, r, o));
      });
    }
    test(`${name}: passes gradcheck and gradgradcheck wrt input`, () => {
      const x = f64(LOGITS, [N, C], true);
      expect(gradcheck((a) => crossEntropy(a, i32(TARGETS), optsOf(o, "mean")), [x])).toBe(true);
      expect(gradgradcheck((a) => crossEntropy(a, i32(TARGETS), optsOf(o, "mean")), [x])).toBe(true);
    });
  }
  test("a [N, C, d] input is the same as its [N·d, C] rows", () => {
    const d = 3,
      v = draw(2 * C * d, 5),
      t = [0, 3, 1, 2, 2, 1];
    // element (n, c, k) of the input lives at (n·C + c)·d + k
    const flat = Array.from({ length: 2 * d }, (_, m) =>
      Array.from({ length: C }, (_, c) => v[(Math.floor(m / d) * C + c) * d + (m % d)]!),
    );
    for (const r of REDUCTIONS) {
      const o = { w: W, ignore: 1, eps: 0.1 };
      const out = crossEntropy(f64(v, [2, C, d]), i32(t, [2, d]), optsOf(o, r));
      if (r === "none") expect(out.shape).toEqual([2, d]);
      expectClose(out, ceRef(flat, t, r, o));
    }
    const x = f64(v, [2, C, d], true);
    expect(gradcheck((a) => crossEntropy(a, i32(t, [2, d]), { labelSmoothing: 0.1 }), [x])).toBe(true);
    expect(gradgradcheck((a) => crossEntropy(a, i32(t, [2, d]), { labelSmoothing: 0.1 }), [x])).toBe(true);
  });
  test("an unbatched [C] input with a 0-d target is one sample", () => {
    const out = crossEntropy(f64(logits[0]!, [C]), tensor(3, { dtype: "int32" }), { reduction: "none" });
    expect(out.shape).toEqual([]);
    expectClose(out, -logSoftmaxRow(logits[0]!)[3]!);
    expectClose(crossEntropy(f64(logits[0]!, [C]), tensor(3, { dtype: "int32" })), -logSoftmaxRow(logits[0]!)[3]!);
  });
});

describe("crossEntropy with class probabilities", () => {
  const probs = rows(draw(N * C, 6), N, C).map((row) => {
    const e = row.map(Math.exp),
      s = e.reduce((a, b) => a + b);
    return e.map((v) => v / s);
  });
  // l_n = -Σ_c w_c·y'_nc·log p_nc with y' = y(1-ε) + ε/C; mean divides by N
  const ref = (r: Reduction, w?: number[], eps = 0) =>
    reduceRef(
      rows(LOGITS, N, C)
        .map(logSoftmaxRow)
        .map((lp, n) => -lp.reduce((a, v, c) => a + (w ? w[c]! : 1) * (probs[n]![c]! * (1 - eps) + eps / C) * v, 0)),
      r,
    );
  for (const r of REDUCTIONS) {
    test(`reduction ${r} with weight and labelSmoothing equals the documented formula`, () => {
      const out = crossEntropy(f64(LOGITS, [N, C]), f64(probs.flat(), [N, C]), {
        reduction: r,
        weight: f64(W, [C]),
        labelSmoothing: 0.25,
      });
      expectClose(out, ref(r, W, 0.25));
    });
    test(`reduction ${r} without options equals the documented formula`, () => {
      expectClose(crossEntropy(f64(LOGITS, [N, C]), f64(probs.flat(), [N, C]), { reduction: r }), ref(r));
    });
  }
  test("passes gradcheck and gradgradcheck wrt input", () => {
    const x = f64(LOGITS, [N, C], true),
      opts = { weight: f64(W, [C]), labelSmoothing: 0.25 };
    expect(gradcheck((a) => crossEntropy(a, f64(probs.flat(), [N, C]), opts), [x])).toBe(true);
    expect(gradgradcheck((a) => crossEntropy(a, f64(probs.flat(), [N, C]), opts), [x])).toBe(true);
  });
});

describe("loss errors", () => {
  const a = f64(draw(6, 7), [2, 3]),
    b = f64(draw(6, 8), [3, 2]);
  test("a shape mismatch names both shapes", () => {
    expect(() => mseLoss(a, b)).toThrow(/mseLoss: input shape \[2, 3\] and target shape \[3, 2\]/);
    expect(() => l1Loss(a, b)).toThrow(/l1Loss: .*\[2, 3\].*\[3, 2\]/);
    expect(() => binaryCrossEntropyWithLogits(a, b)).toThrow(/binaryCrossEntropyWithLogits: .*\[2, 3\].*\[3, 2\]/);
    expect(() => crossEntropy(a, i32([0, 1, 2]))).toThrow(
      /crossEntropy: expected target of shape \[2\] for input of shape \[2, 3\], got \[3\]/,
    );
    expect(() => crossEntropy(a, b)).toThrow(/crossEntropy: .*\[2, 3\].*\[3, 2\]/);
  });
  test("a target out of range names the target value and the class count", () => {
    expect(() => crossEntropy(a, i32([0, 5]))).toThrow(
      /crossEntropy: target 5 at position 1 is out of bounds for 3 classes/,
    );
    expect(() => nllLoss(a, i32([-1, 0]))).toThrow(/nllLoss: target -1 at position 0 is out of bounds for 3 classes/);
  });
  test("an unknown reduction is rejected with its name", () => {
    const bad = { reduction: "avg" as Reduction };
    expect(() => mseLoss(a, a, bad)).toThrow(/mseLoss: reduction must be 'mean', 'sum' or 'none', got 'avg'/);
    expect(() => nllLoss(a, i32([0, 1]), bad)).toThrow(/nllLoss: reduction must be .* got 'avg'/);
    expect(() => crossEntropy(a, i32([0, 1]), { ...bad, labelSmoothing: 0.1 })).toThrow(
      /crossEntropy: reduction must be .* got 'avg'/,
    );
    expect(() => crossEntropy(a, a, bad)).toThrow(/crossEntropy: reduction must be .* got 'avg'/);
  });
  test("labelSmoothing outside [0, 1] is rejected", () => {
    expect(() => crossEntropy(a, i32([0, 1]), { labelSmoothing: 1.5 })).toThrow(
      /crossEntropy: labelSmoothing must be in \[0, 1\], got 1.5/,
    );
    expect(() => crossEntropy(a, i32([0, 1]), { labelSmoothing: -0.1 })).toThrow(/got -0.1/);
  });
  test("a weight of the wrong size names the class count and its shape", () => {
    expect(() => crossEntropy(a, i32([0, 1]), { weight: f64([1, 2], [2]) })).toThrow(
      /crossEntropy: weight should be a 1-D tensor of 3 class weights, got shape \[2\]/,
    );
    expect(() => crossEntropy(a, a, { weight: f64([1, 2, 3, 4], [4]) })).toThrow(
      /crossEntropy: weight .* 3 class weights, got shape \[4\]/,
    );
    expect(() => nllLoss(a, i32([0, 1]), { weight: f64([1, 2, 3, 4], [2, 2]) })).toThrow(
      /nllLoss: weight .* got shape \[2, 2\]/,
    );
  });
  test("huberLoss rejects delta <= 0 and smoothL1Loss rejects beta < 0", () => {
    expect(() => huberLoss(a, a, { delta: 0 })).toThrow(/huberLoss: delta must be > 0, got 0/);
    expect(() => smoothL1Loss(a, a, { beta: -1 })).toThrow(/smoothL1Loss: beta must be >= 0, got -1/);
  });
});
