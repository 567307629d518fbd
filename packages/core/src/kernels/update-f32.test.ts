import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { Generator } from "../tensor/random.js";
import { type AdamF32Options, type SgdF32Options, adamScalarsF32, adamUpdateF32, sgdUpdateF32 } from "./update-f32.js";
import {
  findKernelsWasm,
  isWasmSimdSupported,
  kernelsModule,
  newSharedMemory,
  usesRelaxedSimd,
} from "./wasm/loader.js";
import { type WasmKernels, createWasmKernels } from "./wasm/wasm-kernels.js";

const W = globalThis as unknown as {
  WebAssembly: {
    Module: new (b: Uint8Array) => object;
    Instance: new (m: object, i: object) => { exports: object };
  };
};

const ADAM: AdamF32Options = {
  lr: 1e-2,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 0,
  maximize: false,
  decoupledWeightDecay: false,
};
const ADAM_CASES: [string, AdamF32Options, boolean][] = [
  ["Adam", ADAM, false],
  [
    "Adam, L2 weight decay, other betas and eps",
    { ...ADAM, weightDecay: 0.1, beta1: 0.8, beta2: 0.99, eps: 1e-6 },
    false,
  ],
  ["Adam, maximize, amsgrad", { ...ADAM, maximize: true }, true],
  ["Adam, amsgrad, weight decay", { ...ADAM, weightDecay: 0.01 }, true],
  ["AdamW", { ...ADAM, weightDecay: 0.01, decoupledWeightDecay: true }, false],
  [
    "AdamW, large lr·wd, maximize",
    { ...ADAM, lr: 0.3, weightDecay: 0.5, decoupledWeightDecay: true, maximize: true },
    false,
  ],
  ["AdamW, amsgrad", { ...ADAM, lr: 3e-2, weightDecay: 0.3, decoupledWeightDecay: true }, true],
];
const SGD: SgdF32Options = { lr: 0.1, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, maximize: false };
const SGD_CASES: [string, SgdF32Options][] = [
  ["SGD", SGD],
  ["SGD, momentum", { ...SGD, momentum: 0.9 }],
  ["SGD, momentum, dampening, weight decay", { ...SGD, momentum: 0.9, dampening: 0.3, weightDecay: 0.01 }],
  ["SGD, nesterov, maximize", { ...SGD, lr: 0.05, momentum: 0.8, nesterov: true, maximize: true }],
  ["SGD, weight decay only", { ...SGD, weightDecay: 0.2 }],
];

// Gradients that probe the edges: zeros of both signs, subnormals (whose squares underflow), values
// whose squares overflow float32, and the float32 extremes.
const SPECIAL_GRADS = [0, -0, 1e-39, -2e-39, 1e-30, 1e-20, 1e19, -3e19, 1e30, 3.4e38, -1.17e-38, 1.18e-38];

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

// The arrays of one update, as views into a WebAssembly memory (4 bytes past a 64-byte boundary,
// so the vector loads are unaligned) and as plain copies.
function twinArrays(k: WasmKernels, init: Float32Array[]): { wasm: Float32Array[]; js: Float32Array[] } {
  const wasm = init.map((a) => {
    const view = k.f32(k.alloc(a.length * 4 + 4) + 4, a.length);
    view.set(a);
    return view;
  });
  return { wasm, js: init.map((a) => a.slice()) };
}

// The WebAssembly builds to compare: the one in use and, when that is the relaxed-SIMD build, the
// plain one too (the relaxed build must not fuse anything in these kernels).
function builds(): [string, (k: WasmKernels) => WasmKernels][] {
  const list: [string, (k: WasmKernels) => WasmKernels][] = [[usesRelaxedSimd() ? "relaxed" : "plain", (k) => k]];
  if (usesRelaxedSimd()) {
    const plain = new W.WebAssembly.Module(readFileSync(findKernelsWasm()!));
    list.push([
      "plain",
      // The same kernels object with the plain build's exports on the same memory.
      (k) =>
        Object.create(k, {
          exports: { value: new W.WebAssembly.Instance(plain, { env: { memory: k.memory } }).exports },
        }),
    ]);
  }
  return list;
}

