import { describe, expect, test } from "vitest";
import { Generator } from "../tensor/random.js";
import { adamSegmentUpdate, segmentSum, segmentSumSquares, sgdSegmentUpdate } from "./segment.js";
import { isWasmSimdSupported } from "./wasm/loader.js";
import { type WasmKernels, createWasmKernels } from "./wasm/wasm-kernels.js";

function randomF32(length: number, seed: number, scale = 1): Float32Array {
  const g = new Generator(seed);
  return Float32Array.from({ length }, () => g.normal() * scale);
}

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

/** Copies of `arrays` inside the kernels' memory, so the segment operations take the kernel path. */
function inWasm(k: WasmKernels, arrays: Float32Array[]): Float32Array[] {
  return arrays.map((a) => {
    const v = k.allocF32(a.length);
    v.set(a);
    return v;
  });
}

describe("segment operations in JavaScript", () => {
  test("segmentSum adds slices in order, rounding to float32 after each add, on [start, end) only", () => {
    const a = Float32Array.from([1e8, 5, 5]);
    const b = Float32Array.from([-1e8, 6, 6]);
    const c = Float32Array.from([1, 7, 7]);
    segmentSum([a, b, c], a, 0, 2, null);
    expect(Array.from(a)).toEqual([1, 18, 5]); // (1e8 - 1e8) + 1; element 2 untouched
    const out = new Float32Array(3).fill(-1);
    segmentSum([Float32Array.from([-1e8]), Float32Array.from([1]), Float32Array.from([1e8])], out, 0, 1, null);
    expect(out[0]).toBe(0); // -1e8 + 1 rounds back to -1e8
    expect(out[1]).toBe(-1);
  });

  test("segmentSumSquares is the float64 sum of squares over the range", () => {
    expect(segmentSumSquares(Float32Array.from([9, 3, 4, 9]), 1, 3, null)).toBe(25);
  });

  test("one Adam step worked by hand", () => {
    // m = 0.1·0.5 = 0.05, v = 0.001·0.25 = 0.00025; step size lr/(1-0.9) = 1,
    // denominator sqrt(0.00025)/sqrt(0.001) + 1e-8 = 0.5 + 1e-8, so p = 1 - 0.05/0.5 = 0.9.
    const s = {
      params: Float32Array.from([1]),
      grads: Float32Array.from([0.5]),
      m: new Float32Array(1),
      v: new Float32Array(1),
    };
    const o = {
      lr: 0.1,
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      weightDecay: 0,
      decoupledWeightDecay: false,
      maximize: false,
    };
    adamSegmentUpdate(s, 0, 1, 1, o, null);
    expect(s.m[0]).toBe(Math.fround(0.05));
    expect(s.v[0]).toBeCloseTo(0.00025, 10);
    expect(s.params[0]).toBeCloseTo(0.9, 6);
  });

  test("one SGD step with momentum and weight decay worked by hand, then a second", () => {
    // step 1: g = 2 + 0.5·1 = 2.5, b = g = 2.5, p = 1 - 0.1·2.5 = 0.75
    // step 2: g = 2 + 0.5·0.75 = 2.375, b = 0.9·2.5 + 2.375 = 4.625, p = 0.75 - 0.4625 = 0.2875
    const s = { params: Float32Array.from([1]), grads: Float32Array.from([2]), momentum: new Float32Array(1) };
    const o = { lr: 0.1, momentum: 0.9, dampening: 0, weightDecay: 0.5, nesterov: false, maximize: false };
    sgdSegmentUpdate(s, 0, 1, 1, o, null);
    expect(s.momentum[0]).toBe(2.5);
    expect(s.params[0]).toBe(0.75);
    sgdSegmentUpdate(s, 0, 1, 2, o, null);
    expect(s.momentum[0]).toBe(4.625);
    expect(s.params[0]).toBeCloseTo(0.2875, 6);
  });

  test("refuses a range outside an array and momentum without its buffer, naming them", () => {
    const a = new Float32Array(4);
    expect(() => segmentSum([a, new Float32Array(2)], a, 0, 3, null)).toThrow(
      "segmentSum: range [0, 3) exceeds an array of length 2",
    );
    expect(() => segmentSumSquares(a, 3, 1, null)).toThrow("segmentSumSquares: range [3, 1) is not a valid segment");
    const sgd = { lr: 0.1, momentum: 0.9, dampening: 0, weightDecay: 0, nesterov: false, maximize: false };
    expect(() => sgdSegmentUpdate({ params: a, grads: a, momentum: null }, 0, 4, 1, sgd, null)).toThrow(
      "sgdSegmentUpdate: momentum is set but no momentum buffer is given",
    );
  });
});

