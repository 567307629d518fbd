import { describe, expect, test } from "vitest";
import { tensor } from "../index.js";
import { slice, sliceBackward } from "./shape.js";

// The element-by-element definition: out[..., start + j·step, ...] = g[..., j, ...], zeros elsewhere.
function reference(g: Float64Array, gShape: number[], shape: number[], dim: number, start: number, step: number) {
  const out = new Float64Array(shape.reduce((a, b) => a * b, 1));
  const strides = shape.map((_, k) => shape.slice(k + 1).reduce((a, b) => a * b, 1));
  const gStrides = gShape.map((_, k) => gShape.slice(k + 1).reduce((a, b) => a * b, 1));
  for (let i = 0; i < g.length; i++) {
    let o = 0;
    for (let k = 0; k < gShape.length; k++) {
      const idx = Math.floor(i / gStrides[k]!) % gShape[k]!;
      o += (k === dim ? start + idx * step : idx) * strides[k]!;
    }
    out[o] = g[i]!;
  }
  return out;
}

describe("sliceBackward", () => {
  const cases: [number[], number, number, number | undefined, number][] = [
    [[5], 0, 1, 4, 1],
    [[3, 7], 1, 2, 7, 2],
    [[3, 7], 0, 1, 3, 1],
    [[2, 3, 12], 2, 4, 8, 1], // a chunk of the last dim, as attention's q/k/v split
    [[2, 9, 40], 1, 0, undefined, 3], // runs of 40 elements, every third row
    [[4, 6, 5, 3], 2, 1, 5, 2],
    [[2, 0, 3], 1, 0, undefined, 1], // empty
  ];
  test.each(cases)(
    "shape %j dim %i from %i to %j step %i places g where slice read",
    (shape, dim, start, end, step) => {
      const n = shape.reduce((a, b) => a * b, 1);
      const x = tensor(
        Float64Array.from({ length: n }, (_, i) => i),
        { shape, dtype: "float64" },
      );
      const s = slice(x, dim, start, end, step);
      const g = tensor(
        Float64Array.from({ length: s.numel }, (_, i) => (i % 7) - 3.5 + i / 100),
        {
          shape: s.shape,
          dtype: "float64",
        },
      );
      const got = sliceBackward(g, shape, dim, start, step);
      expect(got.shape).toEqual(shape);
      expect(Array.from(got.data)).toEqual(
        Array.from(reference(g.data as Float64Array, [...s.shape], shape, dim, start, step)),
      );
      // the adjoint identity <slice(x), g> = <x, sliceBackward(g)>
      let lhs = 0,
        rhs = 0;
      for (let i = 0; i < s.numel; i++) lhs += (s.data[i] as number) * (g.data[i] as number);
      for (let i = 0; i < n; i++) rhs += (x.data[i] as number) * (got.data[i] as number);
      expect(rhs).toBeCloseTo(lhs, 9);
    },
  );
});
