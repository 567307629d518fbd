import { afterEach, describe, expect, test } from "vitest";
import {
  Generator,
  type Tensor,
  gradcheck,
  manualSeed,
  ones,
  randn,
  setDefaultDtype,
  setSampleContext,
  tensor,
  zeros,
} from "../index.js";
import {
  Dropout,
  Embedding,
  Flatten,
  GELU,
  Identity,
  LayerNorm,
  Linear,
  ReLU,
  Sequential,
  Sigmoid,
  Softplus,
  Tanh,
  Unflatten,
} from "./layers.js";
import * as F from "./functional.js";
import * as init from "./init.js";

afterEach(() => {
  setSampleContext(null);
  setDefaultDtype("float32");
});

const f64 = (values: ArrayLike<number>, shape: number[], requiresGrad = false): Tensor =>
  tensor(Float64Array.from(values), { shape, requiresGrad });
const rnd64 = (shape: number[], seed: number, requiresGrad = false): Tensor => {
  const t = randn(shape, { dtype: "float64", generator: new Generator(seed) });
  t.requiresGrad = requiresGrad;
  return t;
};
function expectAllClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-12): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    expect(Math.abs(actual[i]! - expected[i]!), `element ${i}: ${actual[i]} vs ${expected[i]}`).toBeLessThanOrEqual(
      tol * (1 + Math.abs(expected[i]!)),
    );
  }
}
const variance = (v: ArrayLike<number>): number => {
  const a = Array.from(v),
    m = a.reduce((s, x) => s + x, 0) / a.length;
  return a.reduce((s, x) => s + (x - m) ** 2, 0) / a.length;
};

describe("Linear", () => {
  test("forward equals x·Wᵀ + b computed with loops", () => {
    const lin = new Linear(3, 2, { dtype: "float64" });
    const x = rnd64([4, 3], 1),
      W = lin.weight.data,
      b = lin.bias!.data;
    const want: number[] = [];
    for (let n = 0; n < 4; n++)
      for (let o = 0; o < 2; o++) {
        let s = b[o]!;
        for (let i = 0; i < 3; i++) s += x.data[n * 3 + i]! * W[o * 3 + i]!;
        want.push(s);
      }
    expectAllClose(lin.forward(x).data, want);
  });
  test("a 3-D input maps each trailing row and keeps the leading dims", () => {
    const lin = new Linear(3, 2, { dtype: "float64" }),
      x = rnd64([2, 4, 3], 2);
    const y = lin.forward(x);
    expect(y.shape).toEqual([2, 4, 2]);
    expectAllClose(y.data, lin.forward(x.reshape(8, 3)).data);
  });
  test("without bias forward is x·Wᵀ and there is one parameter", () => {
    const lin = new Linear(3, 2, { bias: false, dtype: "float64" }),
      x = rnd64([1, 3], 3);
    expect(lin.parameters()).toEqual([lin.weight]);
    expectAllClose(
      lin.forward(x).data,
      [0, 1].map((o) => [0, 1, 2].reduce((s, i) => s + x.data[i]! * lin.weight.data[o * 3 + i]!, 0)),
    );
  });
  test("a wrong feature count is an error naming both counts and shapes", () => {
    expect(() => new Linear(3, 2).forward(zeros([5, 4]))).toThrow(
      /linear: input has 4 features but the weight \[2, 3\] expects 3 \(input shape \[5, 4\]\)/,
    );
    expect(() => new Linear(0, 2)).toThrow(/Linear: feature sizes must be positive integers, got \(0, 2\)/);
  });
  test("weight and bias are drawn from U(-1/√in, 1/√in), with variance bound²/3", () => {
    manualSeed(0);
    const fanIn = 64,
      bound = 1 / Math.sqrt(fanIn),
      ws: number[] = [],
      bs: number[] = [];
    for (let k = 0; k < 40; k++) {
      const lin = new Linear(fanIn, 32);
      ws.push(...lin.weight.data);
      bs.push(...lin.bias!.data);
    }
    for (const v of [ws, bs]) {
      expect(v.every((x) => Math.abs(x) <= bound)).toBe(true);
      expect(Math.abs(variance(v) / ((bound * bound) / 3) - 1)).toBeLessThan(0.1);
    }
  });
});

