import { spawnSync } from "node:child_process";
import { Worker } from "node:worker_threads";
import { afterEach, describe, expect, test } from "vitest";
import { Generator } from "../tensor/random.js";
import { setKernelBackend } from "./backend.js";
import { describeMatmul, nativeBlas, nativeBlasStatus, setNativeBlas } from "./blas.js";
import { jsMatmulKernel, matmulKernel } from "./matmul.js";
import { wasmMatmulKernel } from "./wasm/matmul-kernel.js";
import { createWasmKernels } from "./wasm/wasm-kernels.js";

// The native matmul runs where core/native/build/threadgrad_blas.node is built and OpenBLAS is
// installed (CI installs Debian's libopenblas0); elsewhere this suite says why it is skipped.
const status = nativeBlasStatus();
const blas = nativeBlas();
if (blas === null) console.log(`native BLAS tests skipped: ${status.reason}`);

function randomF32(length: number, seed: number): Float32Array {
  const g = new Generator(seed);
  return Float32Array.from({ length }, () => g.random() - 0.5);
}

// op(a)·op(b) in float64, with row strides, and sum |a||b| per entry (the rounding scale).
function reference(
  a: Float32Array,
  aOff: number,
  lda: number,
  b: Float32Array,
  bOff: number,
  ldb: number,
  m: number,
  k: number,
  n: number,
  transA: boolean,
  transB: boolean,
) {
  const c = new Float64Array(m * n),
    scale = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0,
        t = 0;
      for (let p = 0; p < k; p++) {
        const x = transA ? a[aOff + p * lda + i]! : a[aOff + i * lda + p]!;
        const y = transB ? b[bOff + j * ldb + p]! : b[bOff + p * ldb + j]!;
        s += x * y;
        t += Math.abs(x * y);
      }
      c[i * n + j] = s;
      scale[i * n + j] = t;
    }
  }
  return { c, scale };
}

