import { describe, expect, test } from "vitest";
import { Generator, type Tensor, gradcheck, gradgradcheck, ones, randn, tensor, zeros } from "../index.js";
import { cat } from "./shape.js";
import { type BatchNormReducer, batchNorm, groupNorm, setBatchNormReducer } from "./norm.js";

const gen = new Generator(5);
const r = (...shape: number[]): Tensor => randn(shape, { dtype: "float64", generator: gen, requiresGrad: true });
const near = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-12) => {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!)).toBeLessThanOrEqual(tol);
};

describe("batchNorm", () => {
  // Channel 0 holds 1, 2, 3, 4 (mean 2.5, biased variance 1.25, unbiased 5/3); channel 1 is all 2.
  const x = () =>
    tensor(
      [
        [1, 2],
        [2, 2],
        [3, 2],
        [4, 2],
      ],
      { dtype: "float64" },
    );

  test("training normalises with the batch mean and biased variance, worked by hand", () => {
    const y = batchNorm(x(), null, null, null, null, { training: true });
    const s = Math.sqrt(1.25 + 1e-5);
    near(y.data, [-1.5 / s, 0, -0.5 / s, 0, 0.5 / s, 0, 1.5 / s, 0]);
  });

  test("training updates the running statistics in place with momentum, the variance unbiased", () => {
    const rm = zeros([2], { dtype: "float64" }),
      rv = ones([2], { dtype: "float64" });
    const before = rm._version.value;
    batchNorm(x(), rm, rv, null, null, { training: true, momentum: 0.1 });
    // 0.9·0 + 0.1·(2.5, 2) and 0.9·1 + 0.1·(5/3, 0)
    near(rm.data, [0.25, 0.2]);
    near(rv.data, [0.9 + 1 / 6, 0.9]);
    expect(rm._version.value).toBeGreaterThan(before);
    expect(rm.requiresGrad || rv.requiresGrad).toBe(false);
  });

  test("the running statistics follow a leaf that requires grad without joining its graph", () => {
    const input = r(3, 2, 2);
    const rm = zeros([2], { dtype: "float64" }),
      rv = ones([2], { dtype: "float64" });
    const y = batchNorm(input, rm, rv, null, null, { training: true, momentum: 1 });
    expect(y.requiresGrad).toBe(true);
    expect(rm.gradFn).toBeNull();
    near(rm.data, input.mean([0, 2]).data, 1e-12);
    near(rv.data, input.var([0, 2]).data, 1e-12);
  });

  test("evaluation uses the running statistics and the affine map", () => {
    const rm = tensor([1, -1], { dtype: "float64" }),
      rv = tensor([4, 0.25], { dtype: "float64" });
    const w = tensor([2, 3], { dtype: "float64" }),
      b = tensor([0.5, -0.5], { dtype: "float64" });
    const y = batchNorm(x(), rm, rv, w, b, { eps: 0 });
    // channel 0: 2·(v - 1)/2 + 0.5 = v - 0.5; channel 1: 3·(2 + 1)/0.5 - 0.5 = 17.5
    near(y.data, [0.5, 17.5, 1.5, 17.5, 2.5, 17.5, 3.5, 17.5]);
    near(rm.data, [1, -1]);
  });

  test("4-D input: statistics over N, H and W for each channel", () => {
    const input = r(3, 2, 4, 5);
    const y = batchNorm(input, null, null, null, null, { training: true, eps: 0 });
    near(y.mean([0, 2, 3]).data, [0, 0], 1e-12);
    near(y.var([0, 2, 3], { correction: 0 }).data, [1, 1], 1e-12);
  });

  test("float32 against float64", () => {
    const input = r(4, 3, 5);
    const [w, b] = [r(3), r(3)];
    const y64 = batchNorm(input, null, null, w, b, { training: true });
    const y32 = batchNorm(input.to("float32"), null, null, w.to("float32"), b.to("float32"), { training: true });
    expect(y32.dtype).toBe("float32");
    near(y32.data, y64.data, 1e-5);
  });

  const samples: [string, () => Tensor[], (...t: Tensor[]) => Tensor][] = [
    [
      "training, affine",
      () => [r(3, 2, 2), r(2), r(2)],
      (x, w, b) => batchNorm(x, null, null, w, b, { training: true }),
    ],
    ["training, [N, C]", () => [r(4, 3)], (x) => batchNorm(x, null, null, null, null, { training: true })],
    [
      "evaluation",
      () => [r(2, 2, 3), r(2), r(2)],
      (x, w, b) =>
        batchNorm(x, tensor([0.3, -0.2], { dtype: "float64" }), tensor([0.5, 2], { dtype: "float64" }), w, b),
    ],
  ];
  for (const [name, inputs, fn] of samples) {
    test(`${name}: gradcheck and gradgradcheck`, () => {
      const xs = inputs();
      expect(gradcheck(fn, xs)).toBe(true);
      expect(gradgradcheck(fn, xs)).toBe(true);
    });
  }

  test("errors name the problem", () => {
    expect(() => batchNorm(r(1, 3), null, null, null, null, { training: true })).toThrow(
      /batchNorm: expected more than 1 value per channel when training, got input size \[1, 3\]/,
    );
    expect(() => batchNorm(r(2, 3), zeros([2]), ones([2]))).toThrow(
      /batchNorm: runningMean must have shape \[3\] \(one value per channel\), got \[2\]/,
    );
    expect(() => batchNorm(r(2, 3), null, null, r(3, 1), null, { training: true })).toThrow(
      /batchNorm: weight must have shape \[3\]/,
    );
    expect(() => batchNorm(r(2, 3), null, null)).toThrow(
      /batchNorm: running statistics are required when not training/,
    );
    expect(() => batchNorm(r(3), null, null, null, null, { training: true })).toThrow(
      /batchNorm: expected an input \[N, C, \.\.\.\] of 2 or more dims, got \[3\]/,
    );
    expect(() => batchNorm(r(2, 3), null, null, null, null, { training: true, momentum: 2 })).toThrow(
      /batchNorm: momentum must be in \[0, 1\], got 2/,
    );
  });
});