describe.runIf(isWasmSimdSupported())("float32 updates: WebAssembly and JavaScript give the same bits", () => {
  kernelsModule();
  const LENGTHS = [1, 2, 3, 4, 5, 6, 7, 8, 13, 37, 67];
  const RANGES = (n: number) => [
    [0, n],
    [Math.min(1, n), n],
    [Math.min(2, n), Math.max(Math.min(2, n), n - 1)],
    [Math.min(3, n), Math.min(3, n)],
  ];

  for (const [build, select] of isWasmSimdSupported() ? builds() : []) {
    it.each(ADAM_CASES)(`${build} build: %s, every tail length, 6 steps`, (_name, options, amsgrad) => {
      const k = select(createWasmKernels({ heapBytes: 1 << 20, scratchBytes: 1 << 16 }));
      for (const n of LENGTHS) {
        for (const [start, end] of RANGES(n) as [number, number][]) {
          const g = new Generator(n * 31 + start);
          const p0 = Float32Array.from({ length: n }, () => g.normal());
          p0[0] = 1e-39; // subnormal parameter: weight decay reads it
          const zeros = () => new Float32Array(n);
          const { wasm, js } = twinArrays(k, [p0, zeros(), zeros(), zeros(), zeros(), zeros()]);
          const [pw, gw, mw, vw, xw] = wasm as [Float32Array, Float32Array, Float32Array, Float32Array, Float32Array];
          const [pj, gj, mj, vj, xj] = js as [Float32Array, Float32Array, Float32Array, Float32Array, Float32Array];
          for (let t = 1; t <= 6; t++) {
            const grad = Float32Array.from({ length: n }, (_, i) =>
              (i + t) % 3 === 0 ? SPECIAL_GRADS[(i * 7 + t) % SPECIAL_GRADS.length]! : g.normal() * 0.1,
            );
            gw.set(grad);
            gj.set(grad);
            const s = adamScalarsF32(t, { ...options, lr: options.lr * (1 - 0.1 * t) });
            adamUpdateF32(k, pw, gw, mw, vw, amsgrad ? xw : null, start, end, s);
            adamUpdateF32(null, pj, gj, mj, vj, amsgrad ? xj : null, start, end, s);
          }
          const where = `n=${n} [${start}, ${end})`;
          expect(bits(pw), where).toEqual(bits(pj));
          expect(bits(mw), where).toEqual(bits(mj));
          expect(bits(vw), where).toEqual(bits(vj));
          expect(bits(xw), where).toEqual(bits(xj));
          if (start > 0) expect(pw[0], `${where}: outside the range`).toBe(p0[0]);
        }
      }
    });

    it.each(SGD_CASES)(`${build} build: %s, every tail length, 6 steps`, (_name, options) => {
      const k = select(createWasmKernels({ heapBytes: 1 << 20, scratchBytes: 1 << 16 }));
      for (const n of LENGTHS) {
        for (const [start, end] of RANGES(n) as [number, number][]) {
          const g = new Generator(n * 17 + start);
          const p0 = Float32Array.from({ length: n }, () => g.normal());
          p0[n - 1] = -2e-39;
          const { wasm, js } = twinArrays(k, [p0, new Float32Array(n), new Float32Array(n)]);
          const [pw, gw, bw] = wasm as [Float32Array, Float32Array, Float32Array];
          const [pj, gj, bj] = js as [Float32Array, Float32Array, Float32Array];
          const hasBuf = options.momentum !== 0;
          for (let t = 1; t <= 6; t++) {
            const grad = Float32Array.from({ length: n }, (_, i) =>
              (i + t) % 3 === 0 ? SPECIAL_GRADS[(i * 5 + t) % SPECIAL_GRADS.length]! : g.normal() * 0.1,
            );
            gw.set(grad);
            gj.set(grad);
            const o = { ...options, lr: options.lr * (1 - 0.1 * t) };
            sgdUpdateF32(k, pw, gw, hasBuf ? bw : null, start, end, t === 1, o);
            sgdUpdateF32(null, pj, gj, hasBuf ? bj : null, start, end, t === 1, o);
          }
          const where = `n=${n} [${start}, ${end})`;
          expect(bits(pw), where).toEqual(bits(pj));
          expect(bits(bw), where).toEqual(bits(bj));
        }
      }
    });
  }

  it("stores no subnormal moment: a gradient whose square underflows leaves v at 0", () => {
    const k = createWasmKernels({ heapBytes: 1 << 16, scratchBytes: 1 << 16 });
    const { wasm, js } = twinArrays(k, [
      Float32Array.of(1, 1, 1, 1, 1),
      Float32Array.of(1e-30, 1e-39, 0, 1e-20, 1.2e-37),
      new Float32Array(5),
      new Float32Array(5),
    ]);
    for (const [kernels, [p, g, m, v]] of [
      [k, wasm],
      [null, js],
    ] as const) {
      adamUpdateF32(kernels, p!, g!, m!, v!, null, 0, 5, adamScalarsF32(1, ADAM));
      // (1-β2)·(1e-30)² and (1-β2)·(1e-20)² are below FLT_MIN; 0.1·1e-39 and 0.1·1.2e-37 too.
      expect(Array.from(v!)).toEqual([0, 0, 0, 0, 0]);
      expect(Array.from(m!.subarray(1, 3))).toEqual([0, 0]);
      expect(m![0]).toBe(Math.fround(Math.fround(0.1) * 1e-30));
    }
  });
});

