import { afterEach, describe, expect, test } from "vitest";
import {
  CounterGenerator,
  Generator,
  arange,
  eye,
  full,
  fullLike,
  linspace,
  manualSeed,
  ones,
  onesLike,
  rand,
  randLike,
  randint,
  randn,
  randnLike,
  randperm,
  setDefaultDtype,
  tensor,
  zeros,
  zerosLike,
} from "../index.js";

afterEach(() => setDefaultDtype("float32"));

describe("creation", () => {
  test("tensor infers int32 from integers, float32 from fractions and bool from booleans", () => {
    const i = tensor([
      [1, 2],
      [3, 4],
    ]);
    expect([i.dtype, i.shape]).toEqual(["int32", [2, 2]]);
    expect(tensor([1, 2.5]).dtype).toBe("float32");
    expect(tensor([true, false]).dtype).toBe("bool");
    expect(tensor(7).shape).toEqual([]);
  });

  test("ragged nested arrays are rejected with the dim and both lengths", () => {
    expect(() => tensor([[1, 2], [3]])).toThrow(/tensor: expected sequence of length 2 at dim 1 \(got 1\)/);
  });

  test("a typed array with a shape is wrapped without copying", () => {
    const data = new Float32Array(6);
    const t = tensor(data, { shape: [2, 3] });
    data[4] = 9;
    expect(t.data).toBe(data);
    expect(t.toArray()).toEqual([
      [0, 0, 0],
      [0, 9, 0],
    ]);
    expect(() => tensor(data, { shape: [4] })).toThrow(/tensor: shape \[4\] needs 4 elements, the array has 6/);
  });

  test("zeros, ones, full, eye and the *Like variants fill as named", () => {
    expect(zeros([2]).toArray()).toEqual([0, 0]);
    expect(ones([2], { dtype: "int32" }).dtype).toBe("int32");
    expect(full([2], 1.5).toArray()).toEqual([1.5, 1.5]);
    expect(eye(2, 3).toArray()).toEqual([
      [1, 0, 0],
      [0, 1, 0],
    ]);
    const base = tensor([[1, 2]], { dtype: "float64" });
    expect([zerosLike(base).dtype, zerosLike(base).shape]).toEqual(["float64", [1, 2]]);
    expect(onesLike(base).toArray()).toEqual([[1, 1]]);
    expect(fullLike(base, 3, { requiresGrad: true }).requiresGrad).toBe(true);
  });

  test("arange and linspace match PyTorch", () => {
    expect(arange(4).toArray()).toEqual([0, 1, 2, 3]);
    expect(arange(4).dtype).toBe("int32");
    expect(arange(1, 2, 0.25).toArray()).toEqual([1, 1.25, 1.5, 1.75]);
    expect(arange(5, 0, -2).toArray()).toEqual([5, 3, 1]);
    expect(() => arange(0, 5, -1)).toThrow(/arange: upper bound and larger bound inconsistent with step sign/);
    expect(linspace(0, 1, 5).toArray()).toEqual([0, 0.25, 0.5, 0.75, 1]);
  });

  test("rand, randn, randint and randperm give values in range with the right dtypes", () => {
    const g = new Generator(3);
    const u = rand([1000], { generator: g });
    expect(u.dtype).toBe("float32");
    expect(Array.from(u.data).every((v) => v >= 0 && v < 1)).toBe(true);
    const n = randn([4000], { dtype: "float64", generator: g });
    const m = Array.from(n.data).reduce((a, b) => a + b, 0) / 4000;
    expect(Math.abs(m)).toBeLessThan(0.1);
    const k = randint(-2, 3, [500], { generator: g });
    expect(k.dtype).toBe("int32");
    expect(new Set(k.data)).toEqual(new Set([-2, -1, 0, 1, 2]));
    expect(Array.from(randperm(10, { generator: g }).data).sort((a, b) => a - b)).toEqual([
      0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
    ]);
    const like = tensor([[1, 2]], { dtype: "float64" });
    expect([randLike(like).dtype, randnLike(like).shape]).toEqual(["float64", [1, 2]]);
  });

  test("float32 rand stays below 1 even when a 53-bit draw would round up to it", () => {
    const nearOne = new (class extends Generator {
      override random() {
        return 1 - 2 ** -30;
      }
    })();
    expect(Array.from(rand([3], { generator: nearOne }).data).every((v) => v < 1)).toBe(true);
  });

  test("manualSeed makes the default generator reproducible", () => {
    manualSeed(42);
    const a = randn([5]).toArray();
    manualSeed(42);
    expect(randn([5]).toArray()).toEqual(a);
  });

  test("generators are independent: drawing from one leaves another's stream unchanged", () => {
    const a = new Generator(9),
      b = new Generator(9),
      other = new Generator(9);
    const first = a.random();
    for (let i = 0; i < 10; i++) other.random();
    expect(b.random()).toBe(first);
    expect(new Generator(10).random()).not.toBe(first);
  });

  test("a CounterGenerator draw is a pure function of its keys", () => {
    const c = new CounterGenerator(5);
    const v = c.uniform(3, 17, 1, 2);
    c.uniform(0, 0, 0, 0);
    expect(new CounterGenerator(5).uniform(3, 17, 1, 2)).toBe(v);
    expect(c.uniform(3, 18, 1, 2)).not.toBe(v);
    expect(new CounterGenerator(6).uniform(3, 17, 1, 2)).not.toBe(v);
  });
});

