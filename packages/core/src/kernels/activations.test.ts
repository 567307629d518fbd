import { describe, expect, it } from "vitest";
import { grad } from "../autograd/engine.js";
import { tensor } from "../tensor/creation.js";
import { mulberry32 } from "../tensor/random.js";
import type { Tensor } from "../tensor/tensor.js";
import { sigmoid, sigmoidBackward, tanh, tanhBackward, tanhDoubleBackward } from "../ops/activations.js";
import { mul, sub } from "../ops/elementwise.js";
import { sum } from "../ops/reduce.js";
import * as act from "./activations.js";
import { getKernelBackend, setKernelBackend } from "./backend.js";
import { setDefaultWasmKernels } from "./wasm/matmul-kernel.js";
import { runInStepRegion } from "./wasm/step-region.js";
import { createWasmKernels } from "./wasm/wasm-kernels.js";

// The SIMD kernels (operands inside this thread's wasm memory) and their JavaScript twins (operands
// on the heap) must give the same bits, and both must agree with the formulas.
const k = createWasmKernels({ heapBytes: 4 << 20, scratchBytes: 16 << 20 });
setDefaultWasmKernels(k);

const FLT_MIN = 1.1754943508222875e-38;
const SPECIAL = [0, -0, 1e-40, -1e-40, FLT_MIN, -2e-38, 1e-20, -3, 2.5, 9.5, -30, 95, -200, NaN, Infinity, -Infinity];

/** n float32 values: the specials first, then a spread over [-12, 12) with some near 0. */
function values(n: number, seed: number, scale = 12): Float32Array {
  const rand = mulberry32(seed);
  return Float32Array.from({ length: n }, (_, i) => {
    if (i < SPECIAL.length) return SPECIAL[(i + seed) % SPECIAL.length]!;
    const u = (rand() - 0.5) * 2 * scale;
    return i % 5 === 0 ? u * 1e-3 : u;
  });
}
const inside = (a: Float32Array): Float32Array => {
  const v = k.allocF32(a.length);
  v.set(a);
  return v;
};
// Bits, with every NaN written as one NaN (its payload is not part of the contract).
const bits = (a: Float32Array) =>
  Array.from(a, (v) => (Number.isNaN(v) ? "NaN" : new Uint32Array(Float32Array.of(v).buffer)[0]!));

const LENGTHS = [0, 1, 2, 3, 5, 7, 37, 1030];