// PyTorch's documented Adam/AdamW (amsgrad as implemented: the maximum of the raw second moments)
// and SGD, in float64 throughout, from the same float32 starting point and gradients.
// Each returns the largest |change| of a parameter in this step.
function adamReference(p: Float64Array, g: Float32Array, state: Float64Array[], t: number, o: AdamF32Options): number {
  const [m, v, vmax] = state as [Float64Array, Float64Array, Float64Array];
  let largest = 0;
  for (let i = 0; i < p.length; i++) {
    let gi = o.maximize ? -g[i]! : g[i]!;
    if (o.decoupledWeightDecay) p[i] = p[i]! * (1 - o.lr * o.weightDecay);
    else gi += o.weightDecay * p[i]!;
    m[i] = o.beta1 * m[i]! + (1 - o.beta1) * gi;
    v[i] = o.beta2 * v[i]! + (1 - o.beta2) * gi * gi;
    vmax[i] = Math.max(vmax[i]!, v[i]!);
    const mHat = m[i]! / (1 - o.beta1 ** t);
    const vHat = vmax[i]! / (1 - o.beta2 ** t);
    const before = p[i]!;
    p[i] = p[i]! - (o.lr * mHat) / (Math.sqrt(vHat) + o.eps);
    largest = Math.max(largest, Math.abs(p[i]! - before));
  }
  return largest;
}

function sgdReference(p: Float64Array, g: Float32Array, b: Float64Array, t: number, o: SgdF32Options): number {
  let largest = 0;
  for (let i = 0; i < p.length; i++) {
    let gi = (o.maximize ? -g[i]! : g[i]!) + o.weightDecay * p[i]!;
    if (o.momentum !== 0) {
      b[i] = t === 1 ? gi : o.momentum * b[i]! + (1 - o.dampening) * gi;
      gi = o.nesterov ? gi + o.momentum * b[i]! : b[i]!;
    }
    p[i] = p[i]! - o.lr * gi;
    largest = Math.max(largest, Math.abs(o.lr * gi));
  }
  return largest;
}

