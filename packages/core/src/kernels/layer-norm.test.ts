import { describe, expect, it } from "vitest";
import { grad } from "../autograd/engine.js";
import { tensor } from "../tensor/creation.js";
import { mulberry32 } from "../tensor/random.js";
import { layerNormBackward, layerNormalize } from "../ops/layer-norm.js";
import { mul } from "../ops/elementwise.js";
import { sum } from "../ops/reduce.js";
import { layerNorm } from "../nn/functional.js";
import * as kern from "./layer-norm.js";
import { setDefaultWasmKernels } from "./wasm/matmul-kernel.js";
import { runInStepRegion } from "./wasm/step-region.js";
import { createWasmKernels } from "./wasm/wasm-kernels.js";

// The SIMD LayerNorm kernels (operands inside this thread's wasm memory) against their JavaScript
// twins (operands on the heap), and both against the formulas.
const k = createWasmKernels({ heapBytes: 4 << 20, scratchBytes: 16 << 20 });
setDefaultWasmKernels(k);

function values(n: number, seed: number, scale = 3, shift = 0): Float32Array {
  const rand = mulberry32(seed);
  return Float32Array.from({ length: n }, () => shift + (rand() - 0.5) * 2 * scale);
}
const inside = (a: Float32Array): Float32Array => {
  const v = k.allocF32(a.length);
  v.set(a);
  return v;
};
const bits = (a: Float32Array) =>
  Array.from(a, (v) => (Number.isNaN(v) ? "NaN" : new Uint32Array(Float32Array.of(v).buffer)[0]!));

describe("LayerNorm kernels", () => {
  it.each([
    [1, 1],
    [3, 2],
    [2, 3],
    [4, 5],
    [3, 128],
    [2, 131],
  ])("forward and backward give the same bits in both backends, and the formulas (%i x %i)", (rows, n) => {
    const x = values(rows * n, n, 3, 5), // off-centre rows: the mean matters
      g = values(rows * n, n + 1);
    const js = [new Float32Array(x.length), new Float32Array(x.length)];
    kern.layerNormForward(x, js[0]!, rows, n, 1e-5);
    kern.layerNormBackward(g, x, js[1]!, rows, n, 1e-5);
    const w = [k.allocF32(x.length), k.allocF32(x.length)];
    const [xi, gi] = [inside(x), inside(g)];
    kern.layerNormForward(xi, w[0]!, rows, n, 1e-5);
    kern.layerNormBackward(gi, xi, w[1]!, rows, n, 1e-5);
    expect(w.map(bits)).toEqual(js.map(bits));
    for (let r = 0; r < rows; r++) {
      const row = Array.from(x.subarray(r * n, (r + 1) * n));
      const gr = Array.from(g.subarray(r * n, (r + 1) * n));
      const mu = row.reduce((a, v) => a + v, 0) / n;
      const rstd = 1 / Math.sqrt(row.reduce((a, v) => a + (v - mu) ** 2, 0) / n + 1e-5);
      const xh = row.map((v) => (v - mu) * rstd);
      const gm = gr.reduce((a, v) => a + v, 0) / n;
      const a = gr.reduce((s, v, j) => s + v * xh[j]!, 0) / n;
      xh.forEach((v, j) => {
        expect(js[0]![r * n + j]).toBeCloseTo(v, 5);
        expect(js[1]![r * n + j]).toBeCloseTo(rstd * (gr[j]! - gm - v * a), 4);
      });
    }
  });

  it("the ops take the SIMD kernels inside a step region and give the bits they give outside", () => {
    const x0 = values(6 * 200, 5, 2, 1);
    const run = () => {
      const x = tensor(x0.slice(), { shape: [6, 200], requiresGrad: true });
      const y = layerNormalize(x, 1);
      const [dx] = grad(sum(mul(y, y.detach())), [x]);
      return { inRegion: k.contains(dx!.data as Float32Array), out: [y, dx!].map((t) => bits(t.data as Float32Array)) };
    };
    const outside = run();
    const inRegion = runInStepRegion(k, run);
    expect([outside.inRegion, inRegion.inRegion]).toEqual([false, true]);
    expect(inRegion.out).toEqual(outside.out);
  });

  it("F.layerNorm matches the composite definition in float64", () => {
    const x = tensor(Float64Array.from(values(24, 9, 2, 3)), { shape: [2, 3, 4] });
    const w = tensor(Float64Array.from(values(12, 10)), { shape: [3, 4] });
    const b = tensor(Float64Array.from(values(12, 11)), { shape: [3, 4] });
    const y = layerNorm(x, [3, 4], w, b, 1e-3).data;
    for (let r = 0; r < 2; r++) {
      const row = Array.from(x.data.subarray(r * 12, r * 12 + 12));
      const mu = row.reduce((a, v) => a + v, 0) / 12;
      const sd = Math.sqrt(row.reduce((a, v) => a + (v - mu) ** 2, 0) / 12 + 1e-3);
      row.forEach((v, j) => {
        expect(y[r * 12 + j]).toBeCloseTo(((v - mu) / sd) * w.data[j]! + b.data[j]!, 13);
      });
    }
  });

  it("mismatched operands are refused, naming the problem", () => {
    const x = tensor(Float32Array.of(1, 2, 3), { shape: [1, 3] });
    expect(() => layerNormalize(x, 3)).toThrow(
      /layerNormalize: cannot normalize the last 3 dims of a tensor of shape \[1, ?3\]/,
    );
    expect(() => layerNormBackward(tensor(Float32Array.of(1, 2), { shape: [1, 2] }), x, 1)).toThrow(
      /layerNormBackward: g \[1, ?2\] float32 must match x \[1, ?3\] float32/,
    );
  });
});
