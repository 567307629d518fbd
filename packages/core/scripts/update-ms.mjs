#!/usr/bin/env node
// Rough time of one optimizer update (Adam, no weight decay) over W1's parameter count
// (784-256-256-10: 269,322 floats) and over half of it (one of 2 ranks), single thread: the float32
// SIMD kernel (f32x4, adamUpdateF32) on arrays inside the wasm memory as in the trainer, and its
// JavaScript twin. Needs a build (dist/).
// Run: node packages/core/scripts/update-ms.mjs [secondsPerCase=0.5]. Numbers from a shared
// machine are rough: compare rows of one run only.
import os from "node:os";
import { adamScalarsF32, adamUpdateF32 } from "../dist/kernels/update-f32.js";
import { createWasmKernels } from "../dist/kernels/wasm/wasm-kernels.js";

const seconds = Number(process.argv[2] ?? 0.5);
const N = 784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10;
const k = createWasmKernels({ heapBytes: 16 * N + 1024, scratchBytes: 1 << 16 });
const [p, g, m, v] = [0, 1, 2, 3].map(() => k.allocF32(N));
for (let i = 0; i < N; i++) {
  p[i] = Math.random() - 0.5;
  g[i] = (Math.random() - 0.5) * 1e-2;
}
const o = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maximize: false };
let t = 1;

const updates = {
  "float32 (wasm f32x4)": (end) =>
    adamUpdateF32(k, p, g, m, v, null, 0, end, adamScalarsF32(t, { ...o, decoupledWeightDecay: false })),
  "float32 (JS twin)": (end) =>
    adamUpdateF32(null, p, g, m, v, null, 0, end, adamScalarsF32(t, { ...o, decoupledWeightDecay: false })),
};

// Median ms per call over batches of calls filling `seconds`.
function msPerUpdate(run, end) {
  for (let i = 0; i < 20; i++) run(end); // warm-up (tier-up)
  const samples = [];
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    const s = performance.now();
    for (let i = 0; i < 10; i++) {
      run(end);
      t++;
    }
    samples.push((performance.now() - s) / 10);
  }
  samples.sort((a, b) => a - b);
  return samples[samples.length >> 1];
}

console.log(
  `node ${process.version}, ${os.cpus()[0]?.model ?? "?"}, ${os.availableParallelism()} cores (shared: rough figures)`,
);
console.log("Adam update".padEnd(24), `all ${N}`.padStart(12), `half ${N >> 1}`.padStart(12), "  ms per update");
for (const [label, run] of Object.entries(updates)) {
  const all = msPerUpdate(run, N),
    half = msPerUpdate(run, N >> 1);
  console.log(label.padEnd(24), all.toFixed(3).padStart(12), half.toFixed(3).padStart(12));
}
