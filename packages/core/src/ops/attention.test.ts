import { afterEach, describe, expect, test } from "vitest";
import {
  F,
  Generator,
  type Tensor,
  expand,
  grad,
  gradcheck,
  gradgradcheck,
  manualSeed,
  matmul,
  ones,
  randn,
  setSampleContext,
  tensor,
  tril,
} from "../index.js";
import { attend, attentionProbs } from "./attention.js";
import { dropoutMask } from "./dropout.js";

const gen = new Generator(7);
const r = (...shape: number[]): Tensor => randn(shape, { dtype: "float64", generator: gen, requiresGrad: true });
const sdpa = F.scaledDotProductAttention;

interface Reference {
  out: Float64Array;
  p: Float64Array;
}

/**
 * Attention by explicit loops over q [B, L, E], k [B, S, E], v [B, S, C] (leading dims flattened to
 * B): s_ij = scale·Σ_e q_ie·k_je + bias_ij, masked to -∞ above the diagonal when causal; a row of
 * -∞ gives p = 0 (PyTorch's safe softmax), else p = softmax(s); out_ic = Σ_j p_ij·v_jc.
 */
function reference(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: { bias?: (b: number, i: number, j: number) => number; scale?: number; causal?: boolean; drop?: Tensor } = {},
): Reference {
  const [l, e] = q.shape.slice(-2) as [number, number];
  const s = k.shape[k.ndim - 2]!,
    c = v.shape[v.ndim - 1]!;
  const nb = q.numel / (l * e);
  const scale = opts.scale ?? 1 / Math.sqrt(e);
  const out = new Float64Array(nb * l * c),
    p = new Float64Array(nb * l * s);
  const [qd, kd, vd] = [q.data, k.data, v.data];
  for (let b = 0; b < nb; b++) {
    for (let i = 0; i < l; i++) {
      const row = new Float64Array(s);
      for (let j = 0; j < s; j++) {
        let dot = 0;
        for (let x = 0; x < e; x++) dot += qd[(b * l + i) * e + x]! * kd[(b * s + j) * e + x]!;
        row[j] = opts.causal && j > i ? -Infinity : scale * dot + (opts.bias ? opts.bias(b, i, j) : 0);
      }
      const m = Math.max(...row);
      let total = 0;
      for (let j = 0; j < s; j++) total += m === -Infinity ? 0 : Math.exp(row[j]! - m);
      for (let j = 0; j < s; j++) {
        const pij = m === -Infinity ? 0 : Math.exp(row[j]! - m) / total;
        p[(b * l + i) * s + j] = pij;
        const w = opts.drop ? pij * opts.drop.data[(b * l + i) * s + j]! : pij;
        for (let x = 0; x < c; x++) out[(b * l + i) * c + x]! += w * vd[(b * s + j) * c + x]!;
      }
    }
  }
  return { out, p };
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-12): void {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  expect(worst).toBeLessThanOrEqual(tol);
}

/** A bias function reading a mask broadcast to [B, L, S]: bool true = attend, float added. */
function biasOf(mask: Tensor, shape: number[]): (b: number, i: number, j: number) => number {
  const full = expand(mask, shape).data;
  const [l, s] = shape.slice(-2) as [number, number];
  return (b, i, j) => {
    const m = full[(b * l + i) * s + j]!;
    return mask.dtype === "bool" ? (m ? 0 : -Infinity) : m;
  };
}