describe.skipIf(blas === null)("native BLAS matmul", () => {
  afterEach(() => {
    setNativeBlas(true);
    setKernelBackend("wasm");
  });

  test("reports the library it opened", () => {
    expect(status.info?.library).toMatch(/blas/i);
    expect(status.reason).toBe("");
  });

  test("matches float64 for every transpose, odd sizes, offsets and row strides", () => {
    let seed = 1;
    for (const [m, k, n] of [
      [1, 1, 1],
      [3, 5, 7],
      [17, 33, 9],
      [64, 32, 64],
      [100, 1, 3],
      [5, 200, 130],
    ] as const) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          const lda = (transA ? m : k) + 3,
            ldb = (transB ? k : n) + 1,
            ldc = n + 2;
          const a = randomF32(5 + (transA ? k : m) * lda, seed++),
            b = randomF32(2 + (transB ? n : k) * ldb, seed++);
          const c = new Float32Array(7 + m * ldc).fill(Number.NaN);
          blas!.sgemm(transA, transB, m, n, k, a, 5, lda, b, 2, ldb, c, 7, ldc);
          const want = reference(a, 5, lda, b, 2, ldb, m, k, n, transA, transB);
          for (let i = 0; i < m; i++) {
            for (let j = 0; j < n; j++) {
              const err = Math.abs(c[7 + i * ldc + j]! - want.c[i * n + j]!);
              expect(err, `${m}x${k}x${n} ${transA} ${transB} [${i}][${j}]`).toBeLessThanOrEqual(
                (k + 2) * 2 ** -24 * want.scale[i * n + j]!,
              );
            }
            // the gap between rows of c is never written
            for (let j = n; j < ldc && i < m - 1; j++) expect(c[7 + i * ldc + j]).toBeNaN();
          }
          expect(c.subarray(0, 7).every(Number.isNaN)).toBe(true);
        }
      }
    }
  });

  test("k = 0 gives zeros, an empty c is a no-op", () => {
    const c = new Float32Array(6).fill(5);
    blas!.sgemm(false, false, 2, 3, 0, new Float32Array(0), 0, 1, new Float32Array(0), 0, 3, c, 0, 3);
    expect(Array.from(c)).toEqual([0, 0, 0, 0, 0, 0]);
    blas!.sgemm(false, false, 0, 3, 2, new Float32Array(0), 0, 2, new Float32Array(6), 0, 3, c, 0, 3);
  });

  test("flushes as the WebAssembly matmul does: subnormal inputs read as 0, subnormal results become 0", () => {
    const c = new Float32Array(1);
    blas!.sgemm(false, false, 1, 1, 2, new Float32Array([1e-39, 1]), 0, 2, new Float32Array([1e3, 0]), 0, 1, c, 0, 1);
    expect(c[0]).toBe(0); // 1e-39 · 1e3 would be 1e-36 without DAZ
    blas!.sgemm(false, false, 1, 1, 1, new Float32Array([1e-20]), 0, 1, new Float32Array([1e-20]), 0, 1, c, 0, 1);
    expect(c[0]).toBe(0); // 1e-40 is subnormal in float32
    // the thread's floating-point mode is restored: JavaScript still sees subnormals
    expect(Math.fround(1e-40)).toBeGreaterThan(0);
  });

  test("refuses bad calls before touching memory, naming the operand", () => {
    const a = new Float32Array(12),
      b = new Float32Array(8),
      c = new Float32Array(6);
    const call = (...over: unknown[]) => {
      const args: unknown[] = [false, false, 3, 2, 4, a, 0, 4, b, 0, 2, c, 0, 2];
      for (let i = 0; i < over.length; i += 2) args[over[i] as number] = over[i + 1];
      return () => (blas!.sgemm as (...x: unknown[]) => void)(...args);
    };
    expect(call()).not.toThrow();
    expect(call(6, 1)).toThrow(/sgemm: a \(12 floats\) cannot hold 3x4 from offset 1 with lda 4/);
    expect(call(7, 3)).toThrow(/sgemm: a \(12 floats\) cannot hold 3x4 from offset 0 with lda 3/);
    expect(call(10, 1)).toThrow(/sgemm: b \(8 floats\) cannot hold 4x2 from offset 0 with ldb 1/);
    expect(call(12, 2)).toThrow(/sgemm: c \(6 floats\) cannot hold 3x2 from offset 2 with ldc 2/);
    expect(call(2, -1)).toThrow(/sgemm: m must be an integer in \[0, 2\^31 - 1\]/);
    expect(call(4, 1.5)).toThrow(/sgemm: k must be an integer/);
    expect(call(5, new Float64Array(12))).toThrow(/sgemm: a must be a Float32Array/);
    expect(call(0, 1)).toThrow(/sgemm: transA and transB must be booleans/);
    const shared = new Float32Array(40);
    expect(call(5, shared, 11, shared, 12, 10)).toThrow(/sgemm: c overlaps an input/);
    expect(() => (blas!.sgemm as (...x: unknown[]) => void)(false)).toThrow(/sgemm: expected 14 arguments/);
  });

  test("serves matmulKernel('float32') under 'wasm', with the WebAssembly kernel's results", () => {
    const [m, k, n] = [37, 70, 21];
    const a = randomF32(m * k, 7),
      b = randomF32(n * k, 8);
    const viaBlas = new Float32Array(m * n),
      viaWasm = new Float32Array(m * n);
    const kernel = matmulKernel("float32");
    expect(kernel).not.toBe(wasmMatmulKernel(jsMatmulKernel("float32")));
    kernel(a, 0, b, 0, viaBlas, 0, m, k, n, false, true);
    setNativeBlas(false);
    expect(nativeBlasStatus()).toEqual({ info: null, reason: "setNativeBlas(false) in this thread" });
    expect(matmulKernel("float32")).toBe(wasmMatmulKernel(jsMatmulKernel("float32")));
    matmulKernel("float32")(a, 0, b, 0, viaWasm, 0, m, k, n, false, true);
    const want = reference(a, 0, k, b, 0, k, m, k, n, false, true);
    for (let i = 0; i < m * n; i++) {
      expect(Math.abs(viaBlas[i]! - viaWasm[i]!)).toBeLessThanOrEqual(2 * (k + 2) * 2 ** -24 * want.scale[i]!);
    }
    setKernelBackend("js");
    setNativeBlas(true);
    expect(matmulKernel("float32")).toBe(jsMatmulKernel("float32"));
  });

  test("WasmKernels.matmulStrided on BLAS agrees with the WebAssembly export on one head of a [T, 3d] array", () => {
    const wk = createWasmKernels({ heapBytes: 1 << 20, scratchBytes: 1 << 20 });
    const [t, d, e] = [16, 24, 8];
    const qkv = wk.allocF32(t * 3 * d);
    qkv.set(randomF32(t * 3 * d, 11));
    const viaBlas = wk.allocF32(t * t),
      viaWasm = wk.allocF32(t * t);
    const q = qkv.byteOffset + 4 * e; // head 1's queries; its keys d floats further
    const pack = wk.scratchAlloc(wk.exports.matmulPackBytes(t, e, t));
    wk.matmulStrided(q, q + d * 4, viaBlas.byteOffset, t, e, t, 0, 1, 3 * d, 3 * d, t, pack);
    wk.exports.matmulStrided(q, q + d * 4, viaWasm.byteOffset, t, e, t, 0, 1, 3 * d, 3 * d, t, pack);
    for (let i = 0; i < t * t; i++) expect(viaBlas[i]).toBeCloseTo(viaWasm[i]!, 5);
  });

  test("describeMatmul names the library and its kernels, or what serves instead and why", () => {
    expect(describeMatmul()).toMatch(/^(OpenBLAS \S+|\S*blas\S*)( \(\w+ kernels\))?, one thread per worker$/i);
    setNativeBlas(false);
    expect(describeMatmul()).toBe("WebAssembly SIMD (no native BLAS: setNativeBlas(false) in this thread)");
    setKernelBackend("js");
    expect(describeMatmul()).toBe("JavaScript (the 'js' kernel backend)");
  });

  test("setNativeBlas checks its argument", () => {
    expect(() => setNativeBlas("yes" as unknown as boolean)).toThrow(/setNativeBlas: expected a boolean, got yes/);
  });

  test("worker threads call it at once, each single-threaded, with exact results", async () => {
    const addon = new URL("../../native/build/threadgrad_blas.node", import.meta.url).pathname;
    const library = status.info!.library;
    // Each thread multiplies its own seeded matrices 200 times and reports any result that changed.
    const code = `
      const { parentPort, workerData } = require("node:worker_threads");
      const b = require(workerData.addon); b.load(workerData.library);
      const m = 96, k = 128, n = 80, a = new Float32Array(m * k), x = new Float32Array(k * n);
      for (let i = 0; i < a.length; i++) a[i] = Math.sin(i * workerData.seed);
      for (let i = 0; i < x.length; i++) x[i] = Math.cos(i + workerData.seed);
      const first = new Float32Array(m * n), c = new Float32Array(m * n);
      b.sgemm(false, false, m, n, k, a, 0, k, x, 0, n, first, 0, n);
      let changed = 0;
      for (let r = 0; r < 200; r++) {
        b.sgemm(false, false, m, n, k, a, 0, k, x, 0, n, c, 0, n);
        for (let i = 0; i < c.length; i++) if (c[i] !== first[i]) changed++;
      }
      parentPort.postMessage({ changed, sample: first[17] });`;
    const run = (seed: number) =>
      new Promise<{ changed: number; sample: number }>((resolve, reject) => {
        const w = new Worker(code, { eval: true, workerData: { addon, library, seed } });
        w.once("message", resolve);
        w.once("error", reject);
      });
    const results = await Promise.all([run(1), run(2), run(3)]);
    for (const r of results) expect(r.changed).toBe(0);
    expect(new Set(results.map((r) => r.sample)).size).toBe(3);
  });
});

