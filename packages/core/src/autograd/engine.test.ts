import { describe, expect, test } from "vitest";
import {
  // biome-ignore lint/suspicious/noShadowRestrictedNames: the API is named after torch.autograd.Function
  Function,
  type FunctionCtx,
  type Tensor,
  add,
  grad,
  gradcheck,
  gradgradcheck,
  hessian,
  hvp,
  jacobian,
  matmul,
  noGrad,
  tensor,
  vjp,
  where,
  zeros,
} from "../index.js";
import { record } from "../ops/op.js";

const f64 = (values: number[] | number[][], requiresGrad = true): Tensor =>
  tensor(values, { dtype: "float64", requiresGrad });
const arr = (t: Tensor | null): number[] => Array.from(t!.data);

describe("implicit gradients", () => {
  test("backward on a non-scalar output without a gradient names the shape and the fixes", () => {
    const y = f64([
      [1, 2, 3],
      [4, 5, 6],
    ]).mul(2);
    const err = new RegExp(
      "grad can be implicitly created only for scalar outputs, but output 0 has shape \\[2, 3\\]" +
        ".*\\.sum\\(\\).*gradient.*gradOutputs",
    );
    expect(() => y.backward()).toThrow(err);
  });

  test("grad on a non-scalar output without gradOutputs throws the same error", () => {
    const x = f64([1, 2]);
    expect(() => grad(x.mul(2), [x])).toThrow(/grad: grad can be implicitly created only for scalar outputs.*\[2\]/);
  });

  test("a gradient of the wrong shape is rejected with both shapes named", () => {
    const x = f64([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    const y = x.mul(2);
    const bad = tensor([1, 1, 1], { dtype: "float64" });
    expect(() => y.backward(bad)).toThrow(/gradient 0 has shape \[3\] and output 0 has shape \[2, 3\]/);
    expect(() => grad(y, [x], { gradOutputs: bad })).toThrow(
      /gradient 0 has shape \[3\] and output 0 has shape \[2, 3\]/,
    );
  });
});

describe("graph lifetime and accumulation", () => {
  test("the graph is freed after backward and a second pass names retainGraph", () => {
    const x = f64([1, 2]);
    const y = x.mul(x).sum();
    y.backward();
    expect(() => y.backward()).toThrow(/second time.*retainGraph: true/);
    const z = x.exp().sum();
    grad(z, [x]);
    expect(() => grad(z, [x])).toThrow(/retainGraph/);
  });

  test("retainGraph allows a second pass and both passes accumulate into .grad", () => {
    const x = f64([1, 2]);
    const y = x.mul(x).sum();
    y.backward(null, { retainGraph: true });
    y.backward();
    expect(arr(x.grad)).toEqual([4, 8]); // 2 · 2x
  });

  test("createGraph keeps the graph for another pass", () => {
    const x = f64([3]);
    const y = x.pow(2).sum();
    grad(y, [x], { createGraph: true });
    expect(arr(grad(y, [x])[0]!)).toEqual([6]);
  });

  test(".grad accumulates across backward calls on fresh graphs", () => {
    const x = f64([1, -2]);
    for (let i = 0; i < 3; i++) x.mul(3).sum().backward();
    expect(arr(x.grad)).toEqual([9, 9]);
  });

  test("a tensor used twice receives the sum of both contributions", () => {
    const x = f64([2]);
    x.mul(x).add(x).sum().backward();
    expect(arr(x.grad)).toEqual([5]); // 2x + 1
  });

  test("grad returns gradients and never touches .grad", () => {
    const x = f64([1, 2]);
    x.mul(x).sum().backward();
    const [dx] = grad(x.pow(3).sum(), [x]);
    expect(arr(dx!)).toEqual([3, 12]);
    expect(arr(x.grad)).toEqual([2, 4]);
  });

  test("non-leaf tensors keep no .grad unless retainGrad() was called", () => {
    const x = f64([1, 2]);
    const h = x.mul(3),
      k = x.mul(4);
    k.retainGrad();
    h.add(k).sum().backward();
    expect(h.grad).toBeNull();
    expect(arr(k.grad)).toEqual([1, 1]);
    expect(arr(x.grad)).toEqual([7, 7]);
  });

  test("an input that the outputs do not use throws unless allowUnused, which gives null", () => {
    const x = f64([1]),
      unused = f64([2]);
    const y = x.mul(2).sum();
    expect(() => grad(y, [x, unused], { retainGraph: true })).toThrow(
      /input 1 \(shape \[1\]\) appears to not have been used in the graph.*allowUnused/,
    );
    const [dx, du] = grad(y, [x, unused], { allowUnused: true });
    expect(arr(dx!)).toEqual([2]);
    expect(du).toBeNull();
  });

  test("after a createGraph backward, later plain backwards do not alias the .grad of two leaves", () => {
    const x = f64([1]),
      y = f64([1]);
    x.add(y).sum().backward(null, { createGraph: true });
    x.add(y).sum().backward();
    expect([arr(x.grad), arr(y.grad)]).toEqual([[2], [2]]);
  });
});

describe("higher-order gradients", () => {
  test("a gradient penalty differentiates through the gradient", () => {
    // f = Σx³, ∇f = 3x², penalty = Σ(3x²)² = 9Σx⁴, d penalty/dx = 36x³
    const x = f64([1, -2, 0.5]);
    const [g] = grad(x.pow(3).sum(), [x], { createGraph: true });
    const [dp] = grad(g!.mul(g!).sum(), [x]);
    expect(arr(dp!)).toEqual([36, -288, 4.5]);
  });

  test("a Hessian-vector product by double backward matches the analytic Hessian", () => {
    // f = x0²·x1 + x1³: H = [[2x1, 2x0], [2x0, 6x1]]
    const x = f64([2, 3]);
    const f = x
      .slice(0, 0, 1)
      .pow(2)
      .mul(x.slice(0, 1, 2))
      .add(x.slice(0, 1, 2).pow(3))
      .sum();
    const [g] = grad(f, [x], { createGraph: true });
    const v = f64([1, -1], false);
    const [hv] = grad(g!, [x], { gradOutputs: v });
    expect(arr(hv!)).toEqual([6 - 4, 4 - 18]);
  });

  test("the third derivative of x^4 is 24x", () => {
    const x = f64([0.5, -1, 2]);
    const [d1] = grad(x.pow(4).sum(), [x], { createGraph: true });
    const [d2] = grad(d1!.sum(), [x], { createGraph: true });
    const [d3] = grad(d2!.sum(), [x]);
    expect(arr(d3!)).toEqual([12, -24, 48]);
  });
});

class Counted extends Function {
  static calls = 0;
  static override forward(_ctx: FunctionCtx, x: Tensor): Tensor {
    return x.mul(5);
  }
  static override backward(_ctx: FunctionCtx, g: Tensor): Tensor {
    Counted.calls++;
    return g.mul(5);
  }
}

describe("what backward visits", () => {
  test("a branch that leads to no requested input is never evaluated", () => {
    const a = f64([1]),
      b = f64([2]);
    Counted.calls = 0;
    const out = a.mul(2).add(Counted.apply(b)).sum();
    expect(arr(grad(out, [a], { retainGraph: true })[0]!)).toEqual([2]);
    out.backward(null, { inputs: [a], retainGraph: true });
    expect(Counted.calls).toBe(0);
    expect(arr(grad(out, [b])[0]!)).toEqual([5]);
    expect(Counted.calls).toBe(1);
  });

  test("an op's backward is asked only for the inputs on a path to the requested ones", () => {
    const x = f64([1, 2]),
      w = f64([3, 4]);
    const asked: boolean[][] = [];
    const probe = (a: Tensor, b: Tensor) =>
      record(a.mul(b).detach(), "probe", [a, b], (g, needs) => {
        asked.push([...needs]);
        return [needs[0] ? g.mul(b) : null, needs[1] ? g.mul(a) : null];
      });
    const y = probe(x, w).sum();
    expect(arr(grad(y, [x], { retainGraph: true })[0]!)).toEqual([3, 4]);
    expect(arr(grad(y, [w], { retainGraph: true })[0]!)).toEqual([1, 2]);
    y.backward();
    expect(asked).toEqual([
      [true, false],
      [false, true],
      [true, true],
    ]);
    expect([arr(x.grad), arr(w.grad)]).toEqual([
      [3, 4],
      [1, 2],
    ]);
  });

  test("backward({ inputs }) accumulates only into the named tensors", () => {
    const x = f64([1]),
      w = f64([3]);
    x.mul(w)
      .sum()
      .backward(null, { inputs: [x] });
    expect(arr(x.grad)).toEqual([3]);
    expect(w.grad).toBeNull();
  });

  test("detach, noGrad and requiresGrad = false cut the graph", () => {
    const x = f64([1, 2]);
    expect(x.detach().mul(2).requiresGrad).toBe(false);
    expect(noGrad(() => x.mul(2)).requiresGrad).toBe(false);
    const w = f64([3, 4]);
    w.requiresGrad = false;
    x.mul(w).sum().backward();
    expect(w.grad).toBeNull();
    expect(arr(x.grad)).toEqual([3, 4]);
  });

  test("registerHook replaces the gradient flowing through a tensor, and remove() undoes it", () => {
    const x = f64([1, 2]);
    const h = x.mul(2);
    const hook = h.registerHook((g) => g.mul(10));
    h.sum().backward();
    expect(arr(x.grad)).toEqual([20, 20]);
    hook.remove();
    x.grad = null;
    x.mul(2).sum().backward();
    expect(arr(x.grad)).toEqual([2, 2]);
  });
});

describe("in-place changes", () => {
  test("an in-place change of a leaf that requires grad throws", () => {
    const x = f64([1]);
    expect(() => x.add_(1)).toThrow(/add_: a leaf tensor that requires grad is being used in an in-place operation/);
    noGrad(() => x.add_(1));
    expect(arr(x)).toEqual([2]);
  });

  test("an in-place change of a tensor saved for backward throws at backward with its version", () => {
    const x = f64([1, 2]),
      w = f64([3, 4], false);
    const y = x.mul(w).sum();
    w.mul_(2);
    expect(() => y.backward()).toThrow(
      new RegExp(
        "mul: one of the tensors needed for gradient computation has been modified by an in-place operation" +
          ".*version 1; expected version 0",
      ),
    );
  });
});

describe("shape errors", () => {
  test("matmul names the inner dimensions", () => {
    expect(() => matmul(zeros([2, 3]), zeros([4, 2]))).toThrow(/matmul: inner dimensions differ \(3 vs 4\)/);
  });

  test("add names both shapes it cannot broadcast", () => {
    expect(() => add(zeros([2, 3]), zeros([4]))).toThrow(/add: shapes \[2, 3\] and \[4\] cannot be broadcast/);
  });
});

describe("bound gradient buffers", () => {
  test("backward accumulates in place into the buffer, null zeroes it and assignment copies into it", () => {
    const p = f64([1, 2, 3]);
    const buf = new Float64Array(3);
    p.bindGrad(buf);
    p.mul(p).sum().backward();
    p.mul(p).sum().backward();
    expect(Array.from(buf)).toEqual([4, 8, 12]);
    expect(p.grad!.data).toBe(buf);
    p.grad = null;
    expect(Array.from(p.grad!.data)).toEqual([0, 0, 0]); // reading .grad writes the pending zeros
    expect(Array.from(buf)).toEqual([0, 0, 0]);
    expect(p.gradIsBound).toBe(true);
    p.sum().backward();
    expect(Array.from(buf)).toEqual([1, 1, 1]);
    p.sum().backward(); // after the first pass following a zeroing, passes add again
    expect(Array.from(buf)).toEqual([2, 2, 2]);
    const assigned = f64([7, 8, 9], false);
    p.grad = assigned;
    expect(Array.from(buf)).toEqual([7, 8, 9]);
    expect(p.grad!.data).toBe(buf);
    p.sum().backward(); // an assigned gradient is added to, not overwritten
    expect(Array.from(buf)).toEqual([8, 9, 10]);
  });

  test("zeroing is lazy: the next backward overwrites the buffer, syncGrad writes zeros nobody wrote", () => {
    const p = f64([1, 2, 3]);
    const q = f64([4, 5]);
    const bp = new Float64Array(3),
      bq = new Float64Array(2);
    p.bindGrad(bp);
    q.bindGrad(bq);
    p.mul(q.sum()).sum().backward();
    expect(Array.from(bp)).toEqual([9, 9, 9]);
    expect(Array.from(bq)).toEqual([6, 6]);
    p.grad = null;
    q.grad = null;
    expect(Array.from(bp)).toEqual([9, 9, 9]); // not written yet
    p.mul(2).sum().backward(); // q gets no gradient this time
    expect(Array.from(bp)).toEqual([2, 2, 2]); // overwritten, not added to the stale 9s
    expect(Array.from(bq)).toEqual([6, 6]);
    q.syncGrad();
    p.syncGrad(); // nothing pending: leaves the gradient alone
    expect(Array.from(bq)).toEqual([0, 0]);
    expect(Array.from(bp)).toEqual([2, 2, 2]);
    q.grad = null;
    q.grad = f64([1, 1], false); // an assignment after zeroing is kept, not zeroed later
    q.syncGrad();
    expect(Array.from(bq)).toEqual([1, 1]);
    q.grad = null;
    const fresh = Float64Array.from([3, 4]);
    q.bindGrad(fresh); // a new buffer keeps its contents: the pending zeros belong to the old one,
    expect(Array.from(bq)).toEqual([0, 0]); // which gets them on rebinding
    q.syncGrad();
    q.sum().backward();
    expect(Array.from(fresh)).toEqual([4, 5]);
  });
});

class Cube extends Function {
  static override forward(ctx: FunctionCtx, x: Tensor): Tensor {
    ctx.saveForBackward(x);
    return x.pow(3);
  }
  static override backward(ctx: FunctionCtx, g: Tensor): Tensor {
    const [x] = ctx.savedTensors;
    return g.mul(x!.pow(2)).mul(3);
  }
}

/** Deliberately wrong: claims d(x²)/dx = 3x. */
class BadSquare extends Function {
  static override forward(ctx: FunctionCtx, x: Tensor): Tensor {
    ctx.saveForBackward(x);
    return x.mul(x);
  }
  static override backward(ctx: FunctionCtx, g: Tensor): Tensor {
    return g.mul(ctx.savedTensors[0]!).mul(3);
  }
}

describe("custom functions and functional transforms", () => {
  test("a custom Function saves tensors for backward and supports double backward", () => {
    const x = f64([1, -2]);
    const [d1] = grad(Cube.apply(x).sum(), [x], { createGraph: true });
    expect(arr(d1!)).toEqual([3, 12]);
    expect(arr(grad(d1!.sum(), [x])[0]!)).toEqual([6, -12]);
    expect(gradcheck((t) => Cube.apply(t), [f64([0.3, -1.2])])).toBe(true);
    expect(gradgradcheck((t) => Cube.apply(t), [f64([0.3, -1.2])])).toBe(true);
  });

  test("vjp, jacobian, hessian and hvp match closed forms", () => {
    // f(x) = ½ xᵀAx with A symmetric: ∇f = Ax, H = A; g(x) = Ax has Jacobian A.
    const A = f64(
      [
        [2, 1],
        [1, 3],
      ],
      false,
    );
    const x = f64([1, -1], false),
      v = f64([0.5, 2], false);
    const quad = (t: Tensor) => matmul(t, matmul(A, t)).mul(0.5);
    expect(arr(jacobian((t) => matmul(A, t), x)[0]!)).toEqual([2, 1, 1, 3]);
    const [out, [vj]] = vjp((t) => matmul(A, t), x, v);
    expect(arr(out)).toEqual([1, -2]);
    expect(arr(vj!)).toEqual([0.5 * 2 + 2 * 1, 0.5 * 1 + 2 * 3]);
    expect(arr(hessian(quad, x))).toEqual([2, 1, 1, 3]);
    const [fx, hv] = hvp(quad, x, v);
    expect(fx.item()).toBe(0.5 * (2 - 1 - 1 + 3));
    expect(arr(hv)).toEqual([2 * 0.5 + 2, 0.5 + 6]);
  });

  test("gradcheck of a wrong backward reports the worst element with both values", () => {
    const x = f64([1, 2, 3]);
    // Weights wᵢ = sin(1.7i + 0.3) + 1.25; the error |3x − 2x|·wᵢ is largest at element 1.
    const w1 = Math.sin(2.0) + 1.25;
    const numeric = (2 * 2 * w1).toFixed(6).slice(0, -2);
    const analytic = (3 * 2 * w1).toFixed(6).slice(0, -2);
    expect(() => gradcheck((t) => BadSquare.apply(t), [x])).toThrow(
      new RegExp(
        `input 0 at element 1: analytic ${analytic.replace(".", "\\.")}\\d*, ` +
          `numerical ${numeric.replace(".", "\\.")}\\d*`,
      ),
    );
    expect(gradcheck((t) => BadSquare.apply(t), [x], { raiseException: false })).toBe(false);
  });
});

describe("review regressions", () => {
  test("an in-place change to an output that backward reads (exp, max, logsumexp) is caught", () => {
    for (const f of [(x: Tensor) => x.exp(), (x: Tensor) => x.max(), (x: Tensor) => x.logsumexp(0)]) {
      const x = f64([0.5, 1.5]);
      const y = f(x);
      noGrad(() => y.detach().zero_());
      expect(() => y.sum().backward()).toThrow(/modified by an in-place operation/);
    }
  });

  test("an in-place change to where's condition or gather's index is caught", () => {
    const x = f64([1, 2]);
    const c = tensor([true, false]);
    const y = where(c, x, 0);
    c.fill_(0);
    expect(() => y.sum().backward()).toThrow(/modified by an in-place operation/);
    const idx = tensor([[0], [1]]);
    const z = f64([
      [1, 2],
      [3, 4],
    ]).gather(1, idx);
    idx.fill_(1);
    expect(() => z.sum().backward()).toThrow(/modified by an in-place operation/);
  });

  test("the 2-norm and pow(x, 0) have zero gradient at zero, as in PyTorch", () => {
    const x = f64([0, 0, 0]);
    x.norm().backward();
    expect(Array.from(x.grad!.data)).toEqual([0, 0, 0]);
    const y = f64([0, 2]);
    y.pow(0).sum().backward();
    expect(Array.from(y.grad!.data)).toEqual([0, 0]);
  });

  test("a 0-d tensor lifts only the category, as a Python scalar does", () => {
    const f32 = tensor([1, 2, 3], { dtype: "float32" });
    expect(f32.add(tensor(1.5, { dtype: "float64" })).dtype).toBe("float32");
    expect(tensor([1, 2]).mul(tensor(2.5, { dtype: "float64" })).dtype).toBe("float32");
    expect(tensor([1, 2]).mul(tensor(2)).dtype).toBe("int32");
    expect(f32.add(tensor([1.5, 2, 3], { dtype: "float64" })).dtype).toBe("float64");
  });

  test("createGraph into a bound gradient buffer is refused with a message", () => {
    const p = f64([1, 2]);
    p.bindGrad(new Float64Array(2));
    expect(() => p.mul(p).sum().backward(null, { createGraph: true })).toThrow(
      /createGraph cannot accumulate into a bound gradient buffer/,
    );
  });
});
