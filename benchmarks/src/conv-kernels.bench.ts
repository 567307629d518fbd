// How fast are the convolution kernels, and a W6 training step, on one thread? Prints GFLOP/s of
// convolution forward, input gradient and weight gradient for W6's two conv layers at batch 128
// (the SIMD kernels of core's assembly/conv.ts on operands in wasm memory, next to the batch-wide
// im2col + matmul they replaced, rebuilt here from the same matmul), then samples/s of a W6
// forward + backward step inside a step region (as a trainer rank runs it). Standalone, a few
// seconds: `npx tsc -b && node benchmarks/dist/conv-kernels.bench.js` (THREADGRAD_KERNELS=js for
// the JavaScript twins' step). One process, one thread: figures from a shared machine are rough.
import {
  F,
  Generator,
  type Tensor,
  type WasmKernels,
  createWasmKernels,
  getKernelBackend,
  nn,
  randint,
  runInStepRegion,
  setDefaultWasmKernels,
  tensor,
  usesRelaxedSimd,
} from "@threadgrad/core";

interface Layer {
  name: string;
  n: number;
  c: number;
  h: number;
  w: number;
  cout: number;
}
// W6: conv 1→32 k3 p1 on 28×28, then conv 32→64 k3 p1 on 14×14, batch 128.
const LAYERS: Layer[] = [
  { name: "conv1 1→32 28×28", n: 128, c: 1, h: 28, w: 28, cout: 32 },
  { name: "conv2 32→64 14×14", n: 128, c: 32, h: 14, w: 14, cout: 64 },
];
const K = 3,
  PAD = 1;

/** Median milliseconds per call of fn over `rounds` rounds of at least `minMs` each. */
function timeMs(fn: () => void, minMs = 250, rounds = 3): number {
  fn();
  const perCall: number[] = [];
  for (let r = 0; r < rounds; r++) {
    let calls = 0;
    const start = performance.now();
    let now = start;
    while (now - start < minMs) {
      fn();
      calls++;
      now = performance.now();
    }
    perCall.push((now - start) / calls);
  }
  perCall.sort((a, b) => a - b);
  return perCall[Math.floor(rounds / 2)]!;
}

const fill = (a: Float32Array, g: Generator): Float32Array => {
  for (let i = 0; i < a.length; i++) a[i] = 2 * g.random() - 1;
  return a;
};

function kernelRows(k: WasmKernels): string[] {
  const lines: string[] = [];
  const g = new Generator(6);
  for (const L of LAYERS) {
    const p = L.h * L.w,
      kk = L.c * K * K;
    const flops = 2 * L.n * L.cout * p * kk;
    const x = fill(k.allocF32(L.n * L.c * p), g),
      w = fill(k.allocF32(L.cout * kk), g),
      gy = fill(k.allocF32(L.n * L.cout * p), g);
    const y = k.allocF32(L.n * L.cout * p),
      dx = k.allocF32(L.n * L.c * p),
      dw = k.allocF32(L.cout * kk);
    const geo = k.alloc(64);
    new Int32Array(k.buffer, geo, 16).set([L.n, L.c, L.h, L.w, L.cout, K, K, 1, 1, PAD, PAD, 1, 1, L.h, L.w, 1]);
    const scratch = k.alloc(k.exports.convScratchBytes(geo));
    const e = k.exports;
    const after = [
      timeMs(() => e.convForward(x.byteOffset, w.byteOffset, 0, y.byteOffset, geo, scratch)),
      timeMs(() => e.convInputGrad(gy.byteOffset, w.byteOffset, dx.byteOffset, geo, scratch)),
      timeMs(() => e.convWeightGrad(gy.byteOffset, x.byteOffset, dw.byteOffset, geo, scratch)),
    ];
    const before = batchIm2colTimes(k, L, x, w, gy);
    const fmt = (ms: number) => (flops / (ms * 1e6)).toFixed(1).padStart(6);
    lines.push(
      `${L.name.padEnd(20)} ${(flops / 1e6).toFixed(0).padStart(5)} MFLOP  ` +
        `forward ${fmt(after[0]!)} (before ${fmt(before[0]!)})  input grad ${fmt(after[1]!)} (before ${fmt(before[1]!)})  ` +
        `weight grad ${fmt(after[2]!)} (before ${fmt(before[2]!)})  GFLOP/s`,
    );
  }
  return lines;
}

