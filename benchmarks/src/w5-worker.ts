// One rank of W5: attaches to the arena and, per request from main, times K iterations of
// reduceScatter + barrier (or of a bare barrier) and posts the time per iteration.
import { parentPort, workerData } from "node:worker_threads";
import { type Region, type WasmMemory, createWasmKernels } from "@threadgrad/core";
import { type ArenaHandle, SharedArena, SharedMemoryCollective, wasmSegmentSum } from "@threadgrad/workers";

export interface W5WorkerData {
  handle: ArenaHandle;
  rank: number;
  /** spin before blocking: only while ranks <= cores */
  spin: boolean;
  /** the arena's WebAssembly memory: the sum then runs as the SIMD kernel, as in the trainer */
  wasm: { memory: WasmMemory; scratch: Region } | null;
}

export interface W5Request {
  op: "reduce" | "barrier";
  k: number;
  /** floats to reduce: a prefix of this rank's gradient slice (reduced in place) */
  n: number;
}

const data = workerData as W5WorkerData;
const kernels = data.wasm ? createWasmKernels(data.wasm) : null;
const arena = SharedArena.attach(kernels?.buffer ?? data.handle.buffer, data.handle.layout, data.handle.byteOffset);
const collective = new SharedMemoryCollective(arena, data.rank, {
  name: "w5",
  spinIterations: data.spin ? 2000 : 0,
  segmentSum: kernels ? wasmSegmentSum(kernels, arena) : undefined,
});
const own = arena.grads(data.rank);
own.fill(1 / (data.rank + 1));

parentPort!.on("message", ({ op, k, n }: W5Request) => {
  const buf = own.subarray(0, n);
  collective.barrier(); // start together
  const t0 = performance.now();
  if (op === "reduce") {
    for (let i = 0; i < k; i++) {
      collective.reduceScatter(buf);
      collective.barrier(); // the end of a step: slice 0 may be rewritten only after this
    }
  } else {
    for (let i = 0; i < k; i++) collective.barrier();
  }
  parentPort!.postMessage({ rank: data.rank, ms: (performance.now() - t0) / k });
});
