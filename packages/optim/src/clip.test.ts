import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { clipCoef, clipGradNorm, clipGradValue, combineNorms, partialNorm, scaleRange } from "./clip.js";
import type { ParamLike } from "./types.js";

const withGrad = (...g: number[]): ParamLike => ({
  data: new Float64Array(g.length),
  shape: [g.length],
  grad: { data: Float64Array.from(g), shape: [g.length] },
});

describe("clipGradNorm", () => {
  it("scales by maxNorm / (norm + 1e-6) and returns the norm before clipping", () => {
    // norm = sqrt(3² + 4²) = 5; coef = 1 / (5 + 1e-6)
    const a = withGrad(3),
      b = withGrad(4),
      none: ParamLike = { data: new Float64Array(1), shape: [1], grad: null };
    expect(clipGradNorm([a, none, b], 1)).toBe(5);
    expect(a.grad!.data[0]).toBe(3 * (1 / (5 + 1e-6)));
    expect(b.grad!.data[0]).toBe(4 * (1 / (5 + 1e-6)));
  });

  it("leaves gradients under the limit unchanged", () => {
    const a = withGrad(0.3, -0.4);
    expect(clipGradNorm([a], 1)).toBeCloseTo(0.5, 15);
    expect([...a.grad!.data]).toEqual([0.3, -0.4]);
  });

  it("supports the infinity norm and other p", () => {
    expect(clipGradNorm([withGrad(1, -7), withGrad(2)], 100, { normType: Infinity })).toBe(7);
    expect(clipGradNorm([withGrad(1, -2), withGrad(3)], 100, { normType: 1 })).toBe(6);
    expect(clipGradNorm([withGrad(1, -2)], 100, { normType: 3 })).toBeCloseTo(9 ** (1 / 3), 14);
  });

  it("throws on a non-finite norm only when asked to", () => {
    expect(() => clipGradNorm([withGrad(NaN)], 1, { errorIfNonfinite: true })).toThrow(
      /^clipGradNorm: the total norm of order 2 of the gradients is NaN/,
    );
    expect(Number.isNaN(clipGradNorm([withGrad(NaN, 1)], 1, { normType: Infinity }))).toBe(true);
    expect(() => clipGradNorm([withGrad(1)], -1)).toThrow(/^clipGradNorm: maxNorm must be >= 0, got -1$/);
  });
});

describe("sharded norm", () => {
  it("partial norms of any split combine to the norm of the whole", () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: -10, max: 10, noNaN: true }), { minLength: 1, maxLength: 50 }),
        fc.array(fc.nat(), { maxLength: 5 }),
        fc.constantFrom(1, 2, 3, Infinity),
        (xs, raw, p) => {
          const g = Float64Array.from(xs);
          const cuts = [0, ...raw.map((c) => c % (g.length + 1)).sort((a, b) => a - b), g.length];
          const parts = cuts.slice(1).map((end, k) => partialNorm(g, cuts[k]!, end, p));
          const whole = combineNorms([partialNorm(g, 0, g.length, p)], p);
          const tol = 1e-12 * Math.max(1, whole);
          expect(Math.abs(combineNorms(parts, p) - whole)).toBeLessThanOrEqual(tol);
        },
      ),
      { seed: 7 },
    );
  });

  it("clipCoef clamps at 1 and scaleRange scales only its range", () => {
    expect(clipCoef(0.5, 1)).toBe(1);
    expect(clipCoef(9, 1)).toBe(1 / (9 + 1e-6));
    const g = Float64Array.of(1, 2, 3);
    scaleRange(g, 1, 3, 0.5);
    expect([...g]).toEqual([1, 1, 1.5]);
  });

  it("partialNorm and scaleRange refuse a range outside the gradient, naming it", () => {
    const g = Float64Array.of(1, 2, 3);
    expect(() => partialNorm(g, 1, 4)).toThrow(/partialNorm: range \[1, 4\) is not inside grads of length 3/);
    expect(() => partialNorm(g, -1, 2, Infinity)).toThrow(/partialNorm: range \[-1, 2\)/);
    expect(() => scaleRange(g, 2, 1, 0.5)).toThrow(/scaleRange: range \[2, 1\) is not inside grads of length 3/);
    expect([...g]).toEqual([1, 2, 3]);
  });
});

describe("clipGradValue", () => {
  it("clamps each element to [-clipValue, clipValue]", () => {
    const a = withGrad(-3, 0.2, 5);
    clipGradValue([a], 1);
    expect([...a.grad!.data]).toEqual([-1, 0.2, 1]);
    expect(() => clipGradValue([a], -1)).toThrow(/^clipGradValue: clipValue must be >= 0, got -1$/);
  });
});
