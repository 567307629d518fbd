import { Generator } from "../../tensor/random.js";
import { afterEach, describe, expect, test } from "vitest";
import { getKernelBackend, setKernelBackend } from "../backend.js";
import { jsMatmulKernel, matmulKernel } from "../matmul.js";
import { wasmMatmulKernel } from "./matmul-kernel.js";
import { createWasmKernels, type WasmKernels } from "./wasm-kernels.js";

// Seeded uniform floats in [-0.5, 0.5), from core's generator, so failures reproduce.
function randomF32(length: number, seed: number): Float32Array {
  const g = new Generator(seed);
  return Float32Array.from({ length }, () => g.random() - 0.5);
}

// A copy of src in the kernels' scratch, skewBytes past a 64-byte boundary.
function inScratch(wk: WasmKernels, src: Float32Array, skewBytes = 0): Float32Array {
  const view = wk.f32(wk.scratchAlloc(src.length * 4 + skewBytes) + skewBytes, src.length);
  view.set(src);
  return view;
}

const js = jsMatmulKernel("float32");
const wk = createWasmKernels({ heapBytes: 1 << 20, scratchBytes: 16 << 20 });

// Both results against each other, relative to sum_p |a||b| of each entry: float32 summation in a
// different order differs by at most ~k·2^-24 of that.
function expectSameProduct(
  a: Float32Array,
  b: Float32Array,
  got: Float32Array,
  want: Float32Array,
  m: number,
  k: number,
  n: number,
  transA: boolean,
  transB: boolean,
): void {
  const at = (i: number, p: number) => (transA ? a[p * m + i]! : a[i * k + p]!);
  const bt = (p: number, j: number) => (transB ? b[j * k + p]! : b[p * n + j]!);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let scale = 0;
      for (let p = 0; p < k; p++) scale += Math.abs(at(i, p) * bt(p, j));
      const diff = Math.abs(got[i * n + j]! - want[i * n + j]!);
      if (!(diff <= 1e-5 * scale)) {
        throw new Error(
          `${m}x${k}x${n} transA=${transA} transB=${transB}: c[${i}][${j}] = ${got[i * n + j]} vs ${want[i * n + j]}`,
        );
      }
    }
  }
}

const SIZES = [0, 1, 3, 4, 5, 7, 8, 9, 17, 33, 64, 100];
const TRANSPOSES = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
] as const;