describe("init", () => {
  test("calculateGain returns PyTorch's values", () => {
    expect(init.calculateGain("linear")).toBe(1);
    expect(init.calculateGain("sigmoid")).toBe(1);
    expect(init.calculateGain("tanh")).toBeCloseTo(5 / 3, 15);
    expect(init.calculateGain("relu")).toBeCloseTo(Math.sqrt(2), 15);
    expect(init.calculateGain("leaky_relu")).toBeCloseTo(Math.sqrt(2 / (1 + 0.01 ** 2)), 15);
    expect(init.calculateGain("leaky_relu", 0.2)).toBeCloseTo(Math.sqrt(2 / 1.04), 15);
    expect(init.calculateGain("selu")).toBe(0.75);
    expect(() => init.calculateGain("swish" as init.Nonlinearity)).toThrow(
      /calculateGain: unsupported nonlinearity 'swish'/,
    );
  });
  test("xavierUniform_ draws within gain·√(6/(fan_in+fan_out)) with variance bound²/3", () => {
    const t = zeros([300, 200], { dtype: "float64" });
    init.xavierUniform_(t, 2, new Generator(4));
    const bound = 2 * Math.sqrt(6 / 500);
    expect(Array.from(t.data).every((v) => Math.abs(v) <= bound)).toBe(true);
    expect(Math.max(...t.data)).toBeGreaterThan(0.99 * bound);
    expect(Math.abs(variance(t.data) / ((bound * bound) / 3) - 1)).toBeLessThan(0.05);
  });
  test("kaimingNormal_ has std gain/√fan with the fan and nonlinearity asked for", () => {
    const t = zeros([400, 100, 2], { dtype: "float64" });
    init.kaimingNormal_(t, { generator: new Generator(5) });
    expect(Math.abs(Math.sqrt(variance(t.data)) / (Math.sqrt(2) / Math.sqrt(200)) - 1)).toBeLessThan(0.03);
    init.kaimingNormal_(t, { mode: "fan_out", nonlinearity: "tanh", generator: new Generator(6) });
    expect(Math.abs(Math.sqrt(variance(t.data)) / (5 / 3 / Math.sqrt(800)) - 1)).toBeLessThan(0.03);
  });
  test("the same manualSeed gives the same draws", () => {
    const draw = () => {
      manualSeed(42);
      const t = zeros([8, 4]);
      init.kaimingUniform_(t);
      init.normal_(t.reshape(32).narrow(0, 0, 4));
      return [Array.from(t.data), Array.from(new Linear(4, 3).weight.data)];
    };
    expect(draw()).toEqual(draw());
  });
  test("fans cannot be computed for a 1-D tensor", () => {
    expect(() => init.xavierUniform_(zeros([3]))).toThrow(
      /init: fan in and fan out can not be computed for a tensor with fewer than 2 dimensions \(shape \[3\]\)/,
    );
  });
});

describe("Dropout", () => {
  test("in eval mode it returns its input unchanged", () => {
    const d = new Dropout(0.5).eval(),
      x = ones([10]);
    expect(d.forward(x)).toBe(x);
  });
  test("in training it zeroes about p of the elements and scales the rest by 1/(1-p)", () => {
    manualSeed(3);
    const y = new Dropout(0.3).forward(ones([100, 100]));
    const zeroShare = Array.from(y.data).filter((v) => v === 0).length / y.numel;
    expect(Math.abs(zeroShare - 0.3)).toBeLessThan(0.02);
    expect(Array.from(y.data).every((v) => v === 0 || Math.abs(v - 1 / 0.7) < 1e-6)).toBe(true);
  });
  test("the gradient is the mask: zero where dropped, 1/(1-p) elsewhere", () => {
    manualSeed(4);
    const x = ones([50], { requiresGrad: true }),
      y = new Dropout(0.5).forward(x);
    y.sum().backward();
    expect(Array.from(x.grad!.data)).toEqual(Array.from(y.data));
  });
  test("p = 1 zeroes everything and p outside [0, 1] is rejected", () => {
    expect(Array.from(new Dropout(1).forward(ones([4])).data)).toEqual([0, 0, 0, 0]);
    expect(() => new Dropout(1.5)).toThrow(/Dropout: dropout probability has to be between 0 and 1, but got 1.5/);
  });
  test("in a sample context a row's mask depends only on (seed, step, firstSample + row), so 1 worker equals N", () => {
    const x = ones([8, 16]),
      d = new Dropout(0.5);
    setSampleContext({ seed: 9, step: 2, firstSample: 0 });
    const whole = Array.from(d.forward(x).data);
    setSampleContext({ seed: 9, step: 2, firstSample: 0 });
    const first = Array.from(d.forward(ones([3, 16])).data);
    setSampleContext({ seed: 9, step: 2, firstSample: 3 });
    const rest = Array.from(d.forward(ones([5, 16])).data);
    expect([...first, ...rest]).toEqual(whole);
    setSampleContext({ seed: 9, step: 3, firstSample: 0 });
    expect(Array.from(d.forward(x).data)).not.toEqual(whole);
  });
  test("in a sample context a second dropout call in the same pass draws a different mask", () => {
    const d = new Dropout(0.5);
    setSampleContext({ seed: 1, step: 0, firstSample: 0 });
    expect(Array.from(d.forward(ones([4, 16])).data)).not.toEqual(Array.from(d.forward(ones([4, 16])).data));
  });
});

