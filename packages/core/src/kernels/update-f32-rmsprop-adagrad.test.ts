import { describe, expect, it } from "vitest";
import { Generator } from "../tensor/random.js";
import { type AdagradF32Options, type RmspropF32Options, adagradUpdateF32, rmspropUpdateF32 } from "./update-f32.js";
import { isWasmSimdSupported } from "./wasm/loader.js";
import { type WasmKernels, createWasmKernels } from "./wasm/wasm-kernels.js";

// RMSprop and Adagrad in float32, as update-f32.test.ts checks Adam and SGD: the SIMD kernels and
// the JavaScript twins give the same bits, and both follow PyTorch's formulas to float32 rounding.

const RMS: RmspropF32Options = { lr: 1e-2, alpha: 0.99, eps: 1e-8, weightDecay: 0, momentum: 0, maximize: false };
const RMS_CASES: [string, RmspropF32Options, boolean][] = [
  ["RMSprop", RMS, false],
  ["RMSprop, centered", RMS, true],
  ["RMSprop, momentum, weight decay", { ...RMS, momentum: 0.9, weightDecay: 0.01 }, false],
  ["RMSprop, centered, momentum, maximize, other alpha", { ...RMS, momentum: 0.5, maximize: true, alpha: 0.9 }, true],
];
const ADA: AdagradF32Options = { lr: 1e-2, lrDecay: 0, weightDecay: 0, eps: 1e-10, maximize: false };
const ADA_CASES: [string, AdagradF32Options, number][] = [
  ["Adagrad", ADA, 0],
  ["Adagrad, lr decay, weight decay, initial accumulator", { ...ADA, lrDecay: 0.1, weightDecay: 0.05 }, 0.1],
  ["Adagrad, maximize", { ...ADA, maximize: true, eps: 1e-6 }, 0],
];
const SPECIAL_GRADS = [0, -0, 1e-39, -2e-39, 1e-30, 1e-20, 1e19, -3e19, 1e30, 3.4e38, -1.17e-38, 1.18e-38];

// Bits, with every NaN as one value: WebAssembly leaves a NaN's sign and payload open (a centered
// RMSprop meets inf - inf when a gradient's square overflows).
const bits = (a: Float32Array) =>
  Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length), (b, i) => (Number.isNaN(a[i]) ? -1 : b));

function place(k: WasmKernels, init: Float32Array[]): Float32Array[] {
  return init.map((a) => {
    const view = k.f32(k.alloc(a.length * 4 + 4) + 4, a.length);
    view.set(a);
    return view;
  });
}

// Runs `update(kernels, arrays, t)` for 6 steps on copies inside and outside wasm memory, for
// every tail length; arrays = [params, grads, ...state], gradients with edge values.
function compare(
  stateCount: number,
  init: number,
  update: (k: WasmKernels | null, a: Float32Array[], t: number) => void,
) {
  const k = createWasmKernels({ heapBytes: 1 << 20, scratchBytes: 1 << 16 });
  for (const n of [1, 2, 3, 4, 5, 6, 7, 8, 13, 37, 67]) {
    const g = new Generator(n);
    const start = [
      Float32Array.from({ length: n }, () => g.normal()),
      new Float32Array(n),
      ...Array.from({ length: stateCount }, () => new Float32Array(n).fill(init)),
    ];
    const js = start.map((a) => a.slice());
    const wasm = place(k, start);
    for (let t = 1; t <= 6; t++) {
      const grad = Float32Array.from({ length: n }, (_, i) =>
        (i + t) % 3 === 0 ? SPECIAL_GRADS[(i * 7 + t) % SPECIAL_GRADS.length]! : g.normal() * 0.1,
      );
      wasm[1]!.set(grad);
      js[1]!.set(grad);
      update(k, wasm, t);
      update(null, js, t);
    }
    wasm.forEach((a, j) => {
      expect(bits(a), `n=${n}, array ${j}`).toEqual(bits(js[j]!));
    });
  }
}

