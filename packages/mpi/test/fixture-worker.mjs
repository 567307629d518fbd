// One worker thread of fixture.mjs's "threads" scenario: all-reduces on its own communicator,
// concurrently with the process's other worker, and checks every result against the exact sum.
import { parentPort, workerData } from "node:worker_threads";
import * as mpi from "../dist/index.js";

const { comm, thread, rounds, timeoutMs } = workerData;
const { rank, size } = mpi.info();
const initInWorker = (() => {
  try {
    mpi.init();
    return "no error";
  } catch (e) {
    return e.message;
  }
})();
// Thread 0 sums float32, thread 1 float64; every value is a small integer, so sums are exact.
const Array_ = thread === 0 ? Float32Array : Float64Array;
const data = new Array_(new SharedArrayBuffer(65536 * Array_.BYTES_PER_ELEMENT));
const value = (r, round, i) => (r * 10 + thread + 1) * ((i + round) % 7);
let wrong = 0;
for (let round = 0; round < rounds; round++) {
  for (let i = 0; i < data.length; i++) data[i] = value(rank, round, i);
  mpi.allReduceSum(comm, data, timeoutMs);
  for (let i = 0; i < data.length; i++) {
    let expected = 0;
    for (let r = 0; r < size; r++) expected += value(r, round, i);
    if (data[i] !== expected) wrong++;
  }
}
parentPort.postMessage({
  thread,
  comm,
  commInfo: mpi.commInfo(comm),
  type: Array_.name,
  rounds,
  length: data.length,
  wrong,
  initInWorker,
});
