import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { Generator, type Tensor, broadcastTo, grad, max, min, randn, sum, sumTo, tensor } from "../index.js";

const dims = fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 4 });
const seed = fc.integer({ min: 0, max: 2 ** 31 - 1 });
const randn64 = (shape: number[], s: number): Tensor => randn(shape, { dtype: "float64", generator: new Generator(s) });
const close = (a: number, b: number) => expect(Math.abs(a - b)).toBeLessThanOrEqual(1e-9 * (1 + Math.abs(b)));

describe("sum laws", () => {
  test("the sum over all dims equals the sum over dim 0 followed by the rest", () => {
    fc.assert(
      fc.property(dims, seed, (shape, s) => {
        const x = randn64(shape, s);
        close(sum(x).item(), sum(sum(x, 0)).item());
      }),
    );
  });

  test("sum is linear: sum(a + b) = sum(a) + sum(b) and sum(c·a) = c·sum(a)", () => {
    fc.assert(
      fc.property(dims, seed, fc.double({ min: -10, max: 10, noNaN: true }), (shape, s, c) => {
        const a = randn64(shape, s),
          b = randn64(shape, s + 1);
        close(sum(a.add(b)).item(), sum(a).item() + sum(b).item());
        close(sum(a.mul(c)).item(), c * sum(a).item());
      }),
    );
  });

  test("sumTo(broadcastTo(x, s), x.shape) equals x times the numel ratio", () => {
    const case_ = fc
      .tuple(dims, fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 2 }), seed)
      .chain(([out, lead, s]) =>
        fc.array(fc.boolean(), { minLength: out.length, maxLength: out.length }).map((ones) => ({
          target: [...lead, ...out],
          xShape: out.map((d, i) => (ones[i] ? 1 : d)),
          s,
        })),
      );
    fc.assert(
      fc.property(case_, ({ target, xShape, s }) => {
        const x = randn64(xShape, s);
        const ratio = target.reduce((a, b) => a * b, 1) / x.numel;
        const back = sumTo(broadcastTo(x, target), x.shape);
        expect(back.shape).toEqual(x.shape);
        Array.from(back.data).forEach((v, i) => {
          close(v, x.data[i]! * ratio);
        });
      }),
    );
  });

  test("sumTo names both shapes when the target is not a broadcast source", () => {
    expect(() => sumTo(randn64([2, 3], 0), [2, 4])).toThrow(/sumTo: cannot sum \[2, 3\] down to \[2, 4\]/);
  });
});

describe("max and min", () => {
  test("max and min of int32 tensors start from the int32 range, not from 0", () => {
    expect(max(tensor([-3, -1, -2])).item()).toBe(-1);
    expect(min(tensor([3, 1, 2])).item()).toBe(1);
    expect(
      max(
        tensor([
          [-5, -6],
          [-7, -2],
        ]),
        1,
      ).toArray(),
    ).toEqual([-5, -2]);
  });

  test("tied maxima share the gradient exactly, in float64", () => {
    const x = tensor([1, 1, 1, 0.5], { dtype: "float64", requiresGrad: true });
    const [dx] = grad(max(x), [x]);
    expect(Array.from(dx!.data)).toEqual([1 / 3, 1 / 3, 1 / 3, 0]);
  });
});
