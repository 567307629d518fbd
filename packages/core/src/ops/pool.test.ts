import { describe, expect, test } from "vitest";
import { Generator, type Tensor, arange, gradcheck, gradgradcheck, randn, tensor } from "../index.js";
import { adaptiveAvgPool2d, avgPool2d, maxPool2d } from "./pool.js";

const gen = new Generator(91);
const r = (...shape: number[]): Tensor => randn(shape, { dtype: "float64", generator: gen, requiresGrad: true });
const grid = (h: number, w: number): Tensor =>
  arange(1, h * w + 1, 1, { dtype: "float64" })
    .reshape([1, 1, h, w])
    .requiresGrad_();

interface Win {
  k: [number, number];
  s: [number, number];
  p: [number, number];
  d: [number, number];
  out: [number, number];
}

/** Visits each window by its definition: rows oy·s - p + i·d for i < k (likewise columns). */
function referencePool(x: Tensor, win: Win, reduce: (values: number[], windowArea: number) => number): number[] {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const out: number[] = [];
  for (let plane = 0; plane < n * c; plane++)
    for (let oy = 0; oy < win.out[0]; oy++)
      for (let ox = 0; ox < win.out[1]; ox++) {
        const values: number[] = [];
        // The window area PyTorch divides by with countIncludePad: the part inside input + padding.
        const rowEnd = Math.min(oy * win.s[0] - win.p[0] + win.k[0], h + win.p[0]);
        const colEnd = Math.min(ox * win.s[1] - win.p[1] + win.k[1], w + win.p[1]);
        const area = (rowEnd - (oy * win.s[0] - win.p[0])) * (colEnd - (ox * win.s[1] - win.p[1]));
        for (let i = 0; i < win.k[0]; i++)
          for (let j = 0; j < win.k[1]; j++) {
            const y = oy * win.s[0] - win.p[0] + i * win.d[0],
              z = ox * win.s[1] - win.p[1] + j * win.d[1];
            if (y >= 0 && y < h && z >= 0 && z < w) values.push(Number(x.data[(plane * h + y) * w + z]));
          }
        out.push(reduce(values, area));
      }
  return out;
}

const near = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-12) => {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!)).toBeLessThanOrEqual(tol);
};

describe("maxPool2d", () => {
  const cases: [string, number[], Parameters<typeof maxPool2d>[2] & { k: number }, Omit<Win, "k">][] = [
    ["kernel 2", [2, 3, 6, 5], { k: 2 }, { s: [2, 2], p: [0, 0], d: [1, 1], out: [3, 2] }],
    [
      "stride 1, padding 1",
      [1, 2, 4, 5],
      { k: 3, stride: 1, padding: 1 },
      { s: [1, 1], p: [1, 1], d: [1, 1], out: [4, 5] },
    ],
    [
      "dilation 2",
      [1, 1, 7, 6],
      { k: 2, stride: [2, 1], dilation: 2 },
      { s: [2, 1], p: [0, 0], d: [2, 2], out: [3, 4] },
    ],
    ["ceil mode", [1, 2, 5, 7], { k: 2, ceilMode: true }, { s: [2, 2], p: [0, 0], d: [1, 1], out: [3, 4] }],
    [
      "ceil mode with padding",
      [1, 1, 6, 6],
      { k: 3, stride: 2, padding: 1, ceilMode: true },
      { s: [2, 2], p: [1, 1], d: [1, 1], out: [4, 4] },
    ],
  ];
  for (const [name, shape, { k, ...opts }, win] of cases) {
    test(`${name} matches the maximum over each window`, () => {
      const x = r(...shape);
      const y = maxPool2d(x, k, opts);
      expect(y.shape).toEqual([shape[0], shape[1], ...win.out]);
      near(
        y.data,
        referencePool(x, { ...win, k: [k, k] }, (v) => Math.max(...v)),
      );
    });
  }

  test("ceil mode drops a last window that would start past the input and its left padding", () => {
    // size 5, kernel 3, stride 3, padding 1: ceil((5+2-3)/3)+1 = 3 windows, but the third would start
    // at 3·2-1 = 5, past the input: 2 remain.
    expect(maxPool2d(r(1, 1, 5, 5), 3, { stride: 3, padding: 1, ceilMode: true }).shape).toEqual([1, 1, 2, 2]);
    // size 5, kernel 2, stride 2: the third window starts at 4, inside: it stays (covering one row).
    expect(maxPool2d(r(1, 1, 5, 5), 2, { ceilMode: true }).shape).toEqual([1, 1, 3, 3]);
  });

  test("the gradient goes to each window's maximum, summed over overlapping windows", () => {
    const x = tensor(
      [
        [
          [
            [1, 2, 3],
            [4, 9, 5],
            [6, 7, 8],
          ],
        ],
      ],
      { dtype: "float64", requiresGrad: true },
    );
    const y = maxPool2d(x, 2, { stride: 1 });
    expect(y.toArray()).toEqual([
      [
        [
          [9, 9],
          [9, 9],
        ],
      ],
    ]);
    y.sum().backward();
    expect(x.grad!.toArray()).toEqual([
      [
        [
          [0, 0, 0],
          [0, 4, 0],
          [0, 0, 0],
        ],
      ],
    ]);
  });

  test("ties send the gradient to the first maximum; NaN propagates", () => {
    const x = tensor(
      [
        [
          [
            [2, 2],
            [2, 2],
          ],
        ],
      ],
      { dtype: "float64", requiresGrad: true },
    );
    maxPool2d(x, 2).sum().backward();
    expect(Array.from(x.grad!.data)).toEqual([1, 0, 0, 0]);
    const withNan = tensor(
      [
        [
          [
            [1, Number.NaN],
            [3, 2],
          ],
        ],
      ],
      { dtype: "float64" },
    );
    expect(Number.isNaN(maxPool2d(withNan, 2).item())).toBe(true);
  });

  test("an unbatched [C, H, W] input, and float32 against float64", () => {
    const x = r(2, 4, 4);
    const y = maxPool2d(x, 2, { stride: 1, padding: 1 });
    expect(y.shape).toEqual([2, 5, 5]);
    near(maxPool2d(x.to("float32"), 2, { stride: 1, padding: 1 }).data, y.data, 1e-6);
  });
});