describe("float32 updates against PyTorch's formulas in float64", () => {
  const STEPS = 8,
    N = 203;
  // Each step rounds p once (half an ulp, 2⁻²⁴·|p|) and computes the update from float32 moments a
  // few roundings away from the exact ones (relative error ~10·2⁻²⁴ of the largest update the
  // reference made); errors add up over the steps.
  const within = (got: Float32Array, want: Float64Array, updateScale: number, where: string) => {
    for (let i = 0; i < got.length; i++) {
      const tol = STEPS * (2 ** -23 * Math.abs(want[i]!) + 2 ** -19 * updateScale);
      expect(Math.abs(got[i]! - want[i]!), `${where}, element ${i}`).toBeLessThanOrEqual(tol);
    }
  };

  it.each(ADAM_CASES)("%s", (name, options, amsgrad) => {
    const g = new Generator(3);
    const p = Float32Array.from({ length: N }, () => g.normal());
    const p0 = p.slice(),
      pRef = Float64Array.from(p);
    let scale = 0;
    const [m, v, vmax] = [new Float32Array(N), new Float32Array(N), new Float32Array(N)];
    const ref = [new Float64Array(N), new Float64Array(N), new Float64Array(N)];
    for (let t = 1; t <= STEPS; t++) {
      // Gradient scales that differ by element, so that sqrt(v̂) and eps both matter somewhere.
      const grad = Float32Array.from({ length: N }, (_, i) => g.normal() * 10 ** ((i % 7) - 5));
      adamUpdateF32(null, p, grad, m, v, amsgrad ? vmax : null, 0, N, adamScalarsF32(t, options));
      // Without amsgrad the reference's maximum is unused: give it v itself.
      if (!amsgrad) ref[2] = ref[1]!;
      scale = Math.max(scale, adamReference(pRef, grad, ref, t, options));
      if (!amsgrad) ref[2] = new Float64Array(N);
    }
    within(p, pRef, scale, name);
    for (let i = 0; i < N; i++) {
      expect(Math.abs(m[i]! - ref[0]![i]!), `m[${i}]`).toBeLessThanOrEqual(2 ** -18 * Math.abs(ref[0]![i]!) + 1e-37);
      expect(Math.abs(v[i]! - ref[1]![i]!), `v[${i}]`).toBeLessThanOrEqual(2 ** -18 * ref[1]![i]! + 1e-37);
    }
    // Most parameters moved by far more than the tolerance: a real comparison, not p against p.
    const moved = p.filter((x, i) => Math.abs(x - p0[i]!) > 100 * STEPS * 2 ** -19 * scale).length;
    expect(moved, "parameters that moved").toBeGreaterThan(0.75 * N);
  });

  it.each(SGD_CASES)("%s", (name, options) => {
    const g = new Generator(4);
    const p = Float32Array.from({ length: N }, () => g.normal());
    const pRef = Float64Array.from(p);
    const buf = new Float32Array(N),
      bufRef = new Float64Array(N);
    let scale = 0;
    for (let t = 1; t <= STEPS; t++) {
      const grad = Float32Array.from({ length: N }, () => g.normal());
      sgdUpdateF32(null, p, grad, options.momentum !== 0 ? buf : null, 0, N, t === 1, options);
      scale = Math.max(scale, sgdReference(pRef, grad, bufRef, t, options));
    }
    within(p, pRef, scale, name);
    if (options.momentum !== 0) {
      for (let i = 0; i < N; i++)
        expect(Math.abs(buf[i]! - bufRef[i]!), `buf[${i}]`).toBeLessThanOrEqual(2 ** -18 * (1 + Math.abs(bufRef[i]!)));
    }
  });
});

