import { describe, expect, test } from "vitest";
import { Generator } from "../tensor/random.js";
import { segmentSum, segmentSumSquares } from "./segment.js";
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

  test("refuses a range outside an array or an inverted range, naming them", () => {
    const a = new Float32Array(4);
    expect(() => segmentSum([a, new Float32Array(2)], a, 0, 3, null)).toThrow(
      "segmentSum: range [0, 3) exceeds an array of length 2",
    );
    expect(() => segmentSumSquares(a, 3, 1, null)).toThrow("segmentSumSquares: range [3, 1) is not a valid segment");
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
});
