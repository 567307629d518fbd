import { describe, expect, it } from "vitest";
import { grad, logSoftmax, softmax, tensor } from "../index.js";

const f64 = (v: number[], shape: number[]) => tensor(Float64Array.from(v), { shape }).requiresGrad_();
// log-softmax of one row by the textbook formula, in float64
const reference = (row: number[]) => {
  const m = Math.max(...row);
  const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
  return row.map((v) => v - lse);
};

describe("fused logSoftmax", () => {
  it("matches x - logsumexp(x) along any dim, stably for large logits", () => {
    const x = f64([1000, 1001, 1002, -3, 0.5, 2, 7, 7, 7, 1e-3, -1e-3, 0], [2, 2, 3]);
    const last = logSoftmax(x, -1).data;
    const rows = [
      [1000, 1001, 1002],
      [-3, 0.5, 2],
      [7, 7, 7],
      [1e-3, -1e-3, 0],
    ];
    rows.forEach((row, i) => {
      reference(row).forEach((v, j) => {
        expect(last[3 * i + j]).toBeCloseTo(v, 12);
      });
    });
    const d0 = logSoftmax(x, 0).data; // rows run across the first dim: (0, j) with (1, j)
    for (let j = 0; j < 6; j++)
      reference([x.data[j]!, x.data[6 + j]!]).forEach((v, i) => {
        expect(d0[6 * i + j]).toBeCloseTo(v, 12);
      });
    expect(Array.from(softmax(x, -1).data.slice(6, 9))).toEqual(
      [1 / 3, 1 / 3, 1 / 3].map((v) => expect.closeTo(v, 15)),
    );
  });

  it("-inf entries get probability 0 and zero gradient; an all -inf row is NaN, as in PyTorch", () => {
    const x = f64(
      [Number.NEGATIVE_INFINITY, 0, 0, Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY],
      [2, 3],
    );
    const y = logSoftmax(x);
    expect(Array.from(y.data.slice(0, 3))).toEqual([Number.NEGATIVE_INFINITY, -Math.LN2, -Math.LN2]);
    expect(y.data.slice(3).every(Number.isNaN)).toBe(true);
    const [g] = grad(y.narrow(0, 0, 1).narrow(1, 1, 1).sum(), [x]); // d logSoftmax(x)[0, 1] / dx[0] = onehot(1) - p
    expect(Array.from(g!.data.slice(0, 3))).toEqual([0, 0.5, -0.5]);
  });

  it("double backward through the fused gradient equals the analytic Hessian of log-softmax", () => {
    // f(x) = Σ_j w_j·logSoftmax(x)_j; ∇f = w - p·Σw; H = -(Σw)·(diag(p) - p pᵀ)
    const x = f64([0.3, -1.2, 2.0], [3]);
    const w = tensor(Float64Array.from([0.5, -2, 1]), { shape: [3] });
    const [gx] = grad(logSoftmax(x).mul(w).sum(), [x], { createGraph: true });
    const e = [0.3, -1.2, 2.0].map(Math.exp),
      z = e.reduce((a, b) => a + b),
      p = e.map((v) => v / z),
      sw = -0.5;
    p.forEach((pj, j) => {
      expect(gx!.data[j]).toBeCloseTo([0.5, -2, 1][j]! - pj * sw, 12);
    });
    for (let i = 0; i < 3; i++) {
      const [row] = grad(gx!.narrow(0, i, 1).sum(), [x], { retainGraph: true });
      for (let j = 0; j < 3; j++) expect(row!.data[j]).toBeCloseTo(-sw * ((i === j ? p[i]! : 0) - p[i]! * p[j]!), 12);
    }
  });

  it("float32 results below FLT_MIN are flushed; 0-d tensors are one class; dim must be a single number", () => {
    const y = logSoftmax(tensor(Float32Array.from([0, -88]), { shape: [2] }));
    expect(y.data[0]).toBe(0); // -exp(-88) ≈ -6e-39 would be subnormal in float32
    expect(y.data[1]).toBeCloseTo(-88, 4);
    const s = tensor(Float64Array.from([5]), { shape: [] }).requiresGrad_();
    const z = logSoftmax(s);
    expect(z.shape).toEqual([]);
    expect(z.data[0]).toBe(0);
    expect(grad(z, [s])[0]!.data[0]).toBe(0);
    expect(() => logSoftmax(f64([1, 2], [2]), [0, 1] as unknown as number)).toThrow(
      /logSoftmax: dim must be one dimension \(a number\), got \[0,1\]/,
    );
    expect(() => logSoftmax(s, 1)).toThrow(/logSoftmax: dim 1 is out of range for a 0-d tensor/);
    expect(() => logSoftmax(tensor(Int32Array.from([1, 2]), { shape: [2] }))).toThrow(
      /logSoftmax: expected a floating point tensor, got int32/,
    );
  });
});
