import { describe, expect, it } from "vitest";
import { grad } from "../autograd/engine.js";
import { tensor } from "../tensor/creation.js";
import { mulberry32 } from "../tensor/random.js";
import { gelu, geluBackward } from "../ops/gelu.js";
import { sum } from "../ops/reduce.js";
import { erf } from "./special.js";
import * as kern from "./gelu.js";
import { setDefaultWasmKernels } from "./wasm/matmul-kernel.js";
import { runInStepRegion } from "./wasm/step-region.js";
import { createWasmKernels } from "./wasm/wasm-kernels.js";

// The SIMD GELU kernels (operands inside this thread's wasm memory) against their JavaScript twins
// (operands on the heap), and both against PyTorch's definitions.
const k = createWasmKernels({ heapBytes: 4 << 20, scratchBytes: 16 << 20 });
setDefaultWasmKernels(k);

const FLT_MIN = 1.1754943508222875e-38;
const SPECIAL = [0, -0, 1e-40, -1e-40, 2.82, -2.83, 2.8284271247, -9, -14, -30, 40, NaN, Infinity, -Infinity];

function values(n: number, seed: number, scale = 6): Float32Array {
  const rand = mulberry32(seed);
  return Float32Array.from({ length: n }, (_, i) =>
    i < SPECIAL.length ? SPECIAL[(i + seed) % SPECIAL.length]! : (rand() - 0.5) * 2 * scale,
  );
}
const inside = (a: Float32Array): Float32Array => {
  const v = k.allocF32(a.length);
  v.set(a);
  return v;
};
const bits = (a: Float32Array) =>
  Array.from(a, (v) => (Number.isNaN(v) ? "NaN" : new Uint32Array(Float32Array.of(v).buffer)[0]!));

const MODES = ["none", "tanh"] as const;
const LENGTHS = [0, 1, 2, 3, 5, 37, 1030];

// PyTorch's definitions, in float64
// Φ below -2 from erfc's continued fraction at 300 levels (1 + erf(x) cancels there)
function erfcDeep(a: number): number {
  let t = a;
  for (let i = 300; i >= 1; i--) t = a + i / 2 / t;
  return Math.exp(-a * a) / (t * Math.sqrt(Math.PI));
}
const cdf = (x: number) => (x < -2 ? 0.5 * erfcDeep(-x / Math.SQRT2) : 0.5 * (1 + erf(x / Math.SQRT2)));
const pdf = (x: number) => Math.exp((-x * x) / 2) / Math.sqrt(2 * Math.PI);
const K0 = Math.sqrt(2 / Math.PI);
// 0.5·x·(1 + tanh(u)) written as x / (1 + e^(-2u)), which does not cancel for negative x
const tanhGelu = (x: number) => x / (1 + Math.exp(-2 * K0 * (x + 0.044715 * x ** 3)));
const REF = {
  none: {
    f: (x: number) => x * cdf(x),
    d1: (x: number) => cdf(x) + x * pdf(x),
    d2: (x: number) => pdf(x) * (2 - x * x),
  },
  tanh: {
    f: tanhGelu,
    // central differences of the float64 formula (h chosen for ~1e-8 accuracy)
    d1: (x: number) => (tanhGelu(x + 1e-5) - tanhGelu(x - 1e-5)) / 2e-5,
    d2: (x: number) => (tanhGelu(x + 1e-4) - 2 * tanhGelu(x) + tanhGelu(x - 1e-4)) / 1e-8,
  },
};

