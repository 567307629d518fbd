import { describe, expect, test } from "vitest";
import {
  F,
  type GradcheckOptions,
  Generator,
  type Tensor,
  abs,
  add,
  broadcastTo,
  cat,
  chunk,
  clamp,
  clone,
  div,
  dot,
  erf,
  exp,
  expand,
  flatten,
  gather,
  gelu,
  gradcheck,
  grad,
  gradgradcheck,
  indexAdd,
  indexSelect,
  log,
  log1p,
  maskedFill,
  logSoftmax,
  logsumexp,
  matmul,
  max,
  maximum,
  mean,
  min,
  minimum,
  mm,
  mul,
  narrow,
  neg,
  norm,
  outer,
  permute,
  pow,
  randn,
  relu,
  reshape,
  scatterAdd,
  sigmoid,
  slice,
  softmax,
  split,
  softplus,
  sqrt,
  squeeze,
  stack,
  std,
  sub,
  sum,
  sumTo,
  tanh,
  tensor,
  to,
  transpose,
  tril,
  triu,
  unsqueeze,
  var as variance,
  where,
} from "../index.js";
// Imported after index.js so that every op module has registered its name.
import { OPS } from "./op.js";
import { sliceBackward } from "./shape.js";
import { reluGrad } from "./elementwise.js";
import { sigmoidBackward, sigmoidDoubleBackward, tanhBackward, tanhDoubleBackward } from "./activations.js";
import { geluBackward, geluDoubleBackward } from "./gelu.js";
import { logSoftmaxBackward, softmaxBackward } from "./softmax.js";
import { layerNormBackward, layerNormalize } from "./layer-norm.js";
import { linear } from "./linalg.js";
import type { Geometry } from "./conv.js";
import { convolution, convolutionInputGrad, convolutionWeightGrad } from "./convolution.js";
import { poolGather, poolScatter } from "./pool.js";
import { attentionProbs } from "./attention.js";

const gen = new Generator(1234);
/** A float64 leaf with standard normal entries. */
const r = (...shape: number[]): Tensor => randn(shape, { dtype: "float64", generator: gen, requiresGrad: true });
/** A float64 leaf with entries in [0.5, 2): inside the domain of log, sqrt and pow. */
const pos = (...shape: number[]): Tensor => leafOf(shape, () => 0.5 + 1.5 * gen.random());
/** A float64 leaf with |entries| in [0.3, 1.3): away from the kinks of abs, relu and norm at 0. */
const away = (...shape: number[]): Tensor => leafOf(shape, () => (gen.random() < 0.5 ? -1 : 1) * (0.3 + gen.random()));
const idx = (values: number[][] | number[]): Tensor => tensor(values, { dtype: "int32" });

function leafOf(shape: number[], draw: () => number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(Float64Array.from({ length: n }, draw), { shape, requiresGrad: true });
}

interface Sample {
  fn: (...xs: Tensor[]) => Tensor;
  inputs: Tensor[];
  /** Looser checks, for samples whose forward rounds through float32. */
  opts?: GradcheckOptions;
}
const s = (fn: Sample["fn"], ...inputs: Tensor[]): Sample => ({ fn, inputs });

// Window layouts for the convolution ops: 2x2 windows with stride 1, and strided, padded, dilated,
// grouped windows with ceil-mode-like extra rows past the input.
const GEO_PLAIN: Geometry = {
  kernel: [2, 2],
  stride: [1, 1],
  padding: [0, 0],
  dilation: [1, 1],
  out: [2, 2],
  groups: 1,
};
const GEO_STRIDED: Geometry = {
  kernel: [2, 3],
  stride: [2, 1],
  padding: [1, 1],
  dilation: [1, 2],
  out: [3, 2],
  groups: 2,
};

const POOL_INDEX = tensor(
  [
    [0, 4, 4, 8],
    [2, -1, 5, 2],
  ],
  { dtype: "int32" },
);