// The previous design, rebuilt from the same SIMD matmul: im2col of the whole batch into a fresh
// [N·P, K] array (rows = output positions), one matmul into [N·P, C_out], a permute back to NCHW;
// backward: the permute's copy of g, g·W into a fresh [N·P, K] and col2im, and gᵀ·cols (cols saved).
function batchIm2colTimes(k: WasmKernels, L: Layer, x: Float32Array, w: Float32Array, gy: Float32Array): number[] {
  const p = L.h * L.w,
    kk = L.c * K * K,
    rows = L.n * p;
  const map = new Int32Array(p * kk);
  let m = 0;
  for (let oy = 0; oy < L.h; oy++)
    for (let ox = 0; ox < L.w; ox++)
      for (let ci = 0; ci < L.c; ci++)
        for (let i = 0; i < K; i++)
          for (let j = 0; j < K; j++) {
            const iy = oy - PAD + i,
              ix = ox - PAD + j;
            map[m++] = iy >= 0 && iy < L.h && ix >= 0 && ix < L.w ? (ci * L.h + iy) * L.w + ix : -1;
          }
  const im2col = (): Float32Array => {
    const cols = new Float32Array(rows * kk);
    for (let b = 0; b < L.n; b++) {
      const inBase = b * L.c * p,
        colBase = b * map.length;
      for (let i = 0; i < map.length; i++) cols[colBase + i] = map[i]! >= 0 ? x[inBase + map[i]!]! : 0;
    }
    return cols;
  };
  const toNchw = (src: Float32Array, channels: number, inverse: boolean): Float32Array => {
    const out = new Float32Array(src.length);
    for (let b = 0; b < L.n; b++)
      for (let q = 0; q < p; q++)
        for (let o = 0; o < channels; o++) {
          const rowIdx = (b * p + q) * channels + o,
            chw = (b * channels + o) * p + q;
          if (inverse) out[rowIdx] = src[chw]!;
          else out[chw] = src[rowIdx]!;
        }
    return out;
  };
  const cols = im2col();
  const forward = timeMs(() => {
    const flat = new Float32Array(rows * L.cout);
    k.matmulF32(im2col(), w, flat, rows, kk, L.cout, false, true);
    toNchw(flat, L.cout, false);
  });
  const inputGrad = timeMs(() => {
    const gRows = toNchw(gy, L.cout, true);
    const dcols = new Float32Array(rows * kk);
    k.matmulF32(gRows, w, dcols, rows, L.cout, kk);
    const dx = new Float32Array(L.n * L.c * p);
    for (let b = 0; b < L.n; b++) {
      const inBase = b * L.c * p,
        colBase = b * map.length;
      for (let i = 0; i < map.length; i++) if (map[i]! >= 0) dx[inBase + map[i]!]! += dcols[colBase + i]!;
    }
  });
  const dw = new Float32Array(L.cout * kk);
  const weightGrad = timeMs(() => k.matmulF32(toNchw(gy, L.cout, true), cols, dw, L.cout, rows, kk, true, false));
  return [forward, inputGrad, weightGrad];
}

/** Samples/s of W6 forward + backward (no optimizer) at batch 128 inside a step region of `scratchMiB`. */
function stepRate(scratchMiB: number): number {
  const k = createWasmKernels({ scratchBytes: scratchMiB << 20 });
  setDefaultWasmKernels(k);
  const g = new Generator(6);
  const model = new nn.Sequential(
    new nn.Conv2d(1, 32, 3, { padding: 1 }),
    new nn.ReLU(),
    new nn.MaxPool2d(2),
    new nn.Conv2d(32, 64, 3, { padding: 1 }),
    new nn.ReLU(),
    new nn.MaxPool2d(2),
    new nn.Flatten(),
    new nn.Linear(3136, 128),
    new nn.ReLU(),
    new nn.Linear(128, 10),
  );
  // A stream of four batches, not one: gradients of a fixed batch are not what training sees.
  const batches: [Tensor, Tensor][] = Array.from({ length: 4 }, () => [
    tensor(
      Float32Array.from({ length: 128 * 784 }, () => g.random()),
      { shape: [128, 1, 28, 28] },
    ),
    randint(0, 10, [128], { generator: g }),
  ]);
  let t = 0;
  const ms = timeMs(
    () => {
      const [x, y] = batches[t++ % batches.length]!;
      model.zeroGrad();
      runInStepRegion(k, () => F.crossEntropy(model.forward(x), y).backward());
    },
    1500,
    1,
  );
  return 128 / (ms / 1000);
}

const backend = getKernelBackend();
const relaxed = backend === "wasm" && usesRelaxedSimd() ? " (relaxed SIMD)" : "";
console.log(`conv kernels, one thread: Node ${process.version}, kernels ${backend}${relaxed}`);
if (backend === "wasm") {
  const k = createWasmKernels({ heapBytes: 96 << 20, scratchBytes: 64 << 20 });
  for (const line of kernelRows(k)) console.log(line);
}
for (const mib of [48, 256]) {
  console.log(`W6 forward+backward, batch 128, ${mib} MiB step region: ${stepRate(mib).toFixed(0)} samples/s`);
}