describe("tanh and sigmoid kernels: SIMD against the JavaScript twin", () => {
  it.each(LENGTHS)("forward kernels give the same bits in both backends (n = %i)", (n) => {
    const x = values(n, n + 1);
    for (const kernel of [act.tanhForward, act.sigmoidForward]) {
      const js = new Float32Array(n);
      kernel(x, js);
      const wasm = k.allocF32(n);
      kernel(inside(x), wasm);
      expect(bits(wasm)).toEqual(bits(js));
      expect(js.some((v) => v !== 0 && Math.abs(v) < FLT_MIN)).toBe(false); // no subnormal survives
    }
  });

  it.each(LENGTHS)("backward and double backward give the same bits in both backends (n = %i)", (n) => {
    const g = values(n, 3, 4),
      gg = values(n, 5, 4).reverse();
    // y as the forward makes it (in [-1, 1] or [0, 1]) and also any value, specials included
    for (const y of [values(n, 7).map(Math.tanh), values(n, 9).map((v) => 1 / (1 + Math.exp(-v))), values(n, 11)]) {
      for (const kernel of [act.tanhBackward, act.sigmoidBackward]) {
        const js = new Float32Array(n);
        kernel(g, y, js);
        const wasm = k.allocF32(n);
        kernel(inside(g), inside(y), wasm);
        expect(bits(wasm)).toEqual(bits(js));
      }
      for (const kernel of [act.tanhDoubleBackward, act.sigmoidDoubleBackward]) {
        const js = new Float32Array(n);
        kernel(gg, g, y, js);
        const wasm = k.allocF32(n);
        kernel(inside(gg), inside(g), inside(y), wasm);
        expect(bits(wasm)).toEqual(bits(js));
      }
    }
  });

  it("heap operands from 2048 elements run the SIMD kernels through scratch, with the twin's bits", () => {
    const n = 2051; // past the staging threshold, and not a multiple of 4 lanes
    const x = values(n, 17),
      g = values(n, 19, 4),
      gg = values(n, 23, 4).reverse(),
      y = values(n, 29).map(Math.tanh);
    const runAll = () => {
      const out: Float32Array[] = [];
      for (const kernel of [act.tanhForward, act.sigmoidForward]) {
        out.push(new Float32Array(n));
        kernel(x, out.at(-1)!);
        const self = x.slice(); // out may be x
        kernel(self, self);
        out.push(self);
      }
      for (const kernel of [act.tanhBackward, act.sigmoidBackward]) {
        out.push(new Float32Array(n));
        kernel(g, y, out.at(-1)!);
      }
      for (const kernel of [act.tanhDoubleBackward, act.sigmoidDoubleBackward]) {
        out.push(new Float32Array(n));
        kernel(gg, g, y, out.at(-1)!);
      }
      return out.map(bits);
    };
    const before = getKernelBackend();
    try {
      setKernelBackend("js");
      const twin = runAll();
      setKernelBackend("wasm");
      const free = k.scratchFree();
      expect(runAll()).toEqual(twin);
      expect(k.scratchFree()).toBe(free); // every call gave its scratch back
      // The SIMD kernel ran on a copy of x staged at the scratch mark.
      const at = Math.ceil(k.scratchMark() / 16) * 16;
      k.f32(at, n).fill(0);
      act.tanhForward(x, new Float32Array(n));
      expect(bits(k.f32(at, n))).toEqual(bits(x));
    } finally {
      setKernelBackend(before);
    }
  });

  it("the ops take the SIMD kernels inside a step region and give the bits they give outside", () => {
    const n = 999; // 3996 bytes: stored in the region, and not a multiple of 4 lanes
    const x0 = values(n, 13, 5).map((v) => (Number.isFinite(v) ? v : 0.5));
    const run = () => {
      const x = tensor(x0.slice(), { requiresGrad: true });
      const y = tanh(x);
      const [dx] = grad(sum(mul(y, y)), [x], { createGraph: true });
      const [ddx] = grad(sum(mul(dx!, dx!)), [x]);
      const z = sigmoid(x);
      const [dz] = grad(sum(mul(z, z)), [x], { createGraph: true });
      const [ddz] = grad(sum(mul(dz!, dz!)), [x]);
      return {
        inRegion: k.contains(ddx!.data as Float32Array),
        out: [y, dx!, ddx!, z, dz!, ddz!].map((t) => bits(t.data as Float32Array)),
      };
    };
    const outside = run();
    const inRegion = runInStepRegion(k, run);
    expect(outside.inRegion).toBe(false);
    expect(inRegion.inRegion).toBe(true);
    expect(inRegion.out).toEqual(outside.out);
  });
});

