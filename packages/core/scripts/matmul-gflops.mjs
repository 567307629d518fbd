#!/usr/bin/env node
// Rough float32 matmul throughput, plain JavaScript vs WebAssembly SIMD, single thread.
// Needs a build (dist/). Run: node packages/core/scripts/matmul-gflops.mjs [secondsPerCase=0.25]
// "wasm" has its operands inside the wasm memory (used in place); "wasm+copy" passes ordinary
// Float32Arrays, copied through scratch as the backend switch does today. Numbers from a shared
// machine are rough: compare rows of one run only.
import os from "node:os";
import { jsMatmulKernel } from "../dist/kernels/matmul.js";
import { createWasmKernels } from "../dist/kernels/wasm/wasm-kernels.js";

const seconds = Number(process.argv[2] ?? 0.25);
const js = jsMatmulKernel("float32");

// [label, m, k, n, transA, transB]
const cases = [
  ["256³ AB", 256, 256, 256, false, false],
  ["512³ AB", 512, 512, 512, false, false],
  ["x·Wᵀ   256x784 · (256x784)ᵀ", 256, 784, 256, false, true],
  ["x·W    256x784 · 784x256", 256, 784, 256, false, false],
  ["gᵀ·x   (256x256)ᵀ · 256x784", 256, 256, 784, true, false],
  ["g·W    256x256 · 256x784", 256, 256, 784, false, false],
];

const random = (len) => Float32Array.from({ length: len }, () => Math.random() - 0.5);

function rate(run, flops) {
  run(); // warm-up (tier-up)
  let reps = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < seconds * 1000) {
    run();
    reps++;
    t = performance.now();
  }
  return (flops * reps) / ((t - t0) / 1000) / 1e9;
}

console.log(
  `node ${process.version}, ${os.cpus()[0]?.model ?? "?"}, ${os.availableParallelism()} cores (shared: rough figures)`,
);
console.log("case".padEnd(32), "js".padStart(7), "wasm".padStart(7), "wasm+copy".padStart(10), " GFLOP/s");
for (const [label, m, k, n, transA, transB] of cases) {
  const flops = 2 * m * k * n;
  const a = random(m * k),
    b = random(k * n),
    c = new Float32Array(m * n);
  const wk = createWasmKernels({ heapBytes: 4 * (m * k + k * n + m * n) + 256, scratchBytes: 16 << 20 });
  const aw = wk.allocF32(m * k),
    bw = wk.allocF32(k * n),
    cw = wk.allocF32(m * n);
  aw.set(a);
  bw.set(b);
  const rJs = rate(() => js(a, 0, b, 0, c, 0, m, k, n, transA, transB), flops);
  const rWasm = rate(() => wk.matmulF32(aw, bw, cw, m, k, n, transA, transB), flops);
  const rCopy = rate(() => wk.matmulF32(a, b, c, m, k, n, transA, transB), flops);
  console.log(
    label.padEnd(32),
    rJs.toFixed(1).padStart(7),
    rWasm.toFixed(1).padStart(7),
    rCopy.toFixed(1).padStart(10),
  );
}