describe("scaledDotProductAttention matches attention computed by explicit loops", () => {
  test("3-D operands with L ≠ S and Ev ≠ E", () => {
    const q = r(2, 3, 4),
      k = r(2, 5, 4),
      v = r(2, 5, 3);
    const out = sdpa(q, k, v);
    expect(out.shape).toEqual([2, 3, 3]);
    expectClose(out.data, reference(q, k, v).out);
  });

  test("4-D operands with a boolean mask (true takes part) broadcast over batch and heads", () => {
    const q = r(2, 2, 3, 4),
      k = r(2, 2, 5, 4),
      v = r(2, 2, 5, 2);
    const mask = tensor([
      [true, false, true, true, false],
      [false, false, false, false, true],
      [true, true, true, true, true],
    ]);
    const out = sdpa(q, k, v, { attnMask: mask });
    expectClose(out.data, reference(q, k, v, { bias: biasOf(mask, [2, 2, 3, 5]) }).out);
  });

  test("an additive float mask and an explicit scale", () => {
    const q = r(2, 2, 3, 4),
      k = r(2, 2, 5, 4),
      v = r(2, 2, 5, 2);
    const mask = randn([2, 1, 3, 5], { dtype: "float64", generator: gen });
    const out = sdpa(q, k, v, { attnMask: mask, scale: 0.3 });
    expectClose(out.data, reference(q, k, v, { bias: biasOf(mask, [2, 2, 3, 5]), scale: 0.3 }).out);
  });

  test("isCausal masks the keys after each query (top-left aligned when L ≠ S)", () => {
    for (const [l, s] of [
      [4, 4],
      [3, 5],
    ] as const) {
      const q = r(2, l, 3),
        k = r(2, s, 3),
        v = r(2, s, 2);
      expectClose(sdpa(q, k, v, { isCausal: true }).data, reference(q, k, v, { causal: true }).out);
      // the same as the boolean mask tril(ones(L, S)), PyTorch's definition
      const causal = tril(ones([l, s], { dtype: "bool" }));
      expectClose(sdpa(q, k, v, { isCausal: true }).data, sdpa(q, k, v, { attnMask: causal }).data, 0);
    }
  });

  test("unbatched 2-D operands", () => {
    const q = r(3, 4),
      k = r(6, 4),
      v = r(6, 5);
    expectClose(sdpa(q, k, v).data, reference(q, k, v).out);
  });

  test("leading dims broadcast as in matmul", () => {
    const q = r(2, 3, 3, 4),
      k = r(1, 3, 5, 4),
      v = r(3, 5, 2);
    const out = sdpa(q, k, v);
    expect(out.shape).toEqual([2, 3, 3, 2]);
    const ke = expand(k, [2, 3, 5, 4]),
      ve = expand(v, [2, 3, 5, 2]);
    expectClose(out.data, reference(q, ke, ve).out);
    // the gradient of a broadcast operand is summed over the broadcast dims
    const [dk] = grad(out.sum(), [k]);
    const kLeaf = ke.detach().requiresGrad_();
    const [dke] = grad(sdpa(q, kLeaf, ve).sum(), [kLeaf]);
    expect(dk!.shape).toEqual([1, 3, 5, 4]);
    expectClose(dk!.data, dke!.sum(0, true).data);
  });

  test("float32 operands agree with float64 to float32 precision", () => {
    const q = r(2, 2, 6, 8),
      k = r(2, 2, 7, 8),
      v = r(2, 2, 7, 8);
    const out32 = sdpa(q.to("float32"), k.to("float32"), v.to("float32"), { isCausal: true });
    expect(out32.dtype).toBe("float32");
    expectClose(out32.data, reference(q, k, v, { causal: true }).out, 1e-5);
  });
});