describe("dtype promotion", () => {
  test("float32 combined with float64 gives float64", () => {
    expect(tensor([1], { dtype: "float32" }).add(tensor([1], { dtype: "float64" })).dtype).toBe("float64");
  });

  test("an int32 tensor times 2.5 gives float32, int32 / int32 gives float32", () => {
    const i = tensor([1, 2]);
    expect(i.mul(2.5).toArray()).toEqual([2.5, 5]);
    expect(i.mul(2.5).dtype).toBe("float32");
    expect(i.mul(2).dtype).toBe("int32");
    expect(i.div(tensor([2, 4])).toArray()).toEqual([0.5, 0.5]);
    expect(i.div(tensor([2, 4])).dtype).toBe("float32");
  });

  test("comparisons give bool", () => {
    expect(tensor([1, 2]).gt(1.5).toArray()).toEqual([false, true]);
  });

  test("setDefaultDtype changes the dtype of new float tensors", () => {
    setDefaultDtype("float64");
    expect(tensor([0.5]).dtype).toBe("float64");
    expect(zeros([1]).dtype).toBe("float64");
    expect(tensor([1]).div(2).dtype).toBe("float64");
    expect(() => setDefaultDtype("int32" as "float32")).toThrow(/setDefaultDtype: only float32 or float64, got int32/);
  });
});

describe("printing and reading back", () => {
  test("toString prints like PyTorch", () => {
    const x = tensor(
      [
        [1, 2],
        [3, 4],
      ],
      { dtype: "float32", requiresGrad: true },
    );
    expect(x.toString()).toBe("tensor([[1., 2.],\n        [3., 4.]], requires_grad=True)");
    expect(tensor([1.5, -2]).toString()).toBe("tensor([ 1.5000, -2.0000])");
    expect(tensor([1, 2]).toString()).toBe("tensor([1, 2], dtype=int32)");
    expect(tensor([true]).toString()).toBe("tensor([True])");
    expect(tensor([1e-5, 1], { dtype: "float64" }).toString()).toBe("tensor([1.0000e-05, 1.0000e+00], dtype=float64)");
    expect(x.mul(2).toString()).toMatch(/grad_fn=<MulBackward0>\)$/);
    expect(zeros([0, 2]).toString()).toBe("tensor([], size=(0, 2))");
  });

  test("the dtype is shown only when it is not the default float dtype", () => {
    setDefaultDtype("float64");
    expect(tensor([1.5]).toString()).toBe("tensor([1.5000])");
    expect(tensor([1.5], { dtype: "float32" }).toString()).toBe("tensor([1.5000], dtype=float32)");
  });

  test("toArray nests by shape and item reads a one-element tensor", () => {
    expect(tensor([[[1], [2]]]).toArray()).toEqual([[[1], [2]]]);
    expect(tensor(3.5).toArray()).toBe(3.5);
    expect(tensor([[2.5]]).item()).toBe(2.5);
    expect(() => tensor([1, 2]).item()).toThrow(/item: a tensor with 2 elements cannot be converted to a number/);
  });
});

describe("storage and versions", () => {
  test("reshape with -1 infers the size and shares storage", () => {
    const x = arange(6);
    const y = x.reshape(-1, 3);
    expect(y.shape).toEqual([2, 3]);
    expect(y.data).toBe(x.data);
    expect(() => x.reshape(4, -1)).toThrow(/reshape: shape \[4, -1\] is invalid for input of size 6/);
  });

  test("in-place ops bump a version counter shared by views and detached copies", () => {
    const x = zeros([4]);
    const v = x.reshape(2, 2),
      d = x.detach();
    expect(x._version.value).toBe(0);
    v.add_(1);
    d.mul_(3);
    expect(x._version.value).toBe(2);
    expect(x.toArray()).toEqual([3, 3, 3, 3]);
  });
});