describe("Embedding", () => {
  test("lookup returns the weight rows and accumulates their gradients", () => {
    manualSeed(5);
    const emb = new Embedding(5, 3),
      idx = tensor(
        [
          [1, 4],
          [1, 0],
        ],
        { dtype: "int32" },
      );
    const y = emb.forward(idx);
    expect(y.shape).toEqual([2, 2, 3]);
    const w = emb.weight.data,
      rows = [1, 4, 1, 0];
    expect(Array.from(y.data)).toEqual(rows.flatMap((r) => Array.from(w.subarray(r * 3, r * 3 + 3))));
    y.mul(tensor([1, 2, 3], { dtype: "float32" }))
      .sum()
      .backward();
    expect(Array.from(emb.weight.grad!.data)).toEqual([1, 2, 3, 2, 4, 6, 0, 0, 0, 0, 0, 0, 1, 2, 3]);
  });
  test("the padding row starts at zero, is returned as stored, and gets no gradient", () => {
    const emb = new Embedding(4, 2, 2);
    expect(Array.from(emb.weight.data.subarray(4, 6))).toEqual([0, 0]);
    emb.weight.data.set([5, 6], 4);
    const y = emb.forward(tensor([2, 1, 2], { dtype: "int32" }));
    expect(Array.from(y.data.subarray(0, 2))).toEqual([5, 6]);
    y.sum().backward();
    expect(Array.from(emb.weight.grad!.data)).toEqual([0, 0, 1, 1, 0, 0, 0, 0]);
  });
  test("a negative paddingIdx counts from the end", () => {
    const emb = new Embedding(4, 2, -1);
    expect(emb.paddingIdx).toBe(3);
    expect(Array.from(emb.weight.data.subarray(6, 8))).toEqual([0, 0]);
    emb
      .forward(tensor([3, 0], { dtype: "int32" }))
      .sum()
      .backward();
    expect(Array.from(emb.weight.grad!.data)).toEqual([1, 1, 0, 0, 0, 0, 0, 0]);
    expect(emb.toString()).toBe("Embedding(4, 2, padding_idx=3)");
    expect(() => new Embedding(4, 2, 4)).toThrow(/Embedding: paddingIdx must be an integer in \[-4, 4\), got 4/);
  });
});

describe("LayerNorm", () => {
  test("normalises with the biased variance and eps inside the square root, then scales and shifts", () => {
    const x = rnd64([3, 5], 7),
      g = rnd64([5], 8),
      b = rnd64([5], 9),
      eps = 1e-3;
    const want: number[] = [];
    for (let r = 0; r < 3; r++) {
      const row = Array.from(x.data.subarray(r * 5, r * 5 + 5));
      const m = row.reduce((s, v) => s + v, 0) / 5,
        v = row.reduce((s, u) => s + (u - m) ** 2, 0) / 5;
      row.forEach((u, i) => {
        want.push(((u - m) / Math.sqrt(v + eps)) * g.data[i]! + b.data[i]!);
      });
    }
    expectAllClose(F.layerNorm(x, [5], g, b, eps).data, want);
  });
  test("the module normalises over several trailing dims and starts as weight 1, bias 0", () => {
    setDefaultDtype("float64");
    const ln = new LayerNorm([2, 3]),
      x = rnd64([4, 2, 3], 10);
    const y = ln.forward(x);
    for (let r = 0; r < 4; r++) {
      const row = Array.from(y.data.subarray(r * 6, r * 6 + 6));
      expect(Math.abs(row.reduce((s, v) => s + v, 0))).toBeLessThan(1e-12);
      expect(Math.abs(variance(row) - 1)).toBeLessThan(1e-3);
    }
    expect(ln.toString()).toBe("LayerNorm((2, 3), eps=1e-05, elementwise_affine=True)");
    expect(() => ln.forward(zeros([4, 3, 2]))).toThrow(
      /layerNorm: input shape \[4, 3, 2\] does not end with normalizedShape \[2, 3\]/,
    );
  });
  test("passes gradcheck wrt input, weight and bias in float64", () => {
    const x = rnd64([3, 4], 11, true),
      g = rnd64([4], 12, true),
      b = rnd64([4], 13, true);
    expect(gradcheck((a, w, c) => F.layerNorm(a, [4], w, c, 1e-5), [x, g, b])).toBe(true);
  });
});

