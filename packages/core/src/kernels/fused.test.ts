import { describe, expect, it } from "vitest";
import { type BinaryLayout, addBias, binaryInWasm, reluBackward, reluForward, sumRowsInWasm } from "./fused.js";
import { runInStepRegion } from "./wasm/step-region.js";
import { tensor } from "../tensor/creation.js";
import { sum } from "../ops/reduce.js";
import { add, mul, sub } from "../ops/elementwise.js";
import type { Tensor } from "../tensor/tensor.js";
import { mulberry32 } from "../tensor/random.js";
import { createWasmKernels } from "./wasm/wasm-kernels.js";
import { setDefaultWasmKernels } from "./wasm/matmul-kernel.js";
import { getKernelBackend, setKernelBackend } from "./backend.js";

// The same inputs through the WebAssembly kernels (operands inside this thread's memory) and the
// JavaScript loops (operands on the heap) must give the same bits: subnormals flushed, NaN kept.
// scratchBytes 16 MiB: step regions keep 8 MiB free for the matmul.
const k = createWasmKernels({ heapBytes: 1 << 20, scratchBytes: 16 << 20 });
setDefaultWasmKernels(k);

const SPECIAL = [
  0,
  -0,
  1e-40,
  -1e-40,
  1.1754943508222875e-38,
  2e-38,
  -3,
  2.5,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
];
function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  const rand = mulberry32(seed);
  for (let i = 0; i < n; i++) {
    const u = rand();
    out[i] = i < SPECIAL.length * 2 ? SPECIAL[(i + seed) % SPECIAL.length]! : (u - 0.5) * 4;
  }
  return out;
}
const inside = (a: Float32Array): Float32Array => {
  const v = k.allocF32(a.length);
  v.set(a);
  return v;
};
const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