describe("attention probabilities and gradients", () => {
  test("attentionProbs is the softmax of the scaled, biased scores", () => {
    const q = r(2, 3, 4),
      k = r(2, 5, 4);
    const bias = randn([3, 5], { dtype: "float64", generator: gen });
    const p = attentionProbs(q, k, bias, 0.7);
    expectClose(p.data, reference(q, k, r(2, 5, 1), { bias: biasOf(bias, [2, 3, 5]), scale: 0.7 }).p);
  });

  // dV = Pᵀg, dP = g·Vᵀ, dS = P⊙(dP − Σ_row dP⊙P), dQ = scale·dS·K, dK = scale·dSᵀ·Q
  test("first-order gradients equal the formulas for dQ, dK and dV", () => {
    const [b, l, s, e, c] = [2, 3, 4, 3, 2];
    const q = r(b, l, e),
      k = r(b, s, e),
      v = r(b, s, c),
      g = randn([b, l, c], { dtype: "float64", generator: gen });
    const scale = 0.9;
    const { p } = reference(q, k, v, { scale, causal: true });
    const [dq, dk, dv] = grad(sdpa(q, k, v, { scale, isCausal: true }), [q, k, v], { gradOutputs: g });
    const want = { q: new Float64Array(q.numel), k: new Float64Array(k.numel), v: new Float64Array(v.numel) };
    for (let n = 0; n < b; n++) {
      for (let i = 0; i < l; i++) {
        const dp = new Float64Array(s);
        let rowSum = 0;
        for (let j = 0; j < s; j++) {
          for (let x = 0; x < c; x++) {
            dp[j]! += g.data[(n * l + i) * c + x]! * v.data[(n * s + j) * c + x]!;
            want.v[(n * s + j) * c + x]! += p[(n * l + i) * s + j]! * g.data[(n * l + i) * c + x]!;
          }
          rowSum += dp[j]! * p[(n * l + i) * s + j]!;
        }
        for (let j = 0; j < s; j++) {
          const ds = p[(n * l + i) * s + j]! * (dp[j]! - rowSum);
          for (let x = 0; x < e; x++) {
            want.q[(n * l + i) * e + x]! += scale * ds * k.data[(n * s + j) * e + x]!;
            want.k[(n * s + j) * e + x]! += scale * ds * q.data[(n * l + i) * e + x]!;
          }
        }
      }
    }
    expectClose(dq!.data, want.q);
    expectClose(dk!.data, want.k);
    expectClose(dv!.data, want.v);
  });

  test("gradients of every order with a learnable float mask, causal masking and dropout", () => {
    const q = r(2, 3, 2),
      k = r(2, 4, 2),
      v = r(2, 4, 3),
      bias = r(3, 4);
    manualSeed(3);
    const drop = dropoutMask([2, 3, 4], "float64", 0.4);
    const f = (a: Tensor, b: Tensor, c: Tensor, m: Tensor) => attend(a, b, c, m, 0.8, true, drop).output;
    expect(gradcheck(f, [q, k, v, bias])).toBe(true);
    expect(gradgradcheck(f, [q, k, v, bias])).toBe(true);
    const w = (a: Tensor, b: Tensor, m: Tensor) => attend(a, b, v.detach(), m, 0.8, false, drop).weights;
    expect(gradgradcheck(w, [q, k, bias])).toBe(true);
  });

  test("a query whose keys are all masked gets zero weights, a zero output and zero gradients", () => {
    const q = r(1, 3, 2),
      k = r(1, 4, 2),
      v = r(1, 4, 2);
    const mask = tensor([
      [true, true, false, false],
      [false, false, false, false],
      [false, true, true, true],
    ]);
    const out = sdpa(q, k, v, { attnMask: mask });
    expectClose(out.data, reference(q, k, v, { bias: biasOf(mask, [1, 3, 4]) }).out);
    expect([...out.data.slice(2, 4)]).toEqual([0, 0]);
    const [dq, dk, dv] = grad(out.sum(), [q, k, v]);
    expect([...dq!.data.slice(2, 4)]).toEqual([0, 0]);
    for (const d of [dq!, dk!, dv!]) expect([...d.data].every(Number.isFinite)).toBe(true);
    // the same with an all -Infinity float row
    const floatMask = tensor(
      [
        [0, 0, 0, 0],
        [-Infinity, -Infinity, -Infinity, -Infinity],
        [0, 0, 0, 0],
      ],
      {
        dtype: "float64",
      },
    );
    expect([...sdpa(q, k, v, { attnMask: floatMask }).data.slice(2, 4)]).toEqual([0, 0]);
  });

  test("a NaN score makes its row NaN and leaves the other rows alone", () => {
    const q = r(1, 2, 2).detach();
    q.data[0] = Number.NaN;
    const out = sdpa(q, r(1, 3, 2), r(1, 3, 2));
    expect([...out.data.slice(0, 2)].every(Number.isNaN)).toBe(true);
    expect([...out.data.slice(2)].every(Number.isFinite)).toBe(true);
  });
});