describe("avgPool2d", () => {
  const hand = () => grid(3, 3); // [[1, 2, 3], [4, 5, 6], [7, 8, 9]]

  test("padding 1, stride 2: the window sum over 4, or over the input elements only", () => {
    // Windows: {1}, {2, 3}, {4, 7}, {5, 6, 8, 9}.
    expect(avgPool2d(hand(), 2, { padding: 1 }).toArray()).toEqual([
      [
        [
          [0.25, 1.25],
          [2.75, 7],
        ],
      ],
    ]);
    expect(avgPool2d(hand(), 2, { padding: 1, countIncludePad: false }).toArray()).toEqual([
      [
        [
          [1, 2.5],
          [5.5, 7],
        ],
      ],
    ]);
  });

  test("ceil mode: the part of a window past the input (and padding) never counts", () => {
    // Windows {1, 2, 4, 5}, {3, 6}, {7, 8}, {9}.
    expect(avgPool2d(hand(), 2, { ceilMode: true }).toArray()).toEqual([
      [
        [
          [3, 4.5],
          [7.5, 9],
        ],
      ],
    ]);
  });

  const cases: [string, number, Parameters<typeof avgPool2d>[2], Omit<Win, "k" | "d">][] = [
    ["kernel 3, stride 2, padding 1", 3, { stride: 2, padding: 1 }, { s: [2, 2], p: [1, 1], out: [3, 4] }],
    [
      "without the padding",
      3,
      { stride: 2, padding: 1, countIncludePad: false },
      { s: [2, 2], p: [1, 1], out: [3, 4] },
    ],
    // Height 6: ceil mode adds a 4th window (rows 5..7); width 8: the 4th would start at 8, dropped.
    ["ceil mode", 3, { stride: [2, 3], padding: 1, ceilMode: true }, { s: [2, 3], p: [1, 1], out: [4, 3] }],
    [
      "ceil mode without the padding",
      3,
      { stride: [2, 3], padding: 1, ceilMode: true, countIncludePad: false },
      { s: [2, 3], p: [1, 1], out: [4, 3] },
    ],
  ];
  for (const [name, k, opts, win] of cases) {
    test(`${name} matches the window averages`, () => {
      const x = r(2, 2, 6, 8);
      const y = avgPool2d(x, k, opts);
      expect(y.shape).toEqual([2, 2, ...win.out]);
      const include = opts?.countIncludePad ?? true;
      const ref = referencePool(x, { ...win, k: [k, k], d: [1, 1] }, (v, area) => {
        const total = v.reduce((a, b) => a + b, 0);
        return total / (include ? area : v.length);
      });
      near(y.data, ref);
    });
  }

  test("float32 against float64", () => {
    const x = r(1, 3, 6, 6);
    near(avgPool2d(x.to("float32"), 3, { padding: 1 }).data, avgPool2d(x, 3, { padding: 1 }).data, 1e-6);
  });
});