describe("fused float32 kernels", () => {
  it.each([1, 7, 37, 260])("relu forward and backward give the same bits in both backends (n = %i)", (n) => {
    const x = values(n, 3),
      g = values(n, 5);
    const jsOut = new Float32Array(n);
    reluForward(x, jsOut);
    const wOut = k.allocF32(n);
    reluForward(inside(x), wOut);
    expect(k.contains(wOut)).toBe(true);
    expect(bits(wOut)).toEqual(bits(jsOut));
    expect(
      jsOut.every((v, i) =>
        Number.isNaN(x[i]!) ? Number.isNaN(v) : v === (x[i]! >= 1.1754943508222875e-38 ? x[i] : 0),
      ),
    ).toBe(true);
    const jsGrad = new Float32Array(n);
    reluBackward(g, x, jsGrad);
    const wGrad = k.allocF32(n);
    reluBackward(inside(g), inside(x), wGrad);
    expect(bits(wGrad)).toEqual(bits(jsGrad));
  });

  it.each([
    [1, 1],
    [3, 5],
    [4, 8],
    [7, 37],
  ])("bias add gives the same bits in both backends (%i x %i)", (m, n) => {
    const c = values(m * n, 9),
      b = values(n, 11);
    const js = c.slice();
    addBias(js, b, m, n);
    const w = inside(c);
    addBias(w, inside(b), m, n);
    expect(bits(w)).toEqual(bits(js));
    expect(js.some((v) => v !== 0 && Math.abs(v) < 1.1754943508222875e-38)).toBe(false); // no subnormal survives
  });

  it.each([
    [1, 1],
    [5, 3],
    [128, 256],
    [9, 37],
    [300, 10],
  ])("column sums give the bits of the general reduction (%i x %i)", (m, n) => {
    const x = values(m * n, 13).map((v, i) => (i % 17 === 0 ? v : v * 1e3)); // large and tiny terms: rounding shows
    const general = sum(tensor(x.slice(), { shape: [m, n] }), 0).data as Float32Array; // heap: the JavaScript reduction
    const out = k.allocF32(n);
    expect(sumRowsInWasm(inside(x), out, m, n)).toBe(true);
    expect(bits(out)).toEqual(bits(general));
    expect(sumRowsInWasm(x, new Float32Array(n), m, n)).toBe(false); // operands on the heap: not taken
    const onHeap = new Float32Array(n); // a small result (a bias gradient) on the heap: through scratch
    const mark = k.scratchMark();
    expect(sumRowsInWasm(inside(x), onHeap, m, n)).toBe(true);
    expect([bits(onHeap), k.scratchMark()]).toEqual([bits(general), mark]);
  });

  it("sum over leading dims, and over everything, takes the kernel inside a step region with the same bits", () => {
    const x = values(4 * 6 * 300, 21);
    const outside = [
      sum(tensor(x.slice(), { shape: [4, 6, 300] }), [0, 1]),
      sum(tensor(x.slice(), { shape: [4, 6, 300] })),
    ].map((t) => bits(t.data as Float32Array));
    const inside = runInStepRegion(k, () => {
      const t = tensor(k.allocF32(x.length).fill(0), { shape: [4, 6, 300] });
      (t.data as Float32Array).set(x);
      const lead = sum(t, [0, 1]);
      expect(k.contains(lead.data as Float32Array)).toBe(true); // 300 floats: in the region, so the kernel ran
      return [lead, sum(t)].map((r) => bits(r.data as Float32Array));
    });
    expect(inside).toEqual(outside);
  });

  // NaN as one value: WebAssembly leaves a NaN's sign and payload open.
  const valueBits = (a: Float32Array) => Array.from(bits(a), (b, i) => (Number.isNaN(a[i]) ? "NaN" : b));
  const SHAPES: Record<BinaryLayout, (m: number, n: number) => number[]> = {
    full: (m, n) => [m, n],
    row: (_m, n) => [n],
    scalar: () => [1],
  };
  const PAIRS: [BinaryLayout, BinaryLayout][] = [
    ["full", "full"],
    ["full", "row"],
    ["row", "full"],
    ["full", "scalar"],
    ["scalar", "full"],
  ];
  const OPS = { add, sub, mul } as const;

  it.each(PAIRS)("add, sub and mul of %s by %s give the same bits inside a step region as outside", (la, lb) => {
    for (const n of [1, 3, 4, 7, 37]) {
      const m = Math.ceil(700 / n);
      const [sa, sb] = [SHAPES[la](m, n), SHAPES[lb](m, n)];
      // operands in wasm memory, as a step's activations and parameters are; outputs outside a step
      // region land on the heap, where the JavaScript kernel runs
      const numel = (shape: number[]) => shape.reduce((p, d) => p * d, 1);
      const x = tensor(inside(values(numel(sa), n + 1)), { shape: sa });
      const y = tensor(inside(values(numel(sb), n + 2).reverse()), { shape: sb });
      for (const [name, op] of Object.entries(OPS)) {
        const outside = op(x, y);
        const inRegion = runInStepRegion(k, () => {
          const out: Tensor = op(x, y);
          return { inWasm: k.contains(out.data as Float32Array), bits: valueBits(out.data as Float32Array) };
        });
        expect([name, n, inRegion.inWasm]).toEqual([name, n, true]);
        expect(inRegion.bits).toEqual(valueBits(outside.data as Float32Array));
      }
    }
  });

  it("a [T, d] operand under [N, T, d] (a position embedding) gives the same bits in a step region", () => {
    const x = tensor(inside(values(4 * 5 * 16, 31)), { shape: [4, 5, 16] }); // in wasm memory, as activations are
    const pos = tensor(values(5 * 16, 32), { shape: [1, 5, 16] });
    for (const op of Object.values(OPS)) {
      const outside = [op(x, pos), op(pos, x)].map((t) => valueBits(t.data as Float32Array));
      const inRegion = runInStepRegion(k, () => [op(x, pos), op(pos, x)].map((t) => valueBits(t.data as Float32Array)));
      expect(inRegion).toEqual(outside);
    }
    // the kernel's view of it: 4 rows of 5·16, the embedding one row
    const out = k.allocF32(4 * 80);
    expect(binaryInWasm("add", x.data as Float32Array, "full", pos.data as Float32Array, "row", out, 4, 80)).toBe(true);
    expect(valueBits(out)).toEqual(valueBits(add(x, pos).data as Float32Array));
  });

  it("mul flushes a product below FLT_MIN that float32 rounds up to FLT_MIN, as the JavaScript kernel does", () => {
    const FLT_MIN = 1.1754943508222875e-38;
    // (1 - 2⁻²⁴)·FLT_MIN lies half way between FLT_MIN and the subnormal below: ties-to-even gives FLT_MIN.
    const x = Float32Array.of(1 - 2 ** -24, -(1 - 2 ** -24), 1 + 2 ** -23, 1);
    expect(Math.fround(x[0]! * FLT_MIN)).toBe(FLT_MIN);
    const y = new Float32Array(4).fill(FLT_MIN);
    const js = mul(tensor(x), tensor(y)).data as Float32Array;
    const out = k.allocF32(4);
    expect(binaryInWasm("mul", inside(x), "full", inside(y), "full", out, 1, 4)).toBe(true);
    expect(bits(out)).toEqual(bits(js));
    expect(Array.from(out)).toEqual([0, -0, Math.fround((1 + 2 ** -23) * FLT_MIN), FLT_MIN]);
  });

  it("binaryInWasm leaves a small output on the heap, or a full operand outside with out inside, to JavaScript", () => {
    const a = inside(values(8, 1)),
      out = k.allocF32(8);
    expect(binaryInWasm("add", a, "full", new Float32Array(8), "full", out, 2, 4)).toBe(false);
    expect(binaryInWasm("add", a, "full", a, "full", new Float32Array(8), 2, 4)).toBe(false);
    // a row on the heap is copied into scratch for the call
    expect(binaryInWasm("add", a, "full", Float32Array.of(1, 2, 3, 4), "row", out, 2, 4)).toBe(true);
    expect(Array.from(out.subarray(4))).toEqual(Array.from(a.subarray(4), (v, j) => Math.fround(v + j + 1)));
  });

  it.each(PAIRS)(
    "heap operands of %s by %s from 2048 elements go through scratch with the JavaScript bits",
    (la, lb) => {
      const [m, n] = [41, 53]; // 2173 elements, not a multiple of 4 lanes
      const numel = (shape: number[]) => shape.reduce((p, d) => p * d, 1);
      const [sa, sb] = [SHAPES[la](m, n), SHAPES[lb](m, n)];
      const xa = values(numel(sa), 5),
        ya = values(numel(sb), 6).reverse();
      const before = getKernelBackend();
      try {
        setKernelBackend("js");
        const twin = Object.values(OPS).map((op) =>
          valueBits(op(tensor(xa, { shape: sa }), tensor(ya, { shape: sb })).data as Float32Array),
        );
        setKernelBackend("wasm");
        const free = k.scratchFree();
        const simd = Object.values(OPS).map((op) =>
          valueBits(op(tensor(xa, { shape: sa }), tensor(ya, { shape: sb })).data as Float32Array),
        );
        expect(simd).toEqual(twin);
        expect(k.scratchFree()).toBe(free);
        const out = new Float32Array(m * n);
        expect(binaryInWasm("sub", xa, la, ya, lb, out, m, n)).toBe(true);
        expect(valueBits(out)).toEqual(twin[1]);
      } finally {
        setKernelBackend(before);
      }
    },
  );
});
