// Usage (after a build, from benchmarks/): node scripts/rank-steps-concurrent.mjs [batch] [counts]
// N threads each run W1 rank steps (forward, backward into bound gradients, the trainer's float32
// SIMD Adam over all parameters, inside a step region) with no synchronisation between them: does
// one thread's step slow down when others run beside it? "own": each thread has its own WebAssembly
// memory; "shared": all threads in one shared memory, each with its own parameters and scratch, as
// DataParallel lays ranks out (there they also share the parameters).
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import os from "node:os";
import {
  adamScalarsF32,
  adamUpdateF32,
  createWasmKernels,
  manualSeed,
  nn,
  runInStepRegion,
  setDefaultWasmKernels,
  tensor,
} from "@threadgrad/core";
import { buildMlp } from "@threadgrad/workers";

const SIZES = [784, 256, 256, 10];
const PARAMS = 269_322;
const SCRATCH = 48 << 20;
const ADAM = {
  lr: 1e-3,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 0,
  decoupledWeightDecay: false,
  maximize: false,
};

function stepper(k, batch) {
  setDefaultWasmKernels(k);
  manualSeed(0);
  const model = buildMlp(SIZES, "relu");
  const params = model.parameters();
  const [p, g, m, v] = [0, 1, 2, 3].map(() => k.allocF32(PARAMS));
  let off = 0;
  for (const t of params) {
    const view = p.subarray(off, off + t.numel);
    view.set(t.data);
    t.setStorage(view);
    t.bindGrad(g.subarray(off, off + t.numel));
    off += t.numel;
  }
  const xs = k.allocF32(batch * 784).map((_, i) => Math.sin(i));
  const y = tensor(
    Int32Array.from({ length: batch }, (_, i) => i % 10),
    { shape: [batch] },
  );
  let t = 0;
  return () => {
    runInStepRegion(k, () => {
      for (const q of params) q.grad = null;
      const loss = nn.F.crossEntropy(model.forward(tensor(xs, { shape: [batch, 784] })), y, { reduction: "sum" });
      loss.item();
      loss.div(batch).backward();
      for (const q of params) q.syncGrad();
    });
    t++;
    adamUpdateF32(k, p, g, m, v, null, 0, PARAMS, adamScalarsF32(t, ADAM));
  };
}

if (isMainThread) {
  const batch = Number(process.argv[2] ?? 128);
  const counts = (process.argv[3] ?? "1,2,4,8").split(",").map(Number);
  console.log(
    `cpus ${os.cpus().length} (${os.cpus()[0]?.model}), ` +
      `W1 rank step at batch ${batch}, ms per step (median over threads)`,
  );
  for (const mode of ["own", "shared"]) {
    const line = [];
    for (const n of counts) {
      const go = new Int32Array(new SharedArrayBuffer(4));
      let shared = null;
      if (mode === "shared") {
        const heapBytes = n * (SCRATCH + 4 * PARAMS * 4 + batch * 784 * 4 + (1 << 20));
        const owner = createWasmKernels({ heapBytes, scratchBytes: 1 << 16 });
        shared = {
          memory: owner.memory,
          regions: Array.from({ length: n }, () => {
            const heap = {
              byteOffset: owner.alloc(4 * PARAMS * 4 + batch * 784 * 4 + (1 << 20), 64),
              byteLength: 4 * PARAMS * 4 + batch * 784 * 4 + (1 << 20),
            };
            return { heap, scratch: { byteOffset: owner.alloc(SCRATCH, 64), byteLength: SCRATCH } };
          }),
        };
      }
      const ws = Array.from(
        { length: n },
        (_, r) =>
          new Worker(new URL(import.meta.url), {
            workerData: { batch, go: go.buffer, memory: shared?.memory, region: shared?.regions[r] },
          }),
      );
      await Promise.all(ws.map((w) => new Promise((res) => w.once("message", res))));
      Atomics.store(go, 0, 1);
      Atomics.notify(go, 0);
      const ms = await Promise.all(ws.map((w) => new Promise((res) => w.once("message", res))));
      await Promise.all(ws.map((w) => w.terminate()));
      ms.sort((a, b) => a - b);
      line.push(`N=${n}: ${ms[ms.length >> 1].toFixed(2)}`);
    }
    console.log(`${mode.padEnd(6)} ${line.join("  ")}`);
  }
} else {
  const { batch, go, memory, region } = workerData;
  const k = memory
    ? createWasmKernels({ memory, heap: region.heap, scratch: region.scratch })
    : createWasmKernels({ heapBytes: 4 * PARAMS * 4 + batch * 784 * 4 + (1 << 20), scratchBytes: SCRATCH });
  const step = stepper(k, batch);
  for (let i = 0; i < 400; i++) step();
  parentPort.postMessage("ready");
  Atomics.wait(new Int32Array(go), 0, 0);
  const t0 = performance.now();
  let n = 0;
  while (performance.now() - t0 < 3000) {
    step();
    n++;
  }
  parentPort.postMessage((performance.now() - t0) / n);
}
