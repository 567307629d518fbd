// Run by mpirun from mpirun.test.ts: `node fixture.mjs <scenario>` in every process. Prints one
// "RESULT <json>" line per observation; the test checks them. Loads the built package (dist/).
import { Worker } from "node:worker_threads";
import * as mpi from "../dist/index.js";

const TIMEOUT_MS = 20_000;
const scenario = process.argv[2];
const out = (record) => console.log(`RESULT ${JSON.stringify({ rank: mpi.info().rank, ...record })}`);
const caught = (f) => {
  try {
    f();
    return { code: "none" };
  } catch (e) {
    return { code: e.code, message: e.message };
  }
};
const sleepMs = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

async function collectives() {
  const beforeInit = caught(() => mpi.barrier(mpi.WORLD, 1000));
  const { rank, size } = mpi.init();
  // Float32 on a SharedArrayBuffer at a byte offset, as trainer gradients are; values exact in float32.
  const f32 = new Float32Array(new SharedArrayBuffer(4 * 10), 8, 8).map((_, i) => (rank + 1) * (i + 1) * 0.25);
  mpi.allReduceSum(mpi.WORLD, f32, TIMEOUT_MS);
  out({ kind: "f32", values: Array.from(f32) });
  const f64 = new Float64Array(8).map((_, i) => (rank + 1) * 0.1 * (i + 1));
  mpi.allReduceSum(mpi.WORLD, f64, TIMEOUT_MS);
  out({ kind: "f64", values: Array.from(f64) });
  const i32 = new Int32Array([rank, -rank, 10 * rank]);
  mpi.allReduceMax(mpi.WORLD, i32, TIMEOUT_MS);
  const nonFinite = mpi.allReduceMax(mpi.WORLD, rank === size - 1 ? 1 : 0, TIMEOUT_MS);
  const smallest = mpi.allReduceMin(mpi.WORLD, rank + 5, TIMEOUT_MS);
  out({ kind: "maxmin", i32: Array.from(i32), nonFinite, smallest });

  const bytes = new Uint8Array(16).map((_, i) => (rank === 1 ? 100 + i : 0));
  mpi.broadcast(mpi.WORLD, bytes, 1, TIMEOUT_MS);
  const doubles = new Float64Array(3).map((_, i) => (rank === 0 ? Math.PI * (i + 1) : -1));
  mpi.broadcast(mpi.WORLD, doubles, 0, TIMEOUT_MS);
  mpi.barrier(mpi.WORLD, TIMEOUT_MS);
  out({ kind: "broadcast", bytes: Array.from(bytes), doubles: Array.from(doubles) });

  const asyncSum = new Float64Array([rank + 1, 10 * (rank + 1)]);
  const pending = mpi.allReduceSumAsync(mpi.WORLD, asyncSum, TIMEOUT_MS);
  const busy = caught(() => mpi.barrier(mpi.WORLD, TIMEOUT_MS));
  await pending;
  const asyncBytes = new Uint8Array([rank === 0 ? 7 : 0]);
  await mpi.broadcastAsync(mpi.WORLD, asyncBytes, 0, TIMEOUT_MS);
  await mpi.barrierAsync(mpi.WORLD, TIMEOUT_MS);
  out({ kind: "async", sum: Array.from(asyncSum), byte: asyncBytes[0], busy });

  const byLocal = mpi.splitByLocalIndex(TIMEOUT_MS);
  const localSum = new Float64Array([rank + 1]);
  mpi.allReduceSum(byLocal, localSum, TIMEOUT_MS);
  const reversed = mpi.commSplit(mpi.WORLD, 0, size - 1 - rank, TIMEOUT_MS);
  const onlyRankZero = mpi.commSplit(mpi.WORLD, rank === 0 ? 0 : -1, 0, TIMEOUT_MS);
  out({
    kind: "split",
    info: mpi.info(),
    local: mpi.commInfo(mpi.LOCAL),
    byLocal: mpi.commInfo(byLocal),
    localSum: localSum[0],
    reversed: mpi.commInfo(reversed),
    onlyRankZero: onlyRankZero === undefined ? null : mpi.commInfo(onlyRankZero),
  });

  out({
    kind: "errors",
    badRoot: caught(() => mpi.broadcast(mpi.WORLD, bytes, 7, TIMEOUT_MS)),
    badComm: caught(() => mpi.barrier(99, TIMEOUT_MS)),
    badType: caught(() => mpi.allReduceSum(mpi.WORLD, new Uint8Array(2), TIMEOUT_MS)),
    badTimeout: caught(() => mpi.barrier(mpi.WORLD, -1)),
    beforeInit,
    wasmTrap: wasmOutOfBounds(),
  });

  // Loopback timings for the README (printed, not asserted).
  for (const mib of [1, 16]) {
    const data = new Float32Array((mib * 1024 * 1024) / 4).fill(1);
    mpi.allReduceSum(mpi.WORLD, data, 60_000);
    const times = [];
    for (let k = 0; k < 5; k++) {
      mpi.barrier(mpi.WORLD, 60_000);
      const start = performance.now();
      mpi.allReduceSum(mpi.WORLD, data, 60_000);
      times.push(performance.now() - start);
    }
    times.sort((a, b) => a - b);
    out({ kind: "timing", mib, medianMs: times[2], minMs: times[0] });
  }
  mpi.finalize();
  console.log(`RESULT ${JSON.stringify({ rank, kind: "finalized" })}`);
}