describe.runIf(isWasmSimdSupported())("RMSprop and Adagrad: WebAssembly and JavaScript give the same bits", () => {
  it.each(RMS_CASES)("%s, every tail length, 6 steps", (_name, o, centered) => {
    compare(3, 0, (k, [p, g, sq, ga, buf], t) =>
      rmspropUpdateF32(k, p!, g!, sq!, centered ? ga! : null, o.momentum > 0 ? buf! : null, 0, p!.length, {
        ...o,
        lr: o.lr * (1 - 0.1 * t),
      }),
    );
  });

  it.each(ADA_CASES)("%s, every tail length, 6 steps", (_name, o, init) => {
    compare(1, init, (k, [p, g, sum], t) => adagradUpdateF32(k, p!, g!, sum!, 0, p!.length, t, o));
  });
});

describe("RMSprop and Adagrad in float32 against PyTorch's formulas in float64", () => {
  const STEPS = 8,
    N = 203;
  // As in update-f32.test.ts: half an ulp of p per step plus ~10 roundings of the largest update.
  function expectNear(got: Float32Array, want: Float64Array, scale: number) {
    for (let i = 0; i < got.length; i++) {
      const tol = STEPS * (2 ** -23 * Math.abs(want[i]!) + 2 ** -19 * scale);
      expect(Math.abs(got[i]! - want[i]!), `element ${i}`).toBeLessThanOrEqual(tol);
    }
  }

  it.each(RMS_CASES)("%s", (_name, o, centered) => {
    const g = new Generator(5);
    const p = Float32Array.from({ length: N }, () => g.normal());
    const ref = Float64Array.from(p);
    const [sq, ga, buf] = [new Float32Array(N), new Float32Array(N), new Float32Array(N)];
    const [rSq, rGa, rBuf] = [new Float64Array(N), new Float64Array(N), new Float64Array(N)];
    let scale = 0;
    for (let t = 1; t <= STEPS; t++) {
      const grad = Float32Array.from({ length: N }, (_, i) => g.normal() * 10 ** ((i % 5) - 3));
      rmspropUpdateF32(null, p, grad, sq, centered ? ga : null, o.momentum > 0 ? buf : null, 0, N, o);
      for (let i = 0; i < N; i++) {
        const gi = (o.maximize ? -grad[i]! : grad[i]!) + o.weightDecay * ref[i]!;
        rSq[i] = o.alpha * rSq[i]! + (1 - o.alpha) * gi * gi;
        let avg = rSq[i]!;
        if (centered) {
          rGa[i] = o.alpha * rGa[i]! + (1 - o.alpha) * gi;
          avg -= rGa[i]! ** 2;
        }
        let step = gi / (Math.sqrt(avg) + o.eps);
        if (o.momentum > 0) {
          rBuf[i] = o.momentum * rBuf[i]! + step;
          step = rBuf[i]!;
        }
        ref[i] = ref[i]! - o.lr * step;
        scale = Math.max(scale, Math.abs(o.lr * step));
      }
    }
    expectNear(p, ref, scale);
  });

  it.each(ADA_CASES)("%s", (_name, o, init) => {
    const g = new Generator(6);
    const p = Float32Array.from({ length: N }, () => g.normal());
    const ref = Float64Array.from(p);
    const sum = new Float32Array(N).fill(init),
      rSum = new Float64Array(N).fill(Math.fround(init));
    let scale = 0;
    for (let t = 1; t <= STEPS; t++) {
      const grad = Float32Array.from({ length: N }, (_, i) => g.normal() * 10 ** ((i % 5) - 3));
      adagradUpdateF32(null, p, grad, sum, 0, N, t, o);
      const clr = o.lr / (1 + (t - 1) * o.lrDecay);
      for (let i = 0; i < N; i++) {
        const gi = (o.maximize ? -grad[i]! : grad[i]!) + o.weightDecay * ref[i]!;
        rSum[i] = rSum[i]! + gi * gi;
        const step = (clr * gi) / (Math.sqrt(rSum[i]!) + o.eps);
        ref[i] = ref[i]! - step;
        scale = Math.max(scale, Math.abs(step));
      }
    }
    expectNear(p, ref, scale);
  });
});