describe("GELU kernels", () => {
  it.each(LENGTHS)("forward, backward and double backward give the same bits in both backends (n = %i)", (n) => {
    const x = values(n, n + 3),
      g = values(n, n + 5, 2),
      gg = values(n, n + 7, 2).reverse();
    for (const mode of MODES) {
      const js = [new Float32Array(n), new Float32Array(n), new Float32Array(n)];
      kern.geluForward(x, js[0]!, mode);
      kern.geluBackward(g, x, js[1]!, mode);
      kern.geluDoubleBackward(gg, g, x, js[2]!, mode);
      const wasm = [k.allocF32(n), k.allocF32(n), k.allocF32(n)];
      const [xi, gi, ggi] = [inside(x), inside(g), inside(gg)];
      kern.geluForward(xi, wasm[0]!, mode);
      kern.geluBackward(gi, xi, wasm[1]!, mode);
      kern.geluDoubleBackward(ggi, gi, xi, wasm[2]!, mode);
      expect(wasm.map(bits)).toEqual(js.map(bits));
      for (const a of js) expect(a.some((v) => v !== 0 && Math.abs(v) < FLT_MIN)).toBe(false);
    }
  });

  it.each(MODES)("float32 results match PyTorch's definition (approximate '%s')", (mode) => {
    const x = values(4000, 11, 8).filter(Number.isFinite);
    const ones = new Float32Array(x.length).fill(1);
    const [f, d1, d2] = [new Float32Array(x.length), new Float32Array(x.length), new Float32Array(x.length)];
    kern.geluForward(x, f, mode);
    kern.geluBackward(ones, x, d1, mode);
    kern.geluDoubleBackward(ones, ones, x, d2, mode);
    const ref = REF[mode];
    const flush = (v: number) => (Math.abs(v) < FLT_MIN ? 0 : v);
    x.forEach((v, i) => {
      // the forward within one float32 rounding of the float64 value (tanh, computed in f64), or
      // 12·2^-24 relative (exact, computed in f32 arithmetic: see assembly/gelu.ts)
      const fTol = mode === "none" ? 12 * 2 ** -24 : 2 ** -23;
      expect(Math.abs(f[i]! - flush(ref.f(v)))).toBeLessThanOrEqual(Math.abs(ref.f(v)) * fTol + FLT_MIN);
      // the tanh references are finite differences; the exact derivative is computed in f32
      // arithmetic, which cancels near its zero at x ≈ -0.75: an absolute bound there
      const tol = mode === "none" ? 2 ** -23 : 1e-6;
      expect(Math.abs(d1[i]! - ref.d1(v))).toBeLessThanOrEqual(
        Math.abs(ref.d1(v)) * tol + (mode === "none" ? 8 * 2 ** -24 : 1e-7),
      );
      expect(Math.abs(d2[i]! - ref.d2(v))).toBeLessThanOrEqual(
        Math.abs(ref.d2(v)) * tol + (mode === "none" ? FLT_MIN : 1e-5),
      );
    });
    // the values PyTorch prints for torch.nn.functional.gelu at a few points
    const at = (v: number) => {
      const out = new Float32Array(1);
      kern.geluForward(Float32Array.of(v), out, mode);
      return out[0]!;
    };
    expect(at(1)).toBeCloseTo(mode === "none" ? 0.8413447 : 0.841192, 6);
    expect(at(-3)).toBeCloseTo(mode === "none" ? -0.0040497 : -0.0036374, 6);
  });

  it("exact GELU in float32 arithmetic: within 12·2^-24 relative, its derivative within 8·2^-24 absolute", () => {
    // Φ(x) for x < 0 is erfc(|x|/√2)/2 and keeps its relative precision down to where x·Φ(x) nears
    // FLT_MIN (x ≈ -13): the exponent's -x²/2 is carried exactly, so large |x| loses nothing.
    for (let x = -13; x <= 14; x += 0.00137) {
      const v = Math.fround(x);
      const want = REF.none.f(v);
      expect(Math.abs(kern.geluF32(v) - want), `gelu(${v})`).toBeLessThanOrEqual(Math.abs(want) * 12 * 2 ** -24);
      const d = REF.none.d1(v);
      expect(Math.abs(kern.geluGradF32(1, v) - d), `gelu'(${v})`).toBeLessThanOrEqual(8 * 2 ** -24);
    }
    // deep in the tail, where 1 - erf would have cancelled to nothing
    expect(kern.geluF32(-10) / REF.none.f(-10)).toBeCloseTo(1, 6);
    expect(kern.geluGradF32(1, -9) / REF.none.d1(-9)).toBeCloseTo(1, 5);
  });

  it("exact GELU(-∞) is NaN and GELU(∞) is ∞ in both backends, as x·Φ(x) in PyTorch", () => {
    const x = Float32Array.of(-Infinity, Infinity);
    const [js, wasm] = [new Float32Array(2), k.allocF32(2)];
    kern.geluForward(x, js, "none");
    kern.geluForward(inside(x), wasm, "none");
    expect([Array.from(js), Array.from(wasm)]).toEqual([
      [NaN, Infinity],
      [NaN, Infinity],
    ]);
  });

  it("float64 first and second derivatives through the ops match x·Φ(x)'s", () => {
    const pts = [-4.2, -1.3, -0.2, 0, 0.7, 2.9];
    const x = tensor(Float64Array.from(pts), { requiresGrad: true });
    const [d1] = grad(sum(gelu(x)), [x], { createGraph: true });
    const [d2] = grad(sum(d1!), [x]);
    pts.forEach((v, i) => {
      expect(d1!.data[i]).toBeCloseTo(REF.none.d1(v), 14);
      expect(d2!.data[i]).toBeCloseTo(REF.none.d2(v), 14);
    });
  });

  it("the ops take the SIMD kernels inside a step region and give the bits they give outside", () => {
    const x0 = values(1001, 13).map((v) => (Number.isFinite(v) ? v : 1.5));
    for (const approximate of MODES) {
      const run = () => {
        const x = tensor(x0.slice(), { requiresGrad: true });
        const [dx] = grad(sum(gelu(x, { approximate })), [x], { createGraph: true });
        const [ddx] = grad(sum(dx!), [x]);
        return {
          inRegion: k.contains(ddx!.data as Float32Array),
          out: [dx!, ddx!].map((t) => bits(t.data as Float32Array)),
        };
      };
      const outside = run();
      const inRegion = runInStepRegion(k, run);
      expect([outside.inRegion, inRegion.inRegion]).toEqual([false, true]);
      expect(inRegion.out).toEqual(outside.out);
    }
  });

  it("an unknown approximation and a gradient of the wrong shape are refused", () => {
    expect(() => gelu(tensor([1]), { approximate: "fast" as "tanh" })).toThrow(
      /gelu: approximate must be 'none' or 'tanh', got 'fast'/,
    );
    expect(() => geluBackward(tensor([1, 2]), tensor([1, 2, 3]))).toThrow(
      /geluBackward: gradient \[2\] must have the shape of x \[3\]/,
    );
  });
});
