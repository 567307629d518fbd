import { Generator } from "../../tensor/random.js";
import { describe, expect, test } from "vitest";
import { createWasmKernels } from "./wasm-kernels.js";

// The flush threshold of packages/optim/src/flat/flush.ts: the smallest normal float32.
const FLT_MIN = 1.1754943508222875e-38;
const SUB = 1e-39; // a float32 subnormal

const wk = createWasmKernels({ heapBytes: 1 << 20, scratchBytes: 1 << 20 });
const x = wk.exports;

// Seeded uniform floats in [lo, hi), from core's generator.
function randomF32(length: number, seed: number, lo = -1, hi = 1): Float32Array {
  const g = new Generator(seed);
  return Float32Array.from({ length }, () => lo + g.random() * (hi - lo));
}

// Runs `body` with copies of `arrays` placed in scratch (misaligned by 4 bytes, so the vector
// loops see unaligned addresses); returns the arrays' contents afterwards.
function withScratch(arrays: Float32Array[], body: (ptrs: number[]) => void): Float32Array[] {
  const mark = wk.scratchMark();
  try {
    const views = arrays.map((a) => {
      const v = wk.f32(wk.scratchAlloc(a.length * 4 + 4) + 4, a.length);
      v.set(a);
      return v;
    });
    body(views.map((v) => v.byteOffset));
    return views.map((v) => v.slice());
  } finally {
    wk.scratchReset(mark);
  }
}

// Bitwise equality (distinguishes -0 from 0 and checks NaN positions).
function expectBits(got: Float32Array, want: Float32Array): void {
  expect(Array.from(new Uint32Array(got.buffer, got.byteOffset, got.length))).toEqual(
    Array.from(new Uint32Array(want.buffer, want.byteOffset, want.length)),
  );
}

const flush = (v: number) => (Math.abs(v) < FLT_MIN ? 0 : v);
const SPECIALS = [SUB, -SUB, FLT_MIN, -FLT_MIN, Number.NaN, -0, 0, 2, -3, 1e30];

describe("wasm elementwise kernels", () => {
  test("reluForward: max(x, 0) with subnormals flushed and NaN kept, for every tail length", () => {
    for (const n of [0, 1, 3, 4, 7, 10, 33]) {
      const input = randomF32(n, n);
      input.set(SPECIALS.slice(0, Math.min(n, SPECIALS.length)));
      const want = input.map((v) => (v <= 0 ? 0 : flush(v)));
      const [, out] = withScratch([input, new Float32Array(n)], ([xp, op]) => x.reluForward(xp!, op!, n));
      expectBits(out!, want);
    }
  });

  test("reluBackward: x > 0 ? g : 0, in place over g, subnormal g flushed", () => {
    const n = 23;
    const g = randomF32(n, 5),
      input = randomF32(n, 6);
    g.set([SUB, -SUB, 1, Number.NaN, 2]);
    input.set([1, 1, -1, 1, Number.NaN]);
    const want = g.map((gv, i) => (input[i]! > 0 ? flush(gv) : 0));
    const [gOut] = withScratch([g, input], ([gp, xp]) => x.reluBackward(gp!, xp!, gp!, n));
    expectBits(gOut!, want);
    expect(Array.from(gOut!.subarray(0, 5))).toEqual([0, 0, 0, Number.NaN, 0]);
  });

  test("addBias adds the bias row to every row of c, flushed", () => {
    const [m, n] = [3, 7];
    const c = randomF32(m * n, 1),
      bias = randomF32(n, 2);
    c[0] = -FLT_MIN;
    bias[0] = FLT_MIN * 1.5; // sum is subnormal: 0.5·FLT_MIN
    const want = c.map((v, i) => flush(Math.fround(v + bias[i % n]!)));
    const [out] = withScratch([c, bias], ([cp, bp]) => x.addBias(cp!, bp!, m, n));
    expectBits(out!, want);
    expect(out![0]).toBe(0);
  });
});