// Index patterns repeat entries on purpose, so that gradients must accumulate.
const SAMPLES: Record<string, Sample[]> = {
  add: [
    s((a, b) => add(a, b), r(2, 3), r(3)),
    s((a, b) => add(a, b, 2.5), r(2, 3), r(2, 1)),
    s((a) => add(a, 3), r(4)),
  ],
  sub: [
    s((a, b) => sub(a, b), r(2, 1, 3), r(4, 1)),
    s((a, b) => sub(a, b, 0.5), r(3), r(2, 3)),
    s((a) => sub(1, a), r(2)),
  ],
  mul: [s(mul, r(3, 1), r(1, 4)), s((a) => mul(a, a), r(2, 3)), s((a) => mul(a, -1.5), r(3))],
  div: [s(div, r(2, 3), pos(3)), s((a) => div(2, a), pos(2, 2)), s(div, r(2, 1), pos(2, 1, 3))],
  // Constant exponents take their own path (x² as x·x): 2, 1, a fraction and a negative power.
  pow: [
    s(pow, pos(2, 3), r(3)),
    s((a) => pow(a, 3), r(4)),
    s((b) => pow(2, b), r(3)),
    s((a) => pow(a, 2), r(2, 3)),
    s((a) => mul(pow(a, 2), a), r(5)),
    s((a) => pow(a, 1), r(3)),
    s((a) => pow(a, 0.5), pos(4)),
    s((a) => pow(a, -2), pos(2, 2)),
  ],
  neg: [s(neg, r(2, 3))],
  exp: [s(exp, r(2, 3))],
  log: [s(log, pos(2, 3))],
  log1p: [s(log1p, pos(5))],
  sqrt: [s(sqrt, pos(2, 3))],
  tanh: [s(tanh, r(2, 3))],
  sigmoid: [s(sigmoid, r(2, 3)), s((a) => sigmoid(mul(a, 20)), r(4))],
  // y comes through the forward op, so gradients also flow into x through it.
  tanhBackward: [s((g, x) => tanhBackward(g, tanh(x)), r(2, 3), r(2, 3)), s(tanhBackward, r(5), r(5))],
  tanhDoubleBackward: [
    s((gg, g, x) => tanhDoubleBackward(gg, g, tanh(x)), r(2, 3), r(2, 3), r(2, 3)),
    s(tanhDoubleBackward, r(7), r(7), r(7)),
  ],
  sigmoidBackward: [s((g, x) => sigmoidBackward(g, sigmoid(x)), r(2, 3), r(2, 3)), s(sigmoidBackward, r(5), r(5))],
  sigmoidDoubleBackward: [
    s((gg, g, x) => sigmoidDoubleBackward(gg, g, sigmoid(x)), r(2, 3), r(2, 3), r(2, 3)),
    s(sigmoidDoubleBackward, r(7), r(7), r(7)),
  ],
  erf: [s(erf, r(2, 3)), s((a) => erf(mul(a, 3)), r(4))],
  abs: [s(abs, away(2, 3))],
  relu: [s(relu, away(2, 3))],
  reluGrad: [((mask: Tensor) => s((g) => reluGrad(g, mask), r(2, 3)))(away(2, 3).detach())],
  linear: [
    s((x, w, b) => linear(x, w, b), r(3, 4), r(5, 4), r(5)),
    s((x, w, b) => linear(x, w, b), r(1, 2), r(3, 2), r(3)),
  ],
  // GEO_STRIDED's 3 output rows run past the 4 input rows: the kernels read zeros there.
  convolution: [
    s((x, w, b) => convolution(x, w, b, GEO_PLAIN), r(2, 2, 3, 3), r(3, 2, 2, 2), r(3)),
    s((x, w) => convolution(x, w, null, GEO_STRIDED), r(2, 4, 4, 3), r(4, 2, 2, 3)),
  ],
  convolutionInputGrad: [
    s((g, w) => convolutionInputGrad(g, w, GEO_PLAIN, [2, 2, 3, 3]), r(2, 3, 2, 2), r(3, 2, 2, 2)),
    s((g, w) => convolutionInputGrad(g, w, GEO_STRIDED, [2, 4, 4, 3]), r(2, 4, 3, 2), r(4, 2, 2, 3)),
  ],
  convolutionWeightGrad: [
    s((g, x) => convolutionWeightGrad(g, x, GEO_PLAIN, [3, 2, 2, 2]), r(2, 3, 2, 2), r(2, 2, 3, 3)),
    s((g, x) => convolutionWeightGrad(g, x, GEO_STRIDED, [4, 2, 2, 3]), r(2, 4, 3, 2), r(2, 4, 4, 3)),
  ],
  // In-plane positions of 2x2 outputs over 3x3 planes: repeats accumulate, -1 reads nothing.
  poolGather: [s((x) => poolGather(x, POOL_INDEX, [2, 2]), r(1, 2, 3, 3))],
  poolScatter: [s((g) => poolScatter(g, POOL_INDEX, [1, 2, 3, 3]), r(1, 2, 2, 2))],
  softplus: [s((a) => softplus(a), r(2, 3)), s((a) => softplus(a, 2, 5), mul(away(6), 4).detach().requiresGrad_())],
  maximum: [s(maximum, r(2, 3), r(3)), s((a) => maximum(a, 0.1), away(4))],
  minimum: [s(minimum, r(2, 1), r(1, 3)), s((a) => minimum(0.1, a), away(4))],
  clamp: [s((a) => clamp(a, -0.5, 0.5), r(3, 3)), s((a) => clamp(a, null, 0.25), r(5))],
  where: [
    s((a, b) => where(tensor([true, false, true]), a, b), r(2, 3), r(2, 1)),
    s((a) => where(a.gt(0), a, 0.5), away(4)),
  ],
  to: [{ fn: (a) => to(to(a, "float32"), "float64"), inputs: [r(2, 3)], opts: { eps: 1e-2, atol: 1e-4 } }],
  clone: [s((a) => mul(clone(a), a), r(2, 3))],
  sumTo: [s((a) => sumTo(a, [3, 1]), r(2, 3, 4)), s((a) => sumTo(a, [2, 3]), r(2, 3))],
  sum: [s((a) => sum(a), r(2, 3, 4)), s((a) => sum(a, 1), r(2, 3, 4)), s((a) => sum(a, [-1, 0], true), r(2, 3, 4))],
  mean: [s((a) => mean(a), r(2, 3, 4)), s((a) => mean(a, -2, true), r(2, 3, 4)), s((a) => mean(a, [0, 2]), r(2, 3, 4))],
  max: [s((a) => max(a), r(2, 3, 4)), s((a) => max(a, 1, true), r(2, 3, 4)), s((a) => max(a, [0, -1]), r(2, 3, 4))],
  min: [s((a) => min(a), r(2, 3, 4)), s((a) => min(a, -1), r(2, 3, 4)), s((a) => min(a, [0, 1], true), r(2, 3, 4))],
  logsumexp: [
    s((a) => logsumexp(a), r(2, 3, 4)),
    s((a) => logsumexp(a, -1, true), r(2, 3, 4)),
    s((a) => logsumexp(a, [0, 2]), r(2, 3, 4)),
  ],
  broadcastTo: [s((a) => broadcastTo(a, [2, 3, 4]), r(3, 1)), s((a) => broadcastTo(a, [3, 2]), r(2))],
  reshape: [s((a, w) => mul(reshape(a, [3, -1, 2]), w), r(2, 6), r(3, 2, 2))],
  permute: [s((a, w) => mul(permute(a, [2, 0, -2]), w), r(2, 3, 4), r(4, 2, 3))],
  slice: [
    s((a) => slice(a, 0, 1, 5, 2), r(5, 4)),
    s((a) => slice(a, -1, -3), r(5, 4)),
    s((a) => slice(a, 1, 0, undefined, 3), r(2, 7)),
  ],
  sliceBackward: [
    s((g) => sliceBackward(g, [5, 4], 0, 1, 2), r(2, 4)),
    s((g) => sliceBackward(g, [2, 7], 1, 0, 3), r(2, 3)),
  ],
  cat: [s((a, b) => cat([a, b], 0), r(2, 3), r(1, 3)), s((a, b) => cat([a, b, a], -1), r(2, 3), r(2, 2))],
  gather: [
    s(
      (a) =>
        gather(
          a,
          1,
          idx([
            [0, 3],
            [1, 1],
            [2, 0],
          ]),
        ),
      r(3, 4),
    ),
    s((a) => gather(a, 0, idx([[2, 0, 1, 1]])), r(3, 4)),
    s((a) => gather(a, -1, idx([[-1], [0], [2]])), r(3, 4)),
  ],
  scatterAdd: [
    s(
      (a, b) =>
        scatterAdd(
          a,
          0,
          idx([
            [0, 1, 2, 0],
            [2, 2, 0, 1],
          ]),
          b,
        ),
      r(3, 4),
      r(2, 4),
    ),
    s(
      (a, b) =>
        scatterAdd(
          a,
          -1,
          idx([
            [3, 3],
            [0, 1],
          ]),
          b,
        ),
      r(2, 4),
      r(2, 5),
    ),
  ],
  indexSelect: [
    s((a) => indexSelect(a, 0, idx([3, 0, 3])), r(4, 3)),
    s((a) => indexSelect(a, -1, idx([1, 2])), r(2, 3, 4)),
  ],
  indexAdd: [
    s((a, b) => indexAdd(a, 0, idx([1, 3, 1]), b), r(4, 3), r(3, 3)),
    s((a, b) => indexAdd(a, -1, idx([2, 0]), b), r(2, 3, 4), r(2, 3, 2)),
  ],
  mm: [
    s((a, b) => mm(a, b), r(2, 3), r(3, 4)),
    s((a, b) => mm(a, b, true, false), r(3, 2), r(3, 4)),
    s((a, b) => mm(a, b, false, true), r(2, 3), r(4, 3)),
    s((a, b) => mm(a, b, true, true), r(2, 3, 2), r(2, 4, 3)),
    s((a, b) => mm(a, b), r(2, 3, 4), r(2, 4, 5)),
  ],
  gelu: [
    s((a) => gelu(a), r(2, 3)),
    s((a) => gelu(a, { approximate: "tanh" }), r(2, 3)),
    s((a) => gelu(mul(a, 3)), r(7)), // past |x|/√2 = 2, where Φ comes from the continued fraction
  ],
  geluBackward: [
    s((g, x) => geluBackward(g, x), r(2, 3), r(2, 3)),
    s((g, x) => geluBackward(g, mul(x, 3), { approximate: "tanh" }), r(5), r(5)),
  ],
  geluDoubleBackward: [
    s((gg, g, x) => geluDoubleBackward(gg, g, x), r(2, 3), r(2, 3), r(2, 3)),
    s((gg, g, x) => geluDoubleBackward(gg, g, x, { approximate: "tanh" }), r(7), r(7), r(7)),
    s((gg, g, x) => geluDoubleBackward(gg, g, mul(x, 2), { approximate: "tanh" }), r(5), r(5), r(5)),
  ],
  logSoftmax: [
    s((a) => logSoftmax(a), r(2, 3)),
    s((a) => logSoftmax(a, 0), r(3, 2)),
    s((a) => logSoftmax(a, 1), r(2, 3, 2)),
  ],
  logSoftmaxBackward: [
    s((g, x) => logSoftmaxBackward(g, logSoftmax(x, -1), -1), r(2, 3), r(2, 3)),
    s((g, x) => logSoftmaxBackward(g, logSoftmax(x, 1), 1), r(2, 3, 2), r(2, 3, 2)),
  ],
  softmax: [s((a) => softmax(a), r(2, 3)), s((a) => softmax(a, -2), r(3, 2, 2)), s((a) => softmax(a, 0), r(5))],
  layerNormalize: [s((a) => layerNormalize(a, 1), r(3, 5)), s((a) => layerNormalize(a, 2, 0.1), r(2, 3, 2))],
  layerNormBackward: [
    s((g, x) => layerNormBackward(g, x, 1), r(3, 5), r(3, 5)),
    s((g, x) => layerNormBackward(g, x, 2, 0.1), r(2, 3, 2), r(2, 3, 2)),
  ],
  softmaxBackward: [
    s((g, x) => softmaxBackward(g, softmax(x, -1), -1), r(2, 3), r(2, 3)),
    s((g, x) => softmaxBackward(g, softmax(x, 1), 1), r(2, 3, 2), r(2, 3, 2)),
    s((g, p) => softmaxBackward(g, p, -1), r(3, 5), r(3, 5)),
  ],
  var: [
    s((a) => variance(a), r(2, 3)),
    s((a) => variance(a, 1, { keepdim: true }), r(2, 3)),
    s((a) => variance(a, [0, -1], { correction: 0 }), r(2, 3, 2)),
  ],
  std: [s((a) => std(a), r(2, 3)), s((a) => std(a, 0, { keepdim: true }), r(3, 2))],
  norm2: [s((a) => norm(a, 2, 1), r(2, 3)), s((a) => norm(a, 2, [0, 1], true), r(3, 2))],
  attentionProbs: [
    s((q, k) => attentionProbs(q, k, null, 0.5), r(2, 3, 2), r(2, 4, 2)),
    s((q, k, b) => attentionProbs(q, k, b, 1.3, true), r(3, 2), r(3, 2), r(3, 1)),
  ],
  scaledDotProductAttention: [
    s((q, k, v) => F.scaledDotProductAttention(q, k, v), r(2, 3, 2), r(2, 4, 2), r(2, 4, 3)),
    s((q, k, v) => F.scaledDotProductAttention(q, k, v, { isCausal: true }), r(2, 1, 3, 2), r(1, 2, 3, 2), r(3, 2)),
    s(
      (q, k, v, m) => F.scaledDotProductAttention(q, k, v, { attnMask: m, scale: 0.7 }),
      r(2, 3, 2),
      r(2, 4, 2),
      r(2, 4, 2),
      r(3, 4),
    ),
    s(
      (q, k, v) =>
        F.scaledDotProductAttention(q, k, v, {
          attnMask: tensor([
            [true, false, true],
            [false, true, true],
          ]),
        }),
      r(2, 2, 2),
      r(2, 3, 2),
      r(2, 3, 1),
    ),
  ],
  packedSelfAttention: [
    s((qkv) => F.packedSelfAttention(qkv, 2, { isCausal: true }), r(2, 3, 12)),
    s((qkv) => F.packedSelfAttention(qkv, 1, { scale: 0.6 }), r(1, 4, 6)),
  ],
  norm: [
    s((a) => norm(a), r(2, 3)),
    s((a) => norm(a, 1, 1), away(2, 3)),
    s((a) => norm(a, 3, [0]), away(3, 2)),
    s((a) => norm(a, Infinity, -1, true), away(2, 3)),
  ],
};

