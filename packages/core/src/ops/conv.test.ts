import { describe, expect, test } from "vitest";
import { Generator, type Tensor, grad, gradcheck, gradgradcheck, randn, tensor } from "../index.js";
import { type Conv2dOptions, conv1d, conv2d } from "./conv.js";

const gen = new Generator(77);
const r = (...shape: number[]): Tensor => randn(shape, { dtype: "float64", generator: gen, requiresGrad: true });

/**
 * Convolution by its definition, with nested loops over plain arrays (no im2col):
 * y[n, o, i, j] = b[o] + Σ_{c in o's group, a, e} w[o, c, a, e] · x[n, g·cg + c, i·s - p + a·d, j·s - p + e·d].
 */
function referenceConv(x: Tensor, w: Tensor, b: Tensor | null, s: number[], p: number[], d: number[], groups: number) {
  const [n, c, h, wd] = x.shape as [number, number, number, number];
  const [co, cg, kh, kw] = w.shape as [number, number, number, number];
  const oh = Math.floor((h + 2 * p[0]! - d[0]! * (kh - 1) - 1) / s[0]!) + 1;
  const ow = Math.floor((wd + 2 * p[1]! - d[1]! * (kw - 1) - 1) / s[1]!) + 1;
  const out: number[] = [];
  const X = (a: number, ch: number, y: number, z: number) =>
    y < 0 || y >= h || z < 0 || z >= wd ? 0 : Number(x.data[((a * c + ch) * h + y) * wd + z]);
  for (let a = 0; a < n; a++)
    for (let o = 0; o < co; o++) {
      const g = Math.floor(o / (co / groups));
      for (let i = 0; i < oh; i++)
        for (let j = 0; j < ow; j++) {
          let acc = b ? Number(b.data[o]) : 0;
          for (let ci = 0; ci < cg; ci++)
            for (let u = 0; u < kh; u++)
              for (let v = 0; v < kw; v++)
                acc +=
                  Number(w.data[((o * cg + ci) * kh + u) * kw + v]) *
                  X(a, g * cg + ci, i * s[0]! - p[0]! + u * d[0]!, j * s[1]! - p[1]! + v * d[1]!);
          out.push(acc);
        }
    }
  return { shape: [n, co, oh, ow], values: out };
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number): void {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  expect(worst).toBeLessThanOrEqual(tol);
}

describe("conv2d forward", () => {
  const cases: [string, number[], number[], Conv2dOptions & { s: number[]; p: number[]; d: number[] }][] = [
    ["plain", [2, 3, 5, 6], [4, 3, 3, 2], { s: [1, 1], p: [0, 0], d: [1, 1] }],
    ["stride 2 and padding 1", [2, 2, 7, 6], [3, 2, 3, 3], { stride: 2, padding: 1, s: [2, 2], p: [1, 1], d: [1, 1] }],
    [
      "unequal stride, padding and dilation",
      [1, 2, 9, 8],
      [2, 2, 2, 3],
      { stride: [2, 1], padding: [2, 1], dilation: [3, 2], s: [2, 1], p: [2, 1], d: [3, 2] },
    ],
    ["groups 2", [2, 4, 5, 5], [6, 2, 3, 3], { groups: 2, padding: 1, s: [1, 1], p: [1, 1], d: [1, 1] }],
    ["depthwise", [1, 3, 4, 5], [3, 1, 2, 2], { groups: 3, stride: [1, 2], s: [1, 2], p: [0, 0], d: [1, 1] }],
  ];
  for (const [name, xs, ws, opts] of cases) {
    for (const hasBias of [true, false]) {
      test(`${name}${hasBias ? " with bias" : ""} matches the nested-loop definition`, () => {
        const x = r(...xs),
          w = r(...ws),
          b = hasBias ? r(ws[0]!) : null;
        const y = conv2d(x, w, b, opts);
        const ref = referenceConv(x, w, b, opts.s, opts.p, opts.d, opts.groups ?? 1);
        expect(y.shape).toEqual(ref.shape);
        expectClose(y.data, ref.values, 1e-12);
      });
    }
  }

  test("'same' pads to the input size, the odd extra zero after (even kernel, dilation 1 and 2)", () => {
    const x = r(1, 2, 5, 6),
      w = r(3, 2, 2, 4);
    const y = conv2d(x, w, null, { padding: "same" });
    expect(y.shape).toEqual([1, 3, 5, 6]);
    // Total padding (1, 3): 0 rows before and 1 after, 1 column before and 2 after. A reference on an
    // input padded symmetrically by (1, 2) computes a superset; the 'same' output is its window
    // starting one row down (rows before: 1 - 0) and one column to the right (2 - 1).
    const ref = referenceConv(x, w, null, [1, 1], [1, 2], [1, 1], 1);
    const [, , rh, rw] = ref.shape as [number, number, number, number];
    const picked: number[] = [];
    for (let o = 0; o < 3; o++)
      for (let i = 0; i < 5; i++) for (let j = 0; j < 6; j++) picked.push(ref.values[(o * rh + i + 1) * rw + j + 1]!);
    expectClose(y.data, picked, 1e-12);
    expect(conv2d(x, w, null, { padding: "same", dilation: 2 }).shape).toEqual([1, 3, 5, 6]);
  });

  test("'valid' is no padding", () => {
    const x = r(1, 1, 4, 4),
      w = r(1, 1, 3, 3);
    expect(Array.from(conv2d(x, w, null, { padding: "valid" }).data)).toEqual(Array.from(conv2d(x, w).data));
  });

  test("an unbatched [C, H, W] input gives [C_out, oh, ow]", () => {
    const x = r(2, 4, 4),
      w = r(3, 2, 3, 3);
    const y = conv2d(x, w, null, { padding: 1 });
    expect(y.shape).toEqual([3, 4, 4]);
    expectClose(y.data, conv2d(x.reshape([1, 2, 4, 4]), w, null, { padding: 1 }).data, 0);
  });

  test("float32 forward agrees with float64 within float32 rounding", () => {
    const x = r(2, 3, 8, 8),
      w = r(4, 3, 3, 3),
      b = r(4);
    const y64 = conv2d(x, w, b, { padding: 1, stride: 2 });
    const y32 = conv2d(x.to("float32"), w.to("float32"), b.to("float32"), { padding: 1, stride: 2 });
    expect(y32.dtype).toBe("float32");
    expectClose(y32.data, y64.data, 1e-5);
    const g32 = conv2d(x.to("float32"), w.to("float32"), b.to("float32"), { groups: 1, dilation: 2 });
    expectClose(g32.data, conv2d(x, w, b, { dilation: 2 }).data, 1e-5);
  });
});