describe("wasm sumSlices", () => {
  // reduceSlices of packages/workers: ((s0 + s1) + s2) ... rounded to float32 after every add.
  function reference(slices: Float32Array[], out: Float32Array, start: number, end: number): void {
    for (let i = start; i < end; i++) {
      let acc = slices[0]![i]!;
      for (let r = 1; r < slices.length; r++) acc = Math.fround(acc + slices[r]![i]!);
      out[i] = acc;
    }
  }

  test("sums ranks in fixed order into out or into slice 0, on [start, end) only", () => {
    const length = 37,
      strideBytes = 192; // 48 floats per slice
    for (const ranks of [1, 2, 3, 4]) {
      for (const [start, end] of [
        [0, 37],
        [3, 34],
        [5, 6],
        [9, 9],
      ] as const) {
        const slices = Array.from({ length: ranks }, (_, r) => randomF32(length, 31 * ranks + r, -1e3, 1e3));
        const want = new Float32Array(length).fill(7);
        reference(slices, want, start, end);
        const mark = wk.scratchMark();
        const base = wk.scratchAlloc(ranks * strideBytes) + 4;
        slices.forEach((s, r) => {
          wk.f32(base + r * strideBytes, length).set(s);
        });
        const out = wk.f32(wk.scratchAlloc(length * 4), length).fill(7);
        x.sumSlices(base, strideBytes, ranks, out.byteOffset, start, end);
        expectBits(out, want);
        x.sumSlices(base, strideBytes, ranks, base, start, end); // in place into slice 0
        const slice0 = wk.f32(base, length);
        expectBits(slice0.subarray(start, end), want.subarray(start, end));
        expectBits(slice0.subarray(0, start), slices[0]!.subarray(0, start));
        wk.scratchReset(mark);
      }
    }
  });
});

describe("WasmKernels regions", () => {
  test("alloc hands out aligned, disjoint, zeroed heap regions and refuses past the heap", () => {
    const k = createWasmKernels({ heapBytes: 1024, scratchBytes: 1024 });
    const a = k.alloc(10),
      b = k.alloc(100, 128),
      f = k.allocF32(4);
    expect(a % 64).toBe(0);
    expect(b % 128).toBe(0);
    expect(b).toBeGreaterThanOrEqual(a + 10);
    expect(f.buffer).toBe(k.memory.buffer);
    expect(Array.from(f)).toEqual([0, 0, 0, 0]);
    expect(k.offsetOf(f)).toBe(f.byteOffset);
    expect(() => k.alloc(1 << 20)).toThrow(/WasmKernels.alloc: 1048576 bytes do not fit/);
    expect(() => k.offsetOf(new Float32Array(1))).toThrow(/not a view into this memory/);
  });

  test("scratchReset(mark) frees everything allocated since the mark, and rejects foreign marks", () => {
    const k = createWasmKernels({ scratchBytes: 4096 });
    const mark = k.scratchMark();
    const first = k.scratchAlloc(100);
    const inner = k.scratchMark();
    k.scratchAlloc(1000);
    k.scratchReset(inner);
    expect(k.scratchAlloc(1000)).toBe(inner + ((64 - (inner % 64)) % 64));
    k.scratchReset(mark);
    expect(k.scratchAlloc(100)).toBe(first);
    expect(k.scratchFree()).toBe(4096 - 100);
    expect(() => k.scratchReset(mark + (1 << 20))).toThrow(/WasmKernels.scratchReset: mark/);
    expect(() => k.scratchAlloc(8192)).toThrow(/WasmKernels.scratchAlloc: 8192 bytes do not fit/);
  });

  test("a second thread's view: an existing memory needs its own scratch region", () => {
    const owner = createWasmKernels({ heapBytes: 8192, scratchBytes: 1024 });
    const region = { byteOffset: owner.alloc(4096), byteLength: 4096 };
    expect(() => createWasmKernels({ memory: owner.memory })).toThrow(/pass this thread's own `scratch` region/);
    const other = createWasmKernels({ memory: owner.memory, scratch: region });
    expect(other.buffer).toBe(owner.buffer);
    expect(other.heap.byteLength).toBe(0);
    const a = owner.allocF32(4);
    a.set([1, 2, 3, 4]);
    const c = new Float32Array(1);
    other.matmulF32(a, a, c, 1, 4, 1, false, false); // a in place, through the other instance
    expect(c[0]).toBe(30);
  });
});

describe("sumSquares", () => {
  test("equals the float64 sum of squares of a range, tails and empty ranges included", () => {
    const wk2 = createWasmKernels({ heapBytes: 1 << 16, scratchBytes: 1 << 16 });
    const a = wk2.allocF32(37);
    for (let i = 0; i < a.length; i++) a[i] = Math.sin(i) * (i % 5 === 0 ? 1e-20 : 3);
    for (const [start, end] of [
      [0, 37],
      [3, 4],
      [5, 5],
      [1, 36],
      [0, 8],
    ] as const) {
      let expected = 0;
      for (let i = start; i < end; i++) expected += a[i]! * a[i]!;
      const got = wk2.exports.sumSquares(a.byteOffset, start, end);
      expect(Math.abs(got - expected)).toBeLessThanOrEqual(1e-12 * Math.max(1, expected));
    }
  });
});