describe("groupNorm", () => {
  test("each sample's group normalised over its channels and positions", () => {
    // One sample, 4 channels of 2 values, 2 groups: group 0 holds 1..4, group 1 holds 10, 10, 20, 20.
    const x = tensor(
      [
        [
          [1, 2],
          [3, 4],
          [10, 10],
          [20, 20],
        ],
      ],
      { dtype: "float64" },
    );
    const y = groupNorm(x, 2, null, null, 0);
    const s = Math.sqrt(1.25);
    near(y.data, [-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s, -1, -1, 1, 1]);
  });

  test("per-channel affine, and one group equals layer norm over all but the batch dim", () => {
    const x = r(2, 4, 3, 3),
      w = r(4),
      b = r(4);
    const y = groupNorm(x, 1, w, b);
    const mu = x.mean([1, 2, 3], true),
      v = x.var([1, 2, 3], { keepdim: true, correction: 0 });
    const ref = x
      .sub(mu)
      .div(v.add(1e-5).sqrt())
      .mul(w.reshape([4, 1, 1]))
      .add(b.reshape([4, 1, 1]));
    near(y.data, ref.data, 1e-12);
  });

  test("float32 against float64", () => {
    const x = r(2, 6, 5);
    near(groupNorm(x.to("float32"), 3).data, groupNorm(x, 3).data, 1e-5);
  });

  test("gradcheck and gradgradcheck", () => {
    const fn = (x: Tensor, w: Tensor, b: Tensor) => groupNorm(x, 2, w, b);
    const xs = [r(2, 4, 3), r(4), r(4)];
    expect(gradcheck(fn, xs)).toBe(true);
    expect(gradgradcheck(fn, xs)).toBe(true);
  });

  test("errors name the problem", () => {
    expect(() => groupNorm(r(2, 6, 2), 4)).toThrow(
      /groupNorm: numGroups \(4\) must be a positive integer that divides the channels of input \[2, 6, 2\]/,
    );
    expect(() => groupNorm(r(2, 6), 3, r(3))).toThrow(/groupNorm: weight must have shape \[6\]/);
  });
});

