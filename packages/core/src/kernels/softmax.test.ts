import { describe, expect, it } from "vitest";
import { tensor } from "../tensor/creation.js";
import { mulberry32 } from "../tensor/random.js";
import { mul, sub } from "../ops/elementwise.js";
import { sum } from "../ops/reduce.js";
import { softmax, softmaxBackward } from "../ops/softmax.js";
import { softmaxBackwardRows, softmaxRows } from "./softmax.js";
import { setDefaultWasmKernels } from "./wasm/matmul-kernel.js";
import { runInStepRegion } from "./wasm/step-region.js";
import { createWasmKernels } from "./wasm/wasm-kernels.js";

// The SIMD softmax kernels (operands inside this thread's wasm memory) against their JavaScript twins
// (operands on the heap), and both against the formulas.
const k = createWasmKernels({ heapBytes: 4 << 20, scratchBytes: 16 << 20 });
setDefaultWasmKernels(k);

function values(n: number, seed: number, scale = 4): Float32Array {
  const rand = mulberry32(seed);
  return Float32Array.from({ length: n }, () => (rand() - 0.5) * 2 * scale);
}
const inside = (a: Float32Array): Float32Array => {
  const v = k.allocF32(a.length);
  v.set(a);
  return v;
};
const bits = (a: Float32Array) =>
  Array.from(a, (v) => (Number.isNaN(v) ? "NaN" : new Uint32Array(Float32Array.of(v).buffer)[0]!));

describe("softmax kernels", () => {
  it.each([
    [1, 1],
    [3, 2],
    [4, 3],
    [5, 37],
    [6, 64],
  ])("forward gives the same bits in both backends, with and without bias and causal mask (%i x %i)", (rows, cols) => {
    const x = values(rows * cols, cols);
    x[0] = Number.NEGATIVE_INFINITY; // a masked score
    const bias = values(rows * cols, cols + 1, 1);
    if (rows > 2) for (let j = 0; j < cols; j++) bias[2 * cols + j] = Number.NEGATIVE_INFINITY; // a fully masked row
    if (rows > 3) x[3 * cols + cols - 1] = Number.NaN; // a NaN row
    for (const b of [null, bias])
      for (const isCausal of [false, true]) {
        const js = x.slice();
        softmaxRows(js, b, rows, 2, cols, 0.37, isCausal);
        const w = inside(x);
        softmaxRows(w, b === null ? null : inside(b), rows, 2, cols, 0.37, isCausal);
        expect(bits(w)).toEqual(bits(js));
        // against the formula, row by row, in float64
        for (let r = 0; r < rows; r++) {
          const limit = isCausal ? Math.min((r % 2) + 1, cols) : cols;
          const v = Array.from({ length: cols }, (_, j) =>
            j < limit ? 0.37 * x[r * cols + j]! + (b === null ? 0 : b[r * cols + j]!) : -Infinity,
          );
          const m = Math.max(...v);
          const total = v.reduce((a, u) => a + Math.exp(u - m), 0);
          v.forEach((u, j) => {
            const got = js[r * cols + j]!;
            if (Number.isNaN(m)) expect(got).toBeNaN();
            else if (m === -Infinity) expect(got).toBe(0);
            else expect(Math.abs(got - Math.exp(u - m) / total)).toBeLessThanOrEqual(2 ** -24 * (got + 1e-30) + 1e-38);
          });
        }
      }
  });

  it.each([
    [1, 1],
    [2, 3],
    [3, 8],
    [4, 37],
  ])("backward gives the bits of p·(g - Σ g·p) as float32 ops, in both backends (%i x %i)", (rows, cols) => {
    const g = values(rows * cols, 7 + cols),
      p = values(rows * cols, 9 + cols, 0.5).map(Math.abs);
    const js = new Float32Array(g.length);
    softmaxBackwardRows(g, p, js, rows, cols);
    const w = k.allocF32(g.length);
    softmaxBackwardRows(inside(g), inside(p), w, rows, cols);
    expect(bits(w)).toEqual(bits(js));
    const gt = tensor(g, { shape: [rows, cols] }),
      pt = tensor(p, { shape: [rows, cols] });
    expect(bits(js)).toEqual(bits(mul(pt, sub(gt, sum(mul(gt, pt), -1, true))).data as Float32Array));
  });

  it("the ops take the SIMD kernels inside a step region and give the bits they give outside", () => {
    const x0 = values(8 * 130, 21);
    const run = () => {
      const x = tensor(x0.slice(), { shape: [8, 130] });
      const p = softmax(x);
      const dx = softmaxBackward(tensor(x0.slice().reverse(), { shape: [8, 130] }), p);
      return { inRegion: k.contains(dx.data as Float32Array), out: [p, dx].map((t) => bits(t.data as Float32Array)) };
    };
    const outside = run();
    const inRegion = runInStepRegion(k, run);
    expect([outside.inRegion, inRegion.inRegion]).toEqual([false, true]);
    expect(inRegion.out).toEqual(outside.out);
  });

  it("a gradient that does not match p is refused, naming both", () => {
    expect(() =>
      softmaxBackward(tensor(Float32Array.of(1, 2), { shape: [1, 2] }), tensor([[0.5, 0.25, 0.25]])),
    ).toThrow(/softmaxBackward: g \[1, ?2\] float32 must match p \[1, ?3\] float32/);
  });
});
