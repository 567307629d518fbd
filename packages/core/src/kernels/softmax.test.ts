import { describe, expect, it } from "vitest";
import { tensor } from "../tensor/creation.js";
import { mulberry32 } from "../tensor/random.js";
import { mul, sub } from "../ops/elementwise.js";
import { sum } from "../ops/reduce.js";
import { logSoftmax, logSoftmaxBackward, softmax, softmaxBackward } from "../ops/softmax.js";
import { nn } from "../index.js";
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
            // e^(v - m) in f32 arithmetic within 2 ulp, the division in f64: 3·2^-24 relative
            else
              expect(Math.abs(got - Math.exp(u - m) / total)).toBeLessThanOrEqual(3 * 2 ** -24 * (got + 1e-30) + 1e-38);
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

  it.each([
    [1, 1],
    [3, 2],
    [7, 5],
    [9, 37],
    [9, 256],
  ])("log-softmax forward and backward give the same bits in wasm memory as on the heap (%i x %i)", (rows, cols) => {
    const x = values(rows * cols, cols + 2, 30);
    x[0] = -1000; // e^(x - max) below the exponent clamp
    if (rows > 1) x.fill(Number.NEGATIVE_INFINITY, cols, 2 * cols); // all -inf: NaN row
    if (rows > 3) x[3 * cols + (cols >> 1)] = Number.POSITIVE_INFINITY;
    if (rows > 4) x[4 * cols] = Number.NaN;
    if (rows > 5) x.fill(-5, 5 * cols, 6 * cols); // equal logits: exact results
    const g = values(rows * cols, cols + 3, 1);
    g[1] = 1e-39; // a subnormal gradient entry
    // y: log-probabilities from the forward, and one row holding a y > 0 (Math.exp there)
    const y = values(rows * cols, cols + 4, 3).map((v) => -Math.abs(v));
    if (rows > 2) y[2 * cols] = 0.5;
    const run = (wrap: (a: Float32Array) => Float32Array) => {
      const xt = tensor(wrap(x), { shape: [rows, cols] });
      const fwd = logSoftmax(xt, -1).data as Float32Array;
      const bwd = logSoftmaxBackward(
        tensor(wrap(g), { shape: [rows, cols] }),
        tensor(wrap(y), { shape: [rows, cols] }),
        -1,
      );
      return {
        inWasm: k.contains(fwd) && k.contains(bwd.data as Float32Array),
        out: [bits(fwd), bits(bwd.data as Float32Array)],
      };
    };
    const heap = run((a) => a.slice());
    const wasm = runInStepRegion(k, () => run(inside));
    expect([heap.inWasm, wasm.inWasm]).toEqual([false, rows * cols * 4 >= 1024]);
    expect(wasm.out).toEqual(heap.out);
  });

  it("log-softmax's float32 values and its loss gradient stay within float32 rounding of float64's", () => {
    const [rows, cols] = [64, 256];
    const x = values(rows * cols, 41, 8);
    const target = tensor(
      Int32Array.from({ length: rows }, (_, i) => (i * 37) % cols),
      { dtype: "int32" },
    );
    const run = (data: Float32Array | Float64Array) =>
      runInStepRegion(k, () => {
        const xt = tensor(data instanceof Float32Array ? inside(data) : data, {
          shape: [rows, cols],
          requiresGrad: true,
        });
        const y = logSoftmax(xt, -1);
        nn.F.nllLoss(y, target).backward();
        return { y: Array.from(y.data), dx: Array.from(xt.grad!.data) };
      });
    const f32 = run(x),
      f64 = run(Float64Array.from(x));
    f32.y.forEach((v, i) => {
      expect(Math.abs(v - f64.y[i]!)).toBeLessThanOrEqual(Math.abs(f64.y[i]!) * 2 ** -23 + 1e-6);
    });
    f32.dx.forEach((v, i) => {
      expect(Math.abs(v - f64.dx[i]!)).toBeLessThanOrEqual(1e-7);
    });
  });

  it("a gradient that does not match p is refused, naming both", () => {
    expect(() =>
      softmaxBackward(tensor(Float32Array.of(1, 2), { shape: [1, 2] }), tensor([[0.5, 0.25, 0.25]])),
    ).toThrow(/softmaxBackward: g \[1, ?2\] float32 must match p \[1, ?3\] float32/);
  });
});