describe("batchNorm with a replica reducer (synchronised batch norm)", () => {
  // Two replicas holding the same rows: the reducer doubles every sum, as summing both would. Each
  // replica must then compute what one model computes on both copies stacked, forward and backward.
  const doubling = (padding = false): BatchNormReducer & { calls: number } => ({
    calls: 0,
    padding,
    allReduce(v: Float64Array) {
      this.calls++;
      for (let i = 0; i < v.length; i++) v[i] = 2 * v[i]!;
    },
  });

  test("forward, backward and running statistics match one model on the global batch", () => {
    const xs = r(3, 2, 2, 2),
      w = r(2),
      b = r(2),
      probe = randn([3, 2, 2, 2], { dtype: "float64", generator: gen });
    const rm1 = zeros([2], { dtype: "float64" }),
      rv1 = ones([2], { dtype: "float64" });
    const reducer = doubling();
    const before = setBatchNormReducer(reducer);
    let y: Tensor;
    try {
      y = batchNorm(xs, rm1, rv1, w, b, { training: true });
      y.mul(probe).sum().backward();
    } finally {
      setBatchNormReducer(before);
    }
    // forward: count, sum, centred sum of squares; backward: the two sums again
    expect(reducer.calls).toBe(5);
    const gx = xs.grad!.data.slice(),
      gw = w.grad!.data.slice(),
      gb = b.grad!.data.slice();
    xs.grad = null;
    w.grad = null;
    b.grad = null;
    const rm2 = zeros([2], { dtype: "float64" }),
      rv2 = ones([2], { dtype: "float64" });
    const both = cat([xs, xs]);
    const y2 = batchNorm(both, rm2, rv2, w, b, { training: true });
    y2.mul(cat([probe, probe]))
      .sum()
      .backward();
    near(y.data, y2.data.slice(0, y.numel), 1e-12);
    // the stacked copy's input gradient, summed over both copies, is twice one replica's
    near(
      gx.map((g) => 2 * g),
      xs.grad!.data,
      1e-12,
    );
    near(
      gw.map((g) => 2 * g),
      w.grad!.data,
      1e-12,
    );
    near(
      gb.map((g) => 2 * g),
      b.grad!.data,
      1e-12,
    );
    // the unbiased variance uses the global count (24 values per channel, not 12)
    near(rm1.data, rm2.data, 1e-12);
    near(rv1.data, rv2.data, 1e-12);
  });

  test("gradcheck and gradgradcheck through the replica sums (float64, finite differences)", () => {
    // With both replicas equal, a replica's output is a function of its own input alone (the other
    // copy moves with it), and the reduced backward is that function's derivative.
    const xs = r(3, 2, 2),
      w = r(2),
      b = r(2);
    const before = setBatchNormReducer(doubling());
    try {
      const fn = (x: Tensor, wt: Tensor, bs: Tensor) => batchNorm(x, null, null, wt, bs, { training: true });
      expect(gradcheck(fn, [xs, w, b])).toBe(true);
      expect(gradgradcheck(fn, [xs, w, b])).toBe(true);
    } finally {
      setBatchNormReducer(before);
    }
  });

  test("a padding replica's rows count for nothing and give no gradient", () => {
    const xs = r(2, 3, 2),
      w = r(3);
    const before = setBatchNormReducer(doubling(true));
    try {
      expect(() => batchNorm(xs, null, null, w, null, { training: true })).toThrow(
        /more than 1 value per channel when training, got 0 over all replicas/,
      );
    } finally {
      setBatchNormReducer(before);
    }
  });

  test("without a reducer nothing changes (the reducer is removed again)", () => {
    const xs = r(4, 2);
    const prev = setBatchNormReducer(doubling());
    setBatchNormReducer(prev);
    const y = batchNorm(xs, null, null, null, null, { training: true });
    const m = xs.data;
    const mean0 = (m[0]! + m[2]! + m[4]! + m[6]!) / 4;
    const var0 = [0, 2, 4, 6].reduce((s, i) => s + (m[i]! - mean0) ** 2, 0) / 4;
    expect(y.data[0]).toBeCloseTo((m[0]! - mean0) / Math.sqrt(var0 + 1e-5), 12);
  });
});