describe("conv2d against numbers worked by hand (what PyTorch gives)", () => {
  // x = [[1,2,3],[4,5,6],[7,8,9]], w = [[1,2],[3,4]], b = 0.5, as [1, 1, 3, 3] and [1, 1, 2, 2].
  const make = () => ({
    x: tensor(
      [
        [
          [
            [1, 2, 3],
            [4, 5, 6],
            [7, 8, 9],
          ],
        ],
      ],
      { dtype: "float64", requiresGrad: true },
    ),
    w: tensor(
      [
        [
          [
            [1, 2],
            [3, 4],
          ],
        ],
      ],
      { dtype: "float64", requiresGrad: true },
    ),
    b: tensor([0.5], { dtype: "float64", requiresGrad: true }),
  });

  test("stride 1: each output is the 2x2 window dotted with w, plus b; sum's gradients", () => {
    const { x, w, b } = make();
    const y = conv2d(x, w, b);
    // 1·1+2·2+4·3+5·4 = 37, 2+6+15+24 = 47, 4+10+21+32 = 67, 5+12+24+36 = 77; each + 0.5
    expect(y.toArray()).toEqual([
      [
        [
          [37.5, 47.5],
          [67.5, 77.5],
        ],
      ],
    ]);
    y.sum().backward();
    // dx[i, j] = sum of the weights that touch x[i, j]; dw[a, e] = sum of x over the four windows.
    expect(x.grad!.toArray()).toEqual([
      [
        [
          [1, 3, 2],
          [4, 10, 6],
          [3, 7, 4],
        ],
      ],
    ]);
    expect(w.grad!.toArray()).toEqual([
      [
        [
          [12, 16],
          [24, 28],
        ],
      ],
    ]);
    expect(b.grad!.toArray()).toEqual([4]);
  });

  test("stride 2 and padding 1: windows that overlap the zero border", () => {
    const { x, w } = make();
    // (-1,-1): only x00 under w11 -> 4; (-1,1): x01, x02 under w10, w11 -> 6+12 = 18;
    // (1,-1): x10, x20 under w01, w11 -> 8+28 = 36; (1,1): 5+12+24+36 = 77.
    expect(conv2d(x, w, null, { stride: 2, padding: 1 }).toArray()).toEqual([
      [
        [
          [4, 18],
          [36, 77],
        ],
      ],
    ]);
  });
});