describe("activation and shape modules", () => {
  const xs = [-3, -0.5, 0, 0.7, 25];
  const cases: [string, { forward(x: Tensor): Tensor }, (v: number) => number][] = [
    ["ReLU", new ReLU(), (v) => Math.max(v, 0)],
    ["Tanh", new Tanh(), Math.tanh],
    ["Sigmoid", new Sigmoid(), (v) => 1 / (1 + Math.exp(-v))],
    ["Softplus", new Softplus(), (v) => (v > 20 ? v : Math.log1p(Math.exp(v)))],
    ["Softplus(beta=2, threshold=5)", new Softplus(2, 5), (v) => (2 * v > 5 ? v : Math.log1p(Math.exp(2 * v)) / 2)],
    ["GELU", new GELU(), (v) => 0.5 * v * (1 + erfRef(v / Math.SQRT2))],
    [
      "GELU('tanh')",
      new GELU("tanh"),
      (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))),
    ],
  ];
  for (const [name, m, ref] of cases) {
    test(`${name} applies its formula elementwise`, () => {
      expectAllClose(m.forward(f64(xs, [5])).data, xs.map(ref), 1e-7);
    });
  }
  test("Flatten merges dims 1..-1 by default and Identity returns its input", () => {
    const x = zeros([2, 3, 4, 5]);
    expect(new Flatten().forward(x).shape).toEqual([2, 60]);
    expect(new Flatten(0, 1).forward(x).shape).toEqual([6, 4, 5]);
    expect(new Identity().forward(x)).toBe(x);
  });
  test("Unflatten splits a flat dimension, passes shaped input through and names a wrong size", () => {
    const flat = tensor(
      Array.from({ length: 24 }, (_, i) => i),
      { dtype: "float32" },
    ).reshape([2, 12]);
    const u = new Unflatten(1, [3, 2, 2]);
    const y = u.forward(flat);
    expect(y.shape).toEqual([2, 3, 2, 2]);
    expect(Array.from(y.contiguous().data)).toEqual(Array.from(flat.data));
    const shaped = zeros([2, 3, 2, 2]);
    expect(u.forward(shaped)).toBe(shaped);
    expect(() => u.forward(zeros([2, 10]))).toThrow(
      /Unflatten: dimension 1 of input \[2, 10\] must have 12 elements \(3×2×2\) or already be \[3, 2, 2\]/,
    );
    expect(() => new Unflatten(1, [3, 0])).toThrow(/Unflatten: sizes must be positive integers, got \[3, 0\]/);
    expect(u.toString()).toBe("Unflatten(dim=1, unflattened_size=(3, 2, 2))");
  });
  test("Unflatten passes gradients back to the flat input unchanged", () => {
    const x = randn([2, 6], { dtype: "float64", requiresGrad: true });
    expect(
      gradcheck((a) => new Unflatten(1, [2, 3]).forward(a).mul(tensor([[1, 2, 3]], { dtype: "float64" })), [x]),
    ).toBe(true);
  });
  test("a small float64 MLP passes gradcheck wrt its input and every parameter", () => {
    manualSeed(6);
    const net = new Sequential(
      new Linear(3, 4, { dtype: "float64" }),
      new Tanh(),
      new Linear(4, 2, { dtype: "float64" }),
      new GELU(),
    );
    const x = rnd64([5, 3], 14, true),
      params = net.parameters();
    expect(gradcheck((a) => net.forward(a), [x, ...params])).toBe(true);
  });
});

// Taylor series of erf; past |x| = 6, erf is ±1 to double precision and the series would cancel badly.
function erfRef(x: number): number {
  if (Math.abs(x) > 6) return Math.sign(x);
  let sum = 0,
    term = x;
  for (let n = 0; n < 200; n++) {
    sum += term / (2 * n + 1);
    term *= (-x * x) / (n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}
