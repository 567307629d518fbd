import { describe, expect, test } from "vitest";
import { arange, chunk, maskedFill, ones, split, tensor, tril, triu, zeros } from "../index.js";

const grid = (rows: number, cols: number) =>
  arange(rows * cols, undefined, 1, { dtype: "float32" }).reshape(rows, cols);

describe("maskedFill", () => {
  test("writes the value where the mask is true and keeps the rest", () => {
    const x = grid(2, 3);
    const mask = tensor([true, false, true]);
    expect(maskedFill(x, mask, -1).toArray()).toEqual([
      [-1, 1, -1],
      [-1, 4, -1],
    ]);
    expect(x.maskedFill(mask, -Infinity).toArray()).toEqual([
      [-Infinity, 1, -Infinity],
      [-Infinity, 4, -Infinity],
    ]);
  });

  test("keeps the input's dtype and shape", () => {
    const x = tensor([1, 2, 3], { dtype: "int32" });
    const out = maskedFill(x, tensor([false, true, false]), 7.9);
    expect(out.dtype).toBe("int32");
    expect(out.toArray()).toEqual([1, 7, 3]);
  });

  test("the gradient passes where the mask is false only", () => {
    const x = grid(2, 2).requiresGrad_();
    maskedFill(x, tensor([[true, false]]), 5)
      .sum()
      .backward();
    expect(x.grad!.toArray()).toEqual([
      [0, 1],
      [0, 1],
    ]);
  });

  test("refuses a non-bool mask, a mask wider than the input and a non-scalar value", () => {
    const x = grid(2, 3);
    expect(() => maskedFill(x, tensor([1, 0, 1], { dtype: "int32" }), 0)).toThrow(
      /maskedFill: mask must be a bool tensor, got int32/,
    );
    expect(() => maskedFill(x, ones([4, 2, 3], { dtype: "bool" }), 0)).toThrow(
      /maskedFill: mask of shape \[4, 2, 3\] does not broadcast to the input's \[2, 3\]/,
    );
    expect(() => maskedFill(x, ones([3], { dtype: "bool" }), zeros([2]))).toThrow(
      /maskedFill: value must be a number or a 0-d tensor, got shape \[2\]/,
    );
  });
});

describe("tril and triu", () => {
  test("keep the triangles of the last two dims, with a diagonal offset", () => {
    const x = grid(3, 4);
    expect(tril(x).toArray()).toEqual([
      [0, 0, 0, 0],
      [4, 5, 0, 0],
      [8, 9, 10, 0],
    ]);
    expect(x.triu(1).toArray()).toEqual([
      [0, 1, 2, 3],
      [0, 0, 6, 7],
      [0, 0, 0, 11],
    ]);
    expect(x.tril(-1).toArray()).toEqual([
      [0, 0, 0, 0],
      [4, 0, 0, 0],
      [8, 9, 0, 0],
    ]);
  });

  test("apply to every matrix of a batch and keep bool masks bool", () => {
    const causal = tril(ones([2, 3, 3], { dtype: "bool" }));
    expect(causal.dtype).toBe("bool");
    expect(causal.toArray()).toEqual([
      [
        [true, false, false],
        [true, true, false],
        [true, true, true],
      ],
      [
        [true, false, false],
        [true, true, false],
        [true, true, true],
      ],
    ]);
  });

  test("the gradient is the same triangle of ones", () => {
    const x = grid(2, 2).requiresGrad_();
    triu(x).sum().backward();
    expect(x.grad!.toArray()).toEqual([
      [1, 1],
      [0, 1],
    ]);
  });

  test("refuse fewer than 2 dims and a fractional diagonal", () => {
    expect(() => tril(ones([3]))).toThrow(/tril: input tensor must have at least 2 dimensions, got shape \[3\]/);
    expect(() => triu(ones([2, 2]), 0.5)).toThrow(/triu: diagonal must be an integer, got 0.5/);
  });
});

describe("split and chunk", () => {
  test("split by a size leaves a smaller last piece", () => {
    const parts = split(arange(7), 3);
    expect(parts.map((p) => p.toArray())).toEqual([[0, 1, 2], [3, 4, 5], [6]]);
  });

  test("split by sections along a negative dim", () => {
    const [a, b] = grid(2, 5).split([2, 3], -1);
    expect(a!.toArray()).toEqual([
      [0, 1],
      [5, 6],
    ]);
    expect(b!.toArray()).toEqual([
      [2, 3, 4],
      [7, 8, 9],
    ]);
  });

  test("chunk gives ceil(size / chunks) each and fewer pieces when the size runs out", () => {
    expect(chunk(arange(6), 3).map((p) => p.toArray())).toEqual([
      [0, 1],
      [2, 3],
      [4, 5],
    ]);
    // PyTorch: torch.arange(5).chunk(4) gives sizes 2, 2, 1 (three pieces).
    expect(
      arange(5)
        .chunk(4)
        .map((p) => p.shape[0]),
    ).toEqual([2, 2, 1]);
  });

  test("gradients of the pieces land in their places", () => {
    const x = grid(2, 3).requiresGrad_();
    const [a, b] = chunk(x, 2, 1);
    a!.mul(2).sum().add(b!.mul(3).sum()).backward();
    expect(x.grad!.toArray()).toEqual([
      [2, 2, 3],
      [2, 2, 3],
    ]);
  });

  test("bad sizes are refused with the numbers", () => {
    expect(() => split(arange(5), [2, 2])).toThrow(
      /split: split sizes \[2, 2\] must be non-negative integers adding up to the size of dim 0 \(5\), they add up/,
    );
    expect(() => split(arange(5), 0)).toThrow(/split: split size must be a positive integer, got 0/);
    expect(() => chunk(arange(5), 0)).toThrow(/chunk: number of chunks must be a positive integer, got 0/);
    expect(() => split(arange(5), 2, 1)).toThrow(
      /split: dimension out of range \(expected to be in range of \[-1, 0\], but got 1\)/,
    );
  });
});
