import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { broadcastShapes } from "../index.js";

const shape = fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 5 });

/** NumPy's rule, stated directly: align on the right, missing dims are 1, sizes must agree or be 1. */
function numpyRule(a: number[], b: number[]): number[] | null {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = i < n - a.length ? 1 : a[i - (n - a.length)]!;
    const y = i < n - b.length ? 1 : b[i - (n - b.length)]!;
    if (x !== y && x !== 1 && y !== 1) return null;
    out.push(x === 1 ? y : x);
  }
  return out;
}

/** A shape that broadcasts to `out`: some leading dims dropped, some others replaced by 1. */
const broadcastableTo = (out: number[]) =>
  fc
    .tuple(
      fc.integer({ min: 0, max: out.length }),
      fc.array(fc.boolean(), { minLength: out.length, maxLength: out.length }),
    )
    .map(([drop, ones]) => out.map((d, i) => (ones[i] ? 1 : d)).slice(drop));

describe("broadcastShapes", () => {
  test("is symmetric", () => {
    fc.assert(
      fc.property(shape, shape, (a, b) => {
        const ab = numpyRule(a, b) === null ? null : broadcastShapes(a, b);
        const ba = numpyRule(b, a) === null ? null : broadcastShapes(b, a);
        expect(ab).toEqual(ba);
      }),
    );
  });

  test("matches the NumPy rule, throwing exactly when it says the shapes are incompatible", () => {
    fc.assert(
      fc.property(shape, shape, (a, b) => {
        const expected = numpyRule(a, b);
        if (expected === null) expect(() => broadcastShapes(a, b, "add")).toThrow(/add: shapes .* cannot be broadcast/);
        else expect(broadcastShapes(a, b)).toEqual(expected);
      }),
    );
  });

  test("two shapes derived from one output broadcast back to it", () => {
    const derived = shape.chain((out) => fc.tuple(fc.constant(out), broadcastableTo(out), broadcastableTo(out)));
    fc.assert(
      fc.property(derived, ([out, a, b]) => {
        const got = broadcastShapes(a, b);
        expect(broadcastShapes(got, out)).toEqual(out);
        expect(numpyRule(a, b)).toEqual(got);
      }),
    );
  });
});