// Functions outside OPS (composed from registered ops) still get their own checks.
const COMPOSED: Record<string, Sample[]> = {
  matmul: [
    s(matmul, r(3), r(3)),
    s(matmul, r(3), r(3, 4)),
    s(matmul, r(2, 3), r(3)),
    s(matmul, r(2, 3), r(3, 4)),
    s(matmul, r(2, 1, 3, 4), r(5, 4, 2)),
    s(matmul, r(2, 3, 4), r(4, 2)),
    s(matmul, r(3, 4), r(2, 4, 2)),
    s(matmul, r(3), r(2, 3, 2)),
  ],
  dot: [s(dot, r(4), r(4))],
  outer: [s(outer, r(3), r(2))],
  expand: [s((a) => expand(a, [2, -1, 4]), r(3, 1))],
  transpose: [s((a, w) => mul(transpose(a, 0, -1), w), r(2, 3, 4), r(4, 3, 2)), s((a) => transpose(a), r(2, 3))],
  narrow: [s((a) => narrow(a, 1, 1, 2), r(2, 4)), s((a) => narrow(a, 0, -2, 2), r(3, 2))],
  squeeze: [s((a, w) => mul(squeeze(a), w), r(3, 1, 2), r(3, 2)), s((a) => squeeze(a, -1), r(2, 1))],
  unsqueeze: [s((a, w) => mul(unsqueeze(a, -1), w), r(2, 3), r(2, 3, 4))],
  flatten: [s((a, w) => mul(flatten(a, 1), w), r(2, 3, 4), r(2, 12))],
  stack: [s((a, b) => stack([a, b, a], 1), r(2, 3), r(2, 3))],
  maskedFill: [s((a) => maskedFill(a, tensor([[true], [false]]), 0.5), r(2, 3))],
  tril: [s((a) => tril(a), r(3, 4)), s((a) => tril(a, -1), r(2, 3, 3))],
  triu: [s((a) => triu(a, 1), r(4, 3))],
  split: [s((a) => cat(split(a, [1, 3], 1).reverse(), 1), r(2, 4))],
  chunk: [s((a) => mul(chunk(a, 2, 0)[0]!, chunk(a, 2, 0)[1]!), r(4, 3))],
};

