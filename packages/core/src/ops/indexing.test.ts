import { describe, expect, test } from "vitest";
import { gather, grad, indexAdd, scatterAdd, softplus, tensor, zeros } from "../index.js";

const f64 = (v: number[][], requiresGrad = false) => tensor(v, { dtype: "float64", requiresGrad });

describe("indexing", () => {
  test("gather reads x[i][index[i][j]] along dim 1", () => {
    expect(
      gather(
        f64([
          [1, 2],
          [3, 4],
        ]),
        1,
        tensor([
          [1, 1],
          [0, 1],
        ]),
      ).toArray(),
    ).toEqual([
      [2, 2],
      [3, 4],
    ]);
  });

  test("scatterAdd with src larger than index reads src at the index positions", () => {
    const src = f64(
      [
        [1, 2, 3],
        [4, 5, 6],
      ],
      true,
    );
    const out = scatterAdd(zeros([3, 3], { dtype: "float64" }), 0, tensor([[0], [1]]), src);
    expect(out.toArray()).toEqual([
      [1, 0, 0],
      [4, 0, 0],
      [0, 0, 0],
    ]);
    const [dsrc] = grad(out.sum(), [src]);
    expect(dsrc!.toArray()).toEqual([
      [1, 0, 0],
      [1, 0, 0],
    ]);
  });

  test("scatterAdd rejects an index larger than src", () => {
    expect(() => scatterAdd(zeros([3, 3]), 0, tensor([[0, 1]]), zeros([1, 1]))).toThrow(
      /scatterAdd: index \[1, 2\] .* no larger than src \[1, 1\]/,
    );
  });

  test("indexAdd rejects a source whose other dims differ from self", () => {
    expect(() => indexAdd(zeros([4, 3]), 0, tensor([1]), zeros([1, 2]))).toThrow(
      /indexAdd: source \[1, 2\] must match self \[4, 3\]/,
    );
  });
});

describe("softplus", () => {
  test("above the threshold the gradient is exactly 1, as the forward is the identity", () => {
    const x = tensor([3, -1], { dtype: "float64", requiresGrad: true });
    const [dx] = grad(softplus(x, 2, 5).sum(), [x]);
    expect(dx!.data[0]).toBe(1);
    expect(dx!.data[1]).toBeCloseTo(1 / (1 + Math.exp(2)), 15);
  });
});