describe("THREADGRAD_BLAS", () => {
  const dist = JSON.stringify(new URL("../../dist/index.js", import.meta.url).href);
  const run = (env: Record<string, string>) =>
    spawnSync(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `const m = await import(${dist}); const s = m.nativeBlasStatus(); console.log(JSON.stringify(s));`,
      ],
      { env: { ...process.env, ...env }, encoding: "utf8" },
    );

  test("off: never loads it, and says so", () => {
    const r = run({ THREADGRAD_BLAS: "off" });
    expect(JSON.parse(r.stdout)).toEqual({ info: null, reason: "THREADGRAD_BLAS=off" });
  });

  test("a library that cannot be opened is an error naming it (only when asked for by name)", () => {
    const r = run({ THREADGRAD_BLAS: "/nonexistent/libnotblas.so" });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/THREADGRAD_BLAS=\/nonexistent\/libnotblas.so: /);
    expect(r.stderr).toMatch(/cannot open the BLAS library '\/nonexistent\/libnotblas.so'|native addon is not built/);
  });

  test.skipIf(blas === null)("a library without cblas_sgemm is refused as not a CBLAS", () => {
    const r = run({ THREADGRAD_BLAS: "libm.so.6" });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/THREADGRAD_BLAS=libm.so.6: the library 'libm.so.6' has no cblas_sgemm: not a CBLAS/);
  });
});