describe.runIf(isWasmSimdSupported())("segment operations: the kernel path gives the JavaScript bits", () => {
  const real = createWasmKernels({ heapBytes: 1 << 20, scratchBytes: 1 << 16 });
  // The same kernels, counting the calls of each export: the arrays in wasm memory must take the kernel.
  const calls: Record<string, number> = {};
  const exports = Object.fromEntries(
    Object.entries(real.exports).map(([name, f]) => [
      name,
      typeof f !== "function"
        ? f
        : (...a: number[]) => {
            calls[name] = (calls[name] ?? 0) + 1;
            return (f as (...a: number[]) => number)(...a);
          },
    ]),
  );
  const k = Object.create(real, { exports: { value: exports } }) as WasmKernels;

  test("segmentSum over evenly spaced slices in wasm memory, into slice 0 or another array", () => {
    const n = 53;
    const slices = [0, 1, 2].map((r) => randomF32(n, r, 2 ** (10 * r)));
    const want = slices[0]!.slice();
    segmentSum([want, slices[1]!, slices[2]!], want, 3, 50, null);
    const base = k.alloc(3 * 64 * 4, 64);
    const placed = slices.map((s, r) => {
      const v = k.f32(base + r * 64 * 4, n);
      v.set(s);
      return v;
    });
    const out = k.allocF32(n);
    out.set(slices[0]!);
    segmentSum(placed, out, 3, 50, k);
    expect(bits(out)).toEqual(bits(want));
    segmentSum(placed, placed[0]!, 3, 50, k);
    expect(bits(placed[0]!)).toEqual(bits(want));
    expect(calls.sumSlices).toBe(2);
  });

  test("segmentSumSquares agrees with the JavaScript loop to rounding", () => {
    const x = randomF32(101, 9);
    const [placed] = inWasm(k, [x]);
    expect(segmentSumSquares(placed!, 2, 99, k)).toBeCloseTo(segmentSumSquares(x, 2, 99, null), 10);
    expect(calls.sumSquares).toBe(1);
  });

  test.each([
    { decoupledWeightDecay: false, weightDecay: 0, maximize: false },
    { decoupledWeightDecay: false, weightDecay: 0.1, maximize: true },
    { decoupledWeightDecay: true, weightDecay: 0.3, maximize: false },
  ])("Adam %j: same bits over 5 steps, subnormal moments flushed", (variant) => {
    const n = 37;
    const js = [randomF32(n, 1), new Float32Array(n), new Float32Array(n), new Float32Array(n)];
    const wasm = inWasm(k, js);
    for (let t = 1; t <= 5; t++) {
      const g = randomF32(n, 100 + t, 0.1);
      g[4] = 1e-30; // its square underflows: v is flushed
      for (const set of [js, wasm]) set[1]!.set(g);
      const o = { lr: 0.01 * (1 - 0.1 * t), beta1: 0.9, beta2: 0.99, eps: 1e-8, ...variant };
      for (const [p, grads, m, v] of [js, wasm]) {
        adamSegmentUpdate({ params: p!, grads: grads!, m: m!, v: v! }, 2, 35, t, o, k);
      }
    }
    js.forEach((a, i) => {
      expect(bits(wasm[i]!), `array ${i}`).toEqual(bits(a));
    });
    expect(calls.adamUpdate).toBeGreaterThan(0);
  });

  test.each([
    { momentum: 0, dampening: 0, nesterov: false, weightDecay: 0, maximize: false },
    { momentum: 0.9, dampening: 0.3, nesterov: false, weightDecay: 0.01, maximize: false },
    { momentum: 0.8, dampening: 0, nesterov: true, weightDecay: 0, maximize: true },
  ])("SGD %j: same bits over 5 steps", (variant) => {
    const n = 37;
    const js = [randomF32(n, 2), new Float32Array(n), new Float32Array(n)];
    const wasm = inWasm(k, js);
    for (let t = 1; t <= 5; t++) {
      const g = randomF32(n, 200 + t, 0.1);
      for (const set of [js, wasm]) set[1]!.set(g);
      for (const [p, grads, b] of [js, wasm]) {
        sgdSegmentUpdate({ params: p!, grads: grads!, momentum: b! }, 1, 36, t, { lr: 0.05, ...variant }, k);
      }
    }
    js.forEach((a, i) => {
      expect(bits(wasm[i]!), `array ${i}`).toEqual(bits(a));
    });
    expect(calls.sgdUpdate).toBeGreaterThan(0);
  });
});