// Node traps out-of-bounds WebAssembly accesses with a SIGSEGV handler; MPI must leave it in place.
function wasmOutOfBounds() {
  // (module (memory 1) (func (export "f") (result i32) (i32.load (i32.const 70000))))
  const bytes = [0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 127, 3, 2, 1, 0, 5, 3, 1, 0, 1, 7, 5, 1, 1, 102, 0];
  bytes.push(0, 10, 11, 1, 9, 0, 65, 240, 162, 4, 40, 2, 0, 11);
  const instance = new WebAssembly.Instance(new WebAssembly.Module(new Uint8Array(bytes)));
  try {
    instance.exports.f();
    return "no trap";
  } catch (e) {
    return `${e.constructor.name}: ${e.message}`;
  }
}

async function threads() {
  mpi.init();
  const comms = [mpi.commDup(mpi.WORLD, TIMEOUT_MS), mpi.commDup(mpi.WORLD, TIMEOUT_MS)];
  const results = await Promise.all(
    comms.map(
      (comm, thread) =>
        new Promise((resolve, reject) => {
          const worker = new Worker(new URL("./fixture-worker.mjs", import.meta.url), {
            workerData: { comm, thread, rounds: 20, timeoutMs: TIMEOUT_MS },
          });
          worker.once("message", resolve);
          worker.once("error", reject);
        }),
    ),
  );
  for (const result of results) out({ kind: "thread", ...result });
  mpi.finalize();
}

async function timeout() {
  const { rank } = mpi.init();
  const spare = mpi.commDup(mpi.WORLD, TIMEOUT_MS);
  if (rank === 1) {
    sleepMs(120_000); // never joins; mpirun ends this process when rank 0 aborts
    return;
  }
  const start = performance.now();
  const error = caught(() => mpi.barrier(mpi.WORLD, 1500));
  out({ kind: "timeout", ...error, elapsedMs: performance.now() - start });
  const asyncError = await mpi.allReduceSumAsync(spare, new Float32Array(4), 500).then(
    () => ({ code: "none" }),
    (e) => ({ code: e.code, message: e.message }),
  );
  out({
    kind: "after",
    again: caught(() => mpi.barrier(mpi.WORLD, 1000)),
    asyncError,
    finalize: caught(() => mpi.finalize()),
  });
  mpi.abort(3);
}

function death() {
  const { rank } = mpi.init();
  const data = new Float32Array(256 * 1024).fill(1);
  for (let round = 0; round < 1000; round++) {
    if (rank === 1 && round === 3) process.kill(process.pid, "SIGKILL");
    const error = caught(() => mpi.allReduceSum(mpi.WORLD, data, 5000));
    if (error.code !== "none") {
      out({ kind: "death", round, ...error });
      mpi.abort(4);
    }
  }
  out({ kind: "death", round: 1000, code: "none" });
}

// commDup and commSplit add to commCount, commFree takes away; freed and MPI's own ids are refused.
function free() {
  const { rank } = mpi.init();
  const counts = [mpi.commCount()];
  const dup = mpi.commDup(mpi.WORLD, TIMEOUT_MS);
  const split = mpi.commSplit(mpi.WORLD, 0, rank, TIMEOUT_MS);
  counts.push(mpi.commCount());
  const sum = new Float64Array([rank + 1]);
  mpi.allReduceSum(split, sum, TIMEOUT_MS);
  mpi.commFree(dup);
  counts.push(mpi.commCount());
  mpi.commFree(split);
  counts.push(mpi.commCount());
  // Repeated, as trainers that come and go do: the count comes back to where it started.
  for (let k = 0; k < 20; k++) mpi.commFree(mpi.commDup(mpi.WORLD, TIMEOUT_MS));
  counts.push(mpi.commCount());
  out({
    kind: "free",
    counts,
    sum: sum[0],
    useAfterFree: caught(() => mpi.barrier(dup, TIMEOUT_MS)),
    freeTwice: caught(() => mpi.commFree(dup)),
    freeWorld: caught(() => mpi.commFree(mpi.WORLD)),
    freeUnknown: caught(() => mpi.commFree(999)),
  });
  mpi.finalize();
}

const scenarios = { collectives, threads, timeout, death, free };
if (!(scenario in scenarios)) throw new Error(`fixture: unknown scenario '${scenario}'`);
await scenarios[scenario]();