describe("tanh and sigmoid against their formulas", () => {
  it("the float64 forward of the kernels is within 1e-13 of Math.tanh and 1/(1 + e^-x)", () => {
    let worstTanh = 0,
      worstSigmoid = 0;
    for (let x = -25; x <= 25; x += 0.0037) {
      const s = x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
      worstSigmoid = Math.max(worstSigmoid, Math.abs(act.sigmoidF64(x) - s) / s);
      // past |x| = 10 the argument is clamped: the float32 result is ±1 all the same
      if (Math.abs(x) > 10) expect(Math.fround(act.tanhF64(x))).toBe(Math.sign(x));
      else worstTanh = Math.max(worstTanh, Math.abs(act.tanhF64(x) / Math.tanh(x) - 1));
    }
    expect(Math.fround(Math.tanh(9.02))).toBe(1); // where the clamp starts changing the float64 value, f32 is 1
    expect(worstTanh).toBeLessThan(1e-13);
    expect(worstSigmoid).toBeLessThan(1e-13);
    // tiny arguments keep their relative precision (no e^2x - 1 cancellation)
    for (const x of [1e-30, -3e-12, 1e-7]) expect(Math.abs(act.tanhF64(x) / Math.tanh(x) - 1)).toBeLessThan(1e-15);
    expect(Object.is(act.tanhF64(-0), -0)).toBe(true);
    const ends = [act.tanhF64(Infinity), act.tanhF64(-Infinity), act.sigmoidF64(Infinity), act.sigmoidF64(-Infinity)];
    expect(ends.slice(0, 3).map(Math.fround)).toEqual([1, -1, 1]);
    expect(ends[3]).toBeLessThan(FLT_MIN); // flushed to 0 in float32
  });

  it("float32 results are the correctly rounded tanh and sigmoid but for rare one-ulp ties", () => {
    const x = values(20000, 17, 15).filter(Number.isFinite);
    const y = new Float32Array(x.length),
      s = new Float32Array(x.length);
    act.tanhForward(x, y);
    act.sigmoidForward(x, s);
    const flush = (v: number) => (Math.abs(v) < FLT_MIN ? v * 0 : v);
    let off = 0;
    x.forEach((v, i) => {
      const wantY = flush(Math.fround(Math.tanh(v))),
        wantS = flush(Math.fround(1 / (1 + Math.exp(-v))));
      if (y[i] !== wantY) off++;
      if (s[i] !== wantS) off++;
      expect(Math.abs(y[i]! - wantY)).toBeLessThanOrEqual(Math.abs(wantY) * 2 ** -23);
      expect(Math.abs(s[i]! - wantS)).toBeLessThanOrEqual(Math.abs(wantS) * 2 ** -23);
    });
    expect(off).toBeLessThan(10); // of 40,000 results
  });

  const leaf = (values: number[]) => tensor(Float64Array.from(values), { requiresGrad: true });
  const pts = [-3, -1.2, -0.4, 0, 0.3, 1.1, 2.5];

  it("first and second derivatives: 1 - y² and -2y(1 - y²) for tanh, y(1 - y) and y(1 - y)(1 - 2y) for sigmoid", () => {
    for (const [f, d1, d2] of [
      [tanh, (y: number) => 1 - y * y, (y: number) => -2 * y * (1 - y * y)],
      [sigmoid, (y: number) => y * (1 - y), (y: number) => y * (1 - y) * (1 - 2 * y)],
    ] as const) {
      const x = leaf(pts);
      const y = f(x);
      const [dx] = grad(sum(y), [x], { createGraph: true });
      const [ddx] = grad(sum(dx!), [x]);
      const yv = Array.from(y.data);
      yv.forEach((v, i) => {
        expect(dx!.data[i]).toBeCloseTo(d1(v), 14);
        expect(ddx!.data[i]).toBeCloseTo(d2(v), 14);
      });
    }
  });

  it("third derivative of tanh through the double-backward op: -2(1 - y²)(1 - 3y²)", () => {
    const x = leaf(pts);
    const [dx] = grad(sum(tanh(x)), [x], { createGraph: true });
    const [ddx] = grad(sum(dx!), [x], { createGraph: true });
    const [dddx] = grad(sum(ddx!), [x]);
    const y = pts.map(Math.tanh);
    y.forEach((v, i) => {
      expect(dddx!.data[i]).toBeCloseTo(-2 * (1 - v ** 2) * (1 - 3 * v ** 2), 12);
    });
  });

  it("float32 gradients equal the elementwise chain they replace, bit for bit", () => {
    const finite = (seed: number) => tensor(values(257, seed, 3).map((v) => (Number.isFinite(v) ? v : 0.25)));
    const g = finite(19),
      y = tanh(finite(23)),
      gg = finite(29);
    const chain = (t: Tensor) => bits(t.data as Float32Array);
    expect(chain(tanhBackward(g, y))).toEqual(chain(mul(g, sub(1, mul(y, y)))));
    expect(chain(sigmoidBackward(g, y))).toEqual(chain(mul(g, mul(y, sub(1, y)))));
    expect(chain(tanhDoubleBackward(gg, g, y))).toEqual(chain(mul(mul(mul(gg, g), y), -2)));
  });

  it("a gradient whose shape differs from y's is refused, naming both shapes", () => {
    expect(() => tanhBackward(tensor([1, 2, 3]), tensor([[0.5, 0.5, 0.5]]))).toThrow(
      /tanhBackward: gradient \[3\] must have the shape of y \[1, ?3\]/,
    );
    expect(() => tanhDoubleBackward(tensor([1, 2]), tensor([1, 2, 3]), tensor([0, 0, 0]))).toThrow(
      /tanhDoubleBackward: gradient \[2\] must have the shape of y \[3\]/,
    );
  });
});