describe("attention dropout", () => {
  afterEach(() => setSampleContext(null));

  test("draws the same mask as F.dropout from the default generator", () => {
    const q = r(2, 3, 4),
      k = r(2, 5, 4),
      v = r(2, 5, 3);
    manualSeed(11);
    const out = sdpa(q, k, v, { dropoutP: 0.3 });
    manualSeed(11);
    const drop = F.dropout(ones([2, 3, 5], { dtype: "float64" }), 0.3);
    expect([...drop.data].some((x) => x === 0)).toBe(true);
    expectClose(out.data, reference(q, k, v, { drop }).out);
  });

  test("dropoutP 1 drops everything; dropoutP outside [0, 1] is refused", () => {
    const q = r(1, 2, 2),
      k = r(1, 3, 2),
      v = r(1, 3, 2);
    expect([...sdpa(q, k, v, { dropoutP: 1 }).data]).toEqual([0, 0, 0, 0]);
    expect(() => sdpa(q, k, v, { dropoutP: 1.5 })).toThrow(
      /scaledDotProductAttention: dropoutP must be in \[0, 1\], got 1.5/,
    );
  });

  test("inside a trainer's sample context a row's mask depends on its sample index only", () => {
    const q = r(3, 2, 4),
      k = r(3, 5, 4),
      v = r(3, 5, 3);
    setSampleContext({ seed: 5, step: 2, firstSample: 10 });
    const all = sdpa(q, k, v, { dropoutP: 0.5 });
    // the last row alone, as a worker holding only sample 12 would compute it
    setSampleContext({ seed: 5, step: 2, firstSample: 12 });
    const last = sdpa(q.slice(0, 2), k.slice(0, 2), v.slice(0, 2), { dropoutP: 0.5 });
    expectClose(all.data.slice(2 * 2 * 3), last.data, 0);
    expect(all.data.slice(0, 6)).not.toEqual(last.data);
  });
});

describe("scaledDotProductAttention refuses bad input with the reason", () => {
  const q = r(2, 3, 4),
    k = r(2, 5, 4),
    v = r(2, 5, 3);

  test.each<[string, () => unknown, RegExp]>([
    [
      "attnMask with isCausal",
      () => sdpa(q, k, v, { attnMask: ones([3, 5], { dtype: "bool" }), isCausal: true }),
      /scaledDotProductAttention: pass either attnMask or isCausal, not both/,
    ],
    ["query and key widths", () => sdpa(q, r(2, 5, 3), v), /query and key differ in their last dim \(4 vs 3\)/],
    [
      "key and value lengths",
      () => sdpa(q, k, r(2, 6, 3)),
      /expected value \[\.\.\., S, Ev\] with S = 5 and the query's leading dims, got \[2, 6, 3\]/,
    ],
    [
      "dtypes",
      () => sdpa(q, k, v.to("float32")),
      /query, key and value must share one floating point dtype, got float64, float64, float32/,
    ],
    ["a 1-D operand", () => sdpa(r(4), k, v), /query, key and value need at least 2 dims/],
    [
      "an integer mask",
      () => sdpa(q, k, v, { attnMask: ones([3, 5], { dtype: "int32" }) }),
      /attnMask must be bool or floating point, got int32/,
    ],
    [
      "a mask of the wrong shape",
      () => sdpa(q, k, v, { attnMask: ones([3, 4], { dtype: "bool" }) }),
      /attnMask of shape \[3, 4\] does not broadcast to \[2, 3, 5\]/,
    ],
    ["leading dims", () => sdpa(q, r(3, 5, 4), r(3, 5, 3)), /scaledDotProductAttention/],
    ["a non-finite scale", () => sdpa(q, k, v, { scale: Number.NaN }), /scale must be a finite number, got NaN/],
  ])("%s", (_name, call, message) => {
    expect(call).toThrow(message);
  });
});

test("matmul of 4-D operands multiplies every [b, h] slice", () => {
  const a = r(2, 3, 4, 5),
    b = r(2, 3, 5, 6);
  const out = matmul(a, b);
  expect(out.shape).toEqual([2, 3, 4, 6]);
  const want = new Float64Array(2 * 3 * 4 * 6);
  for (let s = 0; s < 6; s++) {
    for (let i = 0; i < 4; i++) {
      for (let j = 0; j < 6; j++) {
        for (let x = 0; x < 5; x++)
          want[(s * 4 + i) * 6 + j]! += a.data[(s * 4 + i) * 5 + x]! * b.data[(s * 5 + x) * 6 + j]!;
      }
    }
  }
  expectClose(out.data, want);
});

test("changing the returned weights in place is caught at backward", () => {
  const q = r(1, 2, 2),
    k = r(1, 3, 2),
    v = r(1, 3, 2);
  const { output, weights } = attend(q, k, v, null, 1, false, null);
  weights.detach().mul_(2); // a detached view shares storage and version counter
  expect(() => output.sum().backward()).toThrow(
    /scaledDotProductAttention: one of the tensors needed for gradient computation has been modified by an in-place/,
  );
});