describe("wasm matmul", () => {
  test("equals the JavaScript kernel for every m, n, k in {0..100} and all four transposes", () => {
    let seed = 1;
    for (const m of SIZES)
      for (const k of SIZES)
        for (const n of SIZES) {
          const a = randomF32(m * k, seed++),
            b = randomF32(k * n, seed++);
          for (const [transA, transB] of TRANSPOSES) {
            const want = new Float32Array(m * n),
              got = new Float32Array(m * n).fill(Number.NaN);
            js(a, 0, b, 0, want, 0, m, k, n, transA, transB);
            wk.matmulF32(a, b, got, m, k, n, transA, transB);
            expectSameProduct(a, b, got, want, m, k, n, transA, transB);
          }
        }
  });

  test("crosses the depth, row and column blocks (k > 256, m > 128, n > 1024)", () => {
    for (const [m, k, n] of [
      [130, 300, 9],
      [5, 513, 1030],
      [131, 257, 1027],
    ] as const) {
      const a = randomF32(m * k, m),
        b = randomF32(k * n, n);
      for (const [transA, transB] of TRANSPOSES) {
        const want = new Float32Array(m * n),
          got = new Float32Array(m * n);
        js(a, 0, b, 0, want, 0, m, k, n, transA, transB);
        wk.matmulF32(a, b, got, m, k, n, transA, transB);
        expectSameProduct(a, b, got, want, m, k, n, transA, transB);
      }
    }
  });

  test("uses operands inside the memory in place, at any 4-byte alignment, mixed with outside ones", () => {
    const [m, k, n] = [33, 17, 9];
    const a = randomF32(m * k, 7),
      b = randomF32(k * n, 8);
    for (const [transA, transB] of TRANSPOSES) {
      const want = new Float32Array(m * n);
      js(a, 0, b, 0, want, 0, m, k, n, transA, transB);
      for (const skew of [0, 4, 12]) {
        const mark = wk.scratchMark();
        const aIn = inScratch(wk, a, skew),
          bIn = inScratch(wk, b, (skew + 8) % 16),
          cIn = inScratch(wk, new Float32Array(m * n), skew);
        const cOut = new Float32Array(m * n),
          top = wk.scratchMark();
        wk.matmulF32(aIn, bIn, cIn, m, k, n, transA, transB);
        expectSameProduct(a, b, cIn, want, m, k, n, transA, transB);
        wk.matmulF32(a, bIn, cOut, m, k, n, transA, transB);
        expectSameProduct(a, b, cOut, want, m, k, n, transA, transB);
        wk.matmulF32(aIn, b, cIn.fill(0), m, k, n, transA, transB);
        expectSameProduct(a, b, cIn, want, m, k, n, transA, transB);
        expect(wk.scratchMark()).toBe(top); // every matmul gave its scratch back
        wk.scratchReset(mark);
      }
    }
  });

  test("a and b may be the same array (x·xᵀ)", () => {
    const x = randomF32(12 * 5, 3),
      want = new Float32Array(144),
      got = new Float32Array(144);
    js(x, 0, x, 0, want, 0, 12, 5, 12, false, true);
    wk.matmulF32(x, x, got, 12, 5, 12, false, true);
    expectSameProduct(x, x, got, want, 12, 5, 12, false, true);
  });

  test("matmulStrided reads and writes rows any stride apart with the bits of the dense matmul", () => {
    // Each operand sits as a block of columns inside wider rows (row stride = its width + pad), as
    // one attention head's columns sit inside a [T, 3·d] projection; C's other columns stay as they were.
    const x = wk.exports;
    for (const [m, k, n] of [
      [5, 3, 9],
      [16, 32, 16],
      [33, 17, 8],
      [4, 0, 3],
    ] as const) {
      for (const [ta, tb] of TRANSPOSES) {
        const mark = wk.scratchMark();
        const [ar, ac] = ta ? [k, m] : [m, k];
        const [br, bc] = tb ? [n, k] : [k, n];
        const [lda, ldb, ldc] = [ac + 5, bc + 3, n + 7];
        const a = randomF32(ar * ac, m + k),
          b = randomF32(br * bc, k + n);
        const aWide = inScratch(wk, new Float32Array(ar * lda).fill(Number.NaN));
        const bWide = inScratch(wk, new Float32Array(br * ldb).fill(Number.NaN));
        for (let i = 0; i < ar; i++) aWide.set(a.subarray(i * ac, (i + 1) * ac), i * lda + 2);
        for (let i = 0; i < br; i++) bWide.set(b.subarray(i * bc, (i + 1) * bc), i * ldb + 1);
        const cWide = inScratch(wk, new Float32Array(m * ldc).fill(7));
        const dense = inScratch(wk, new Float32Array(m * n));
        const pack = wk.scratchAlloc(x.matmulPackBytes(m, k, n));
        const [ad, bd] = [inScratch(wk, a), inScratch(wk, b)];
        x.matmul(ad.byteOffset, bd.byteOffset, dense.byteOffset, m, k, n, ta ? 1 : 0, tb ? 1 : 0, pack);
        const c0 = cWide.byteOffset + 4 * 4;
        x.matmulStrided(
          aWide.byteOffset + 8,
          bWide.byteOffset + 4,
          c0,
          m,
          k,
          n,
          ta ? 1 : 0,
          tb ? 1 : 0,
          lda,
          ldb,
          ldc,
          pack,
        );
        for (let i = 0; i < m; i++) {
          const row = Array.from(cWide.subarray(i * ldc, (i + 1) * ldc));
          expect(row.slice(4, 4 + n)).toEqual(Array.from(dense.subarray(i * n, (i + 1) * n)));
          expect([...row.slice(0, 4), ...row.slice(4 + n)]).toEqual(new Array(ldc - n).fill(7));
        }
        wk.scratchReset(mark);
      }
    }
  });

  test("k = 0 overwrites c with zeros", () => {
    const c = new Float32Array(6).fill(Number.NaN);
    wk.matmulF32(new Float32Array(0), new Float32Array(0), c, 2, 0, 3);
    expect(Array.from(c)).toEqual([0, 0, 0, 0, 0, 0]);
  });

  test("c must not alias a or b, inside or outside the memory", () => {
    const buf = new Float32Array(32);
    expect(() => wk.matmulF32(buf.subarray(0, 16), buf.subarray(16), buf.subarray(8, 24), 4, 4, 4)).toThrow(
      /matmulF32: c overlaps a; the output must not alias an input/,
    );
    const mark = wk.scratchMark();
    const inside = inScratch(wk, new Float32Array(32));
    expect(() => wk.matmulF32(inside.subarray(0, 16), inside.subarray(16), inside.subarray(16), 4, 4, 4)).toThrow(
      /matmulF32: c overlaps b/,
    );
    wk.scratchReset(mark);
  });

  test("rejects operands shorter than their shape", () => {
    expect(() => wk.matmulF32(new Float32Array(5), new Float32Array(6), new Float32Array(4), 2, 3, 2)).toThrow(
      /matmulF32: a has 5 elements, needs 6/,
    );
  });

  test("throws when operands outside the memory do not fit the scratch", () => {
    const small = createWasmKernels({ scratchBytes: 4096 });
    expect(() =>
      small.matmulF32(new Float32Array(64 * 64), new Float32Array(64 * 64), new Float32Array(64 * 64), 64, 64, 64),
    ).toThrow(/WasmKernels.scratchAlloc: 16384 bytes do not fit/);
    expect(small.scratchMark()).toBe(small.scratch.byteOffset); // scratch restored after the throw
  });

  test("the MatmulKernel adapter honours element offsets", () => {
    const [m, k, n] = [5, 7, 9];
    const a = randomF32(3 + m * k, 11),
      b = randomF32(2 + k * n, 12);
    const want = new Float32Array(4 + m * n),
      got = new Float32Array(4 + m * n);
    js(a, 3, b, 2, want, 4, m, k, n, true, false);
    wasmMatmulKernel(js)(a, 3, b, 2, got, 4, m, k, n, true, false);
    expect(Array.from(got.subarray(0, 4))).toEqual([0, 0, 0, 0]);
    expectSameProduct(a.subarray(3), b.subarray(2), got.subarray(4), want.subarray(4), m, k, n, true, false);
  });
});

describe("kernel backend", () => {
  const initial = getKernelBackend();
  afterEach(() => setKernelBackend(initial));

  test("defaults to wasm here (SIMD supported, kernels.wasm built) unless THREADGRAD_KERNELS says otherwise", () => {
    const env = process.env.THREADGRAD_KERNELS;
    expect(initial).toBe(env === "js" ? "js" : "wasm");
  });

  test("float32 follows the backend, float64 always stays JavaScript", () => {
    setKernelBackend("js");
    expect(matmulKernel("float32")).toBe(jsMatmulKernel("float32"));
    setKernelBackend("wasm");
    expect(matmulKernel("float32")).not.toBe(jsMatmulKernel("float32"));
    expect(matmulKernel("float64")).toBe(jsMatmulKernel("float64"));
  });

  test("rejects an unknown backend name", () => {
    expect(() => setKernelBackend("gpu" as "js")).toThrow(/setKernelBackend: expected 'js' or 'wasm', got gpu/);
  });
});