describe("conv2d gradients (float64 finite differences, first and second order)", () => {
  const samples: [string, () => Tensor[], (...t: Tensor[]) => Tensor][] = [
    ["plain with bias", () => [r(2, 2, 4, 4), r(3, 2, 2, 2), r(3)], (x, w, b) => conv2d(x, w, b)],
    [
      "stride 2, padding 1",
      () => [r(1, 2, 5, 4), r(2, 2, 3, 3), r(2)],
      (x, w, b) => conv2d(x, w, b, { stride: 2, padding: 1 }),
    ],
    [
      "dilation 2",
      () => [r(1, 1, 5, 5), r(2, 1, 2, 2)],
      (x, w) => conv2d(x, w, null, { dilation: 2, padding: [1, 0] }),
    ],
    ["groups 2", () => [r(1, 4, 3, 3), r(4, 2, 2, 2), r(4)], (x, w, b) => conv2d(x, w, b, { groups: 2, padding: 1 })],
    ["'same', even kernel", () => [r(1, 2, 3, 4), r(2, 2, 2, 3)], (x, w) => conv2d(x, w, null, { padding: "same" })],
    // A product of the output with the input makes the second derivative in x depend on w and x.
    ["squared output", () => [r(1, 1, 3, 3), r(1, 1, 2, 2)], (x, w) => conv2d(x, w, null, { padding: 1 }).pow(2)],
    [
      "conv1d",
      () => [r(2, 2, 5), r(4, 1, 3), r(4)],
      (x, w, b) => conv1d(x, w, b, { stride: 2, padding: 1, groups: 2 }),
    ],
    [
      "conv1d 'same', dilation 2",
      () => [r(1, 2, 6), r(2, 2, 2)],
      (x, w) => conv1d(x, w, null, { padding: "same", dilation: 2 }),
    ],
  ];
  for (const [name, inputs, fn] of samples) {
    test(`${name}: gradcheck and gradgradcheck`, () => {
      const xs = inputs();
      expect(gradcheck(fn, xs)).toBe(true);
      expect(gradgradcheck(fn, xs)).toBe(true);
    });
  }

  test("the third derivative exists too (each gradient is again a convolution op)", () => {
    const x = r(1, 1, 3, 3),
      w = r(1, 1, 2, 2);
    const y = conv2d(x, w, null, { padding: 1 }).pow(3).sum();
    const [gx] = grad(y, [x], { createGraph: true });
    const [gxw] = grad(gx!.sum(), [w], { createGraph: true });
    const [gxww] = grad(gxw!.sum(), [x]);
    expect(gxww!.shape).toEqual([1, 1, 3, 3]);
    expect(Array.from(gxww!.data).some((v) => v !== 0)).toBe(true);
  });
});

describe("conv errors name the problem", () => {
  test("channel mismatch", () => {
    expect(() => conv2d(r(1, 3, 4, 4), r(2, 2, 3, 3))).toThrow(
      /conv2d: weight \[2, 2, 3, 3\] with groups=1 expects 2 input channels, but the input \[1, 3, 4, 4\] has 3/,
    );
    expect(() => conv1d(r(1, 3, 4), r(2, 2, 3))).toThrow(/conv1d: weight \[2, 2, 3\] with groups=1 expects 2 input/);
  });
  test("output channels not divisible by groups", () => {
    expect(() => conv2d(r(1, 4, 4, 4), r(3, 2, 1, 1), null, { groups: 2 })).toThrow(
      /conv2d: 3 output channels are not divisible by groups=2/,
    );
  });
  test("an empty kernel", () => {
    expect(() => conv2d(r(1, 1, 4, 4), r(1, 1, 0, 3))).toThrow(
      /conv2d: weight \[1, 1, 0, 3\] needs at least one output channel and a non-empty kernel/,
    );
  });
  test("kernel larger than the padded input", () => {
    expect(() => conv2d(r(1, 1, 2, 5), r(1, 1, 3, 3))).toThrow(/conv2d: calculated output size 0x3 is too small/);
  });
  test("'same' with a stride", () => {
    expect(() => conv2d(r(1, 1, 4, 4), r(1, 1, 3, 3), null, { padding: "same", stride: 2 })).toThrow(
      /conv2d: padding='same' is not supported for strided convolutions/,
    );
  });
  test("bad stride, padding and dilation values", () => {
    expect(() => conv2d(r(1, 1, 4, 4), r(1, 1, 3, 3), null, { stride: 0 })).toThrow(
      /conv2d: stride must be an integer >= 1 or a pair of them, got 0/,
    );
    expect(() => conv2d(r(1, 1, 4, 4), r(1, 1, 3, 3), null, { padding: [1, -1] })).toThrow(
      /conv2d: padding must be an integer >= 0 or a pair of them, got \[1,-1\]/,
    );
    expect(() => conv1d(r(1, 1, 4), r(1, 1, 3), null, { dilation: 1.5 })).toThrow(
      /conv1d: dilation must be an integer >= 1, got 1.5/,
    );
  });
  test("dtype mismatch, wrong ranks and a bias of the wrong size", () => {
    expect(() => conv2d(r(1, 1, 4, 4), r(1, 1, 3, 3).to("float32"))).toThrow(
      /conv2d: input \(float64\), weight \(float32\) must have the same dtype/,
    );
    expect(() => conv2d(r(4, 4), r(1, 1, 3, 3))).toThrow(
      /conv2d: expected a 3-D \(unbatched\) or 4-D \(batched\) input, got \[4, 4\]/,
    );
    expect(() => conv2d(r(1, 1, 4, 4), r(1, 3, 3))).toThrow(/conv2d: expected a 4-D weight, got \[1, 3, 3\]/);
    expect(() => conv2d(r(1, 1, 4, 4), r(2, 1, 3, 3), r(3))).toThrow(/conv2d: bias \[3\] must be \[2\]/);
  });
});
