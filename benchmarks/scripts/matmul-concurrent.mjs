// Usage (after a build, from benchmarks/): node scripts/matmul-concurrent.mjs [wasm|blas]
// N threads each run a matmul on their own operands at once: how much does one thread's
// throughput drop when N run together (shared cores, memory bandwidth, shared FP units)? No
// synchronisation inside. `wasm` (default): the WebAssembly SIMD kernel; `blas`: the products on
// core's native BLAS (WasmKernels.matmulStrided, which serves attention's per-head products).
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import os from "node:os";
const kernel = isMainThread ? (process.argv[2] ?? "wasm") : workerData.kernel;
if (kernel !== "wasm" && kernel !== "blas") throw new Error(`expected wasm or blas, got ${kernel}`);
if (isMainThread) {
  console.log(`cpus ${os.cpus().length} (${os.cpus()[0]?.model}); kernel ${kernel}`);
  const shapes = [
    [512, 512, 512],
    [64, 784, 256],
    [256, 784, 256],
  ];
  for (const [m, k, n] of shapes) {
    const line = [];
    for (const N of [1, 2, 4, 8, 12, 16].filter((v) => v <= Math.max(2, os.cpus().length))) {
      const sab = new SharedArrayBuffer(8);
      const go = new Int32Array(sab);
      const ws = Array.from(
        { length: N },
        () => new Worker(new URL(import.meta.url), { workerData: { m, k, n, sab, kernel } }),
      );
      await Promise.all(ws.map((w) => new Promise((r) => w.once("message", r)))); // ready
      Atomics.store(go, 0, 1);
      Atomics.notify(go, 0);
      const res = await Promise.all(ws.map((w) => new Promise((r) => w.once("message", r))));
      await Promise.all(ws.map((w) => w.terminate()));
      const per = res.map((r) => r.gflops).sort((a, b) => a - b);
      line.push(`N=${N}: ${per[per.length >> 1].toFixed(1)}`);
    }
    console.log(`${m}x${k}x${n} GFLOP/s per thread (median): ${line.join("  ")}`);
  }
} else {
  const { createWasmKernels, nativeBlasStatus } = await import("@threadgrad/core");
  const { m, k, n, sab } = workerData;
  const K = createWasmKernels({ heapBytes: (m * k + k * n + m * n) * 4 + (1 << 16), scratchBytes: 16 << 20 });
  const a = K.allocF32(m * k).fill(0.5),
    b = K.allocF32(k * n).fill(0.25),
    c = K.allocF32(m * n);
  if (kernel === "blas" && nativeBlasStatus().info === null) throw new Error(`no BLAS: ${nativeBlasStatus().reason}`);
  const pack = K.scratchAlloc(K.exports.matmulPackBytes(m, k, n));
  const product =
    kernel === "blas"
      ? () => K.matmulStrided(a.byteOffset, b.byteOffset, c.byteOffset, m, k, n, 0, 1, k, k, n, pack)
      : () => K.matmulF32(a, b, c, m, k, n, false, true);
  for (let i = 0; i < 20; i++) product();
  parentPort.postMessage("ready");
  Atomics.wait(new Int32Array(sab), 0, 0);
  const t0 = performance.now();
  let it = 0;
  while (performance.now() - t0 < 1500) {
    product();
    it++;
  }
  parentPort.postMessage({ gflops: (2 * m * k * n * it) / ((performance.now() - t0) * 1e6) });
}