describe("adaptiveAvgPool2d", () => {
  test("windows floor(i·W/out) .. ceil((i+1)·W/out), worked by hand", () => {
    // W = 5, out 3: {1, 2}, {2, 3, 4}, {4, 5}.
    near(adaptiveAvgPool2d(grid(1, 5), [1, 3]).data, [1.5, 3, 4.5]);
    // H = 3, out 2: rows {0, 1}, {1, 2} of [[1, 2], [3, 4], [5, 6]]; null keeps W.
    const y = adaptiveAvgPool2d(grid(3, 2), [2, null]);
    expect(y.shape).toEqual([1, 1, 2, 2]);
    near(y.data, [2, 3, 4, 5]);
  });

  test("an output size that divides the input is average pooling; 1 is the mean", () => {
    const x = r(2, 3, 6, 4);
    near(adaptiveAvgPool2d(x, [3, 2]).data, avgPool2d(x, 2).data, 1e-12);
    near(adaptiveAvgPool2d(x, 1).data, x.mean([2, 3]).data, 1e-12);
    expect(adaptiveAvgPool2d(r(3, 5, 5), 2).shape).toEqual([3, 2, 2]);
  });

  test("float32 against float64", () => {
    const x = r(1, 2, 7, 5);
    near(adaptiveAvgPool2d(x.to("float32"), [3, 4]).data, adaptiveAvgPool2d(x, [3, 4]).data, 1e-6);
  });
});

describe("pooling gradients (float64 finite differences, first and second order)", () => {
  // Squares make the second derivative of a piecewise-linear pool non-zero.
  const samples: [string, () => Tensor[], (x: Tensor) => Tensor][] = [
    ["maxPool2d", () => [r(1, 2, 4, 4)], (x) => maxPool2d(x, 2).pow(2)],
    ["maxPool2d overlapping, padded", () => [r(1, 1, 4, 5)], (x) => maxPool2d(x, 3, { stride: 1, padding: 1 }).pow(2)],
    [
      "maxPool2d dilated, ceil mode",
      () => [r(1, 1, 5, 5)],
      (x) => maxPool2d(x, 2, { dilation: 2, ceilMode: true }).pow(2),
    ],
    ["avgPool2d", () => [r(1, 2, 4, 4)], (x) => avgPool2d(x, 2, { stride: 1 }).pow(2)],
    [
      "avgPool2d ceil mode, padding excluded",
      () => [r(1, 1, 5, 4)],
      (x) => avgPool2d(x, 3, { stride: 2, padding: 1, ceilMode: true, countIncludePad: false }).pow(2),
    ],
    ["adaptiveAvgPool2d", () => [r(1, 2, 5, 4)], (x) => adaptiveAvgPool2d(x, [3, 3]).pow(2)],
  ];
  for (const [name, inputs, fn] of samples) {
    test(`${name}: gradcheck and gradgradcheck`, () => {
      const xs = inputs();
      expect(gradcheck(fn, xs)).toBe(true);
      expect(gradgradcheck(fn, xs)).toBe(true);
    });
  }
});

describe("pooling errors name the problem", () => {
  test("padding more than half the kernel", () => {
    expect(() => maxPool2d(r(1, 1, 4, 4), 2, { padding: 2 })).toThrow(
      /maxPool2d: padding \[2, 2\] must be at most half of the kernel size \[2, 2\]/,
    );
    expect(() => avgPool2d(r(1, 1, 4, 4), [3, 2], { padding: [1, 2] })).toThrow(
      /avgPool2d: padding \[1, 2\] must be at most half of the kernel size \[3, 2\]/,
    );
  });
  test("a kernel larger than the input", () => {
    expect(() => maxPool2d(r(1, 1, 2, 4), 3)).toThrow(
      /maxPool2d: calculated output size 0x1 is too small for input 2x4/,
    );
  });
  test("bad kernel, stride and ranks", () => {
    expect(() => maxPool2d(r(1, 1, 4, 4), 0)).toThrow(
      /maxPool2d: kernelSize must be an integer >= 1 or a pair of them, got 0/,
    );
    expect(() => avgPool2d(r(1, 1, 4, 4), 2, { stride: [1, 0] })).toThrow(/avgPool2d: stride must be an integer >= 1/);
    expect(() => maxPool2d(r(4, 4), 2)).toThrow(/maxPool2d: expected a 3-D \[C, H, W\] or 4-D \[N, C, H, W\] input/);
    expect(() => adaptiveAvgPool2d(r(1, 0, 4, 4), 2)).toThrow(
      /adaptiveAvgPool2d: expected .* non-zero C, H and W, got \[1, 0, 4, 4\]/,
    );
  });
  test("bad adaptive output sizes", () => {
    expect(() => adaptiveAvgPool2d(r(1, 1, 4, 4), 0)).toThrow(
      /adaptiveAvgPool2d: outputSize must be a positive integer .*got 0/,
    );
    expect(() => adaptiveAvgPool2d(r(1, 1, 4, 4), [2, 1.5])).toThrow(/got \[2,1.5\]/);
  });
});