describe("gradients of every registered op", () => {
  test("every op in OPS has gradient samples", () => {
    expect([...OPS].filter((name) => !(name in SAMPLES))).toEqual([]);
  });

  test("every sampled name is a registered op", () => {
    expect(Object.keys(SAMPLES).filter((name) => !OPS.has(name))).toEqual([]);
  });

  for (const [name, samples] of Object.entries({ ...SAMPLES, ...COMPOSED })) {
    test.each(samples.map((sample, i) => [i, sample] as const))(
      `${name} sample %i passes gradcheck and gradgradcheck`,
      (_i, sample) => {
        expect(gradcheck(sample.fn, sample.inputs, sample.opts)).toBe(true);
        expect(gradgradcheck(sample.fn, sample.inputs, sample.opts)).toBe(true);
      },
    );
  }
});

describe("pow with a constant exponent", () => {
  const values = [-2.5, -1, -0.3, 0, 0.7, 1.9, 3.1e-20, 1e20];

  test("x² is x·x rounded once in float32, and other exponents match x ** p", () => {
    const x = tensor(Float32Array.from(values));
    // (3.1e-20)² is subnormal in float32: stored as zero, as mul stores it.
    const square = values.map((v) => Math.fround(Math.fround(v) ** 2)).map((v) => (v < 1.1754943508222875e-38 ? 0 : v));
    expect([...(pow(x, 2).data as Float32Array)]).toEqual(square);
    expect([...(pow(x, 2).data as Float32Array)]).toEqual([...(mul(x, x).data as Float32Array)]);
    expect([...(pow(x, 3).data as Float32Array)]).toEqual(values.map((v) => Math.fround(Math.fround(v) ** 3)));
    expect(pow(x, 2).dtype).toBe("float32");
    // An integer tensor keeps its dtype (the general path): 3² = 9 as int32.
    const i = pow(tensor([3, -2], { dtype: "int32" }), 2);
    expect([i.dtype, ...i.data]).toEqual(["int32", 9, 4]);
  });

  test("gradients follow p·x^(p-1) to the third order", () => {
    const x = tensor([-1.5, 0.5, 2], { dtype: "float64", requiresGrad: true });
    const [d1] = grad(pow(x, 3).sum(), [x], { createGraph: true });
    expect([...d1!.data]).toEqual([6.75, 0.75, 12]); // 3x²
    const [d2] = grad(d1!.sum(), [x], { createGraph: true });
    expect([...d2!.data]).toEqual([-9, 3, 12]); // 6x
    const [d3] = grad(d2!.sum(), [x]);
    expect([...d3!.data]).toEqual([6, 6, 6]);
    const [s1] = grad(pow(x, 2).sum(), [x], { createGraph: true });
    expect([...s1!.data]).toEqual([-3, 1, 4]); // 2x
    const [s2] = grad(s1!.sum(), [x]);
    expect([...s2!.data]).toEqual([2, 2, 2]);
  });

  test("a zero exponent still has a zero gradient, also at x = 0", () => {
    const x = tensor([0, 2], { dtype: "float64", requiresGrad: true });
    const [d] = grad(pow(x, 0).sum(), [x]);
    expect([...d!.data]).toEqual([0, 0]);
  });
});