describe("float32 update arguments", () => {
  it("a range outside the arrays names the function, the range and the length", () => {
    const a = new Float32Array(8);
    const s = adamScalarsF32(1, ADAM);
    expect(() => adamUpdateF32(null, a, a, a, new Float32Array(4), null, 0, 8, s)).toThrow(
      /adamUpdateF32: range \[0, 8\) does not fit an array of length 4/,
    );
    expect(() => sgdUpdateF32(null, a, a, null, 3, 2, true, SGD)).toThrow(
      /sgdUpdateF32: range \[3, 2\) is not a range of indices/,
    );
  });

  it.runIf(isWasmSimdSupported())("arrays outside the kernels' memory take the JavaScript update", () => {
    const k = createWasmKernels({ memory: newSharedMemory(1), scratch: { byteOffset: 0, byteLength: 0 } });
    const p = Float32Array.of(1, 2, 3),
      g = Float32Array.of(1, 1, 1);
    sgdUpdateF32(k, p, g, null, 0, 3, true, SGD);
    expect(Array.from(p)).toEqual([1 - 0.1, 2 - 0.1, 3 - 0.1].map(Math.fround));
  });
});

describe.runIf(isWasmSimdSupported())("adamUpdateF32 over many blocks, and without room in scratch", () => {
  kernelsModule();
  // With room in the thread's scratch the kernel runs blocks of 1,024 (steps into scratch, then the
  // parameters); without it, the JavaScript loop. Both must give the JavaScript twin's bits, across
  // block edges, unaligned starts and tails.
  const n = 2 * 1024 + 37;
  const RANGES: [number, number][] = [
    [0, n],
    [5, n - 3],
    [1021, 2051],
    [1024, 1025],
  ];
  for (const [form, scratchBytes] of [
    ["kernel", 1 << 16],
    ["no room in scratch", 1 << 12],
  ] as const) {
    it.each(ADAM_CASES)(`${form}: %s`, (_name, options, amsgrad) => {
      const k = createWasmKernels({ heapBytes: 1 << 20, scratchBytes });
      const scratchBefore = k.scratchFree();
      for (const [start, end] of RANGES) {
        const g = new Generator(start * 7 + end);
        const p0 = Float32Array.from({ length: n }, () => g.normal());
        const m0 = Float32Array.from({ length: n }, () => g.normal() * 0.01);
        const v0 = Float32Array.from({ length: n }, () => Math.abs(g.normal()) * 1e-4);
        const { wasm, js } = twinArrays(k, [p0, new Float32Array(n), m0, v0, v0.slice()]);
        const [pw, gw, mw, vw, xw] = wasm as [Float32Array, Float32Array, Float32Array, Float32Array, Float32Array];
        const [pj, gj, mj, vj, xj] = js as [Float32Array, Float32Array, Float32Array, Float32Array, Float32Array];
        for (let t = 1; t <= 3; t++) {
          const grad = Float32Array.from({ length: n }, (_, i) =>
            (i + t) % 5 === 0 ? SPECIAL_GRADS[(i + t) % SPECIAL_GRADS.length]! : g.normal() * 0.1,
          );
          gw.set(grad);
          gj.set(grad);
          const s = adamScalarsF32(t, options);
          adamUpdateF32(k, pw, gw, mw, vw, amsgrad ? xw : null, start, end, s);
          adamUpdateF32(null, pj, gj, mj, vj, amsgrad ? xj : null, start, end, s);
        }
        const where = `[${start}, ${end})`;
        expect(bits(pw), `${where}: params`).toEqual(bits(pj));
        expect(bits(mw), `${where}: m`).toEqual(bits(mj));
        expect(bits(vw), `${where}: v`).toEqual(bits(vj));
        expect(bits(gw), `${where}: the gradient is left as it was`).toEqual(bits(gj));
        if (start > 0) expect(pw[start - 1], `${where}: outside the range`).toBe(p0[start - 1]);
        expect(pw[end] ?? 0, `${where}: outside the range`).toBe(p0[end] ?? 0);
      }
      expect(k.scratchFree(), "the scratch block is given back").toBe(scratchBefore);
    });
  }
});
