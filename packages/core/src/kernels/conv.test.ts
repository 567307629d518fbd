import { afterEach, describe, expect, test } from "vitest";
import { Generator } from "../index.js";
import { getKernelBackend, setKernelBackend } from "./backend.js";
import { type ConvDims, convForward, convInputGrad, convUsesDirectKernels, convWeightGrad } from "./conv.js";
import { defaultWasmKernels } from "./wasm/matmul-kernel.js";

const gen = new Generator(31);
const randomArray = (n: number): Float64Array => Float64Array.from({ length: n }, () => 2 * gen.random() - 1);

function dimsOf(
  [n, c, h, w]: number[],
  [cout, kh, kw]: number[],
  s: [number, number],
  p: [number, number],
  d: [number, number],
  groups: number,
): ConvDims {
  const oh = Math.floor((h! + 2 * p[0] - d[0] * (kh! - 1) - 1) / s[0]) + 1;
  const ow = Math.floor((w! + 2 * p[1] - d[1] * (kw! - 1) - 1) / s[1]) + 1;
  return {
    n: n!,
    c: c!,
    h: h!,
    w: w!,
    cout: cout!,
    kh: kh!,
    kw: kw!,
    sh: s[0],
    sw: s[1],
    ph: p[0],
    pw: p[1],
    dh: d[0],
    dw: d[1],
    oh,
    ow,
    groups,
  };
}

// Index helpers and the three kernels by their definition, in float64 nested loops:
// y[b,o,oy,ox] = bias[o] + Σ_{ci,i,j} w[o,ci,i,j] · x[b, grp·cg + ci, oy·sh - ph + i·dh, ox·sw - pw + j·dw].
function eachTerm(d: ConvDims, visit: (xi: number, wi: number, yi: number) => void): void {
  const cg = d.c / d.groups,
    og = d.cout / d.groups;
  for (let b = 0; b < d.n; b++)
    for (let o = 0; o < d.cout; o++)
      for (let oy = 0; oy < d.oh; oy++)
        for (let ox = 0; ox < d.ow; ox++)
          for (let ci = 0; ci < cg; ci++)
            for (let i = 0; i < d.kh; i++)
              for (let j = 0; j < d.kw; j++) {
                const iy = oy * d.sh - d.ph + i * d.dh,
                  ix = ox * d.sw - d.pw + j * d.dw;
                if (iy < 0 || iy >= d.h || ix < 0 || ix >= d.w) continue;
                const ch = Math.floor(o / og) * cg + ci;
                visit(
                  ((b * d.c + ch) * d.h + iy) * d.w + ix,
                  ((o * cg + ci) * d.kh + i) * d.kw + j,
                  ((b * d.cout + o) * d.oh + oy) * d.ow + ox,
                );
              }
}

function reference(d: ConvDims, x: Float64Array, w: Float64Array, g: Float64Array, bias: Float64Array | null) {
  const y = new Float64Array(d.n * d.cout * d.oh * d.ow);
  if (bias !== null) for (let i = 0; i < y.length; i++) y[i] = bias[Math.floor(i / (d.oh * d.ow)) % d.cout]!;
  const dx = new Float64Array(x.length),
    dw = new Float64Array(w.length);
  eachTerm(d, (xi, wi, yi) => {
    y[yi] = y[yi]! + w[wi]! * x[xi]!;
    dx[xi] = dx[xi]! + w[wi]! * g[yi]!;
    dw[wi] = dw[wi]! + g[yi]! * x[xi]!;
  });
  return { y, dx, dw };
}

// Runs the three kernels on float32 copies, either on plain arrays or on views into the thread's
// wasm memory (the in-place path the trainer's step region takes).
function run(
  d: ConvDims,
  x: Float64Array,
  w: Float64Array,
  g: Float64Array,
  bias: Float64Array | null,
  inWasm: boolean,
) {
  const k = defaultWasmKernels();
  const mark = k.scratchMark();
  const f32 = (src: Float64Array | number): Float32Array => {
    const n = typeof src === "number" ? src : src.length;
    const a = inWasm ? k.f32(k.scratchAlloc(n * 4), n) : new Float32Array(n);
    if (typeof src !== "number") a.set(src);
    return a;
  };
  try {
    const xs = f32(x),
      ws = f32(w),
      gs = f32(g),
      bs = bias === null ? null : f32(bias);
    const y = f32(d.n * d.cout * d.oh * d.ow).fill(Number.NaN),
      dx = f32(x.length).fill(Number.NaN),
      dw = f32(w.length).fill(Number.NaN);
    convForward(xs, ws, bs, y, d);
    convInputGrad(gs, ws, dx, d);
    convWeightGrad(gs, xs, dw, d);
    expect(inWasm ? [y, dx, dw].every((a) => k.contains(a)) : true).toBe(true);
    return { y: Float64Array.from(y), dx: Float64Array.from(dx), dw: Float64Array.from(dw) };
  } finally {
    k.scratchReset(mark);
  }
}

function expectClose(actual: Float64Array, expected: Float64Array, what: string): void {
  expect(actual.length, what).toBe(expected.length);
  let worst = 0,
    scale = 1;
  for (let i = 0; i < actual.length; i++) {
    worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
    scale = Math.max(scale, Math.abs(expected[i]!));
  }
  expect(worst / scale, what).toBeLessThan(2e-5);
}

const CASES: [string, ConvDims][] = [
  ["W6's second layer shape, one sample", dimsOf([1, 32, 14, 14], [64, 3, 3], [1, 1], [1, 1], [1, 1], 1)],
  ["one input channel, odd width", dimsOf([3, 1, 7, 9], [5, 3, 3], [1, 1], [1, 1], [1, 1], 1)],
  ["stride 2, padding 2, odd sizes", dimsOf([2, 3, 11, 13], [6, 3, 5], [2, 2], [2, 2], [1, 1], 1)],
  ["unequal stride and dilation", dimsOf([1, 2, 9, 10], [3, 2, 3], [2, 3], [2, 1], [3, 2], 1)],
  ["groups 2", dimsOf([2, 4, 6, 7], [6, 3, 3], [1, 1], [1, 0], [1, 1], 2)],
  ["depthwise, stride 2", dimsOf([2, 3, 8, 5], [3, 2, 2], [2, 1], [0, 1], [1, 2], 3)],
  ["1x1 kernel, wide rows (vector and tail lanes)", dimsOf([2, 5, 3, 37], [7, 1, 1], [1, 1], [0, 0], [1, 1], 1)],
  ["padding wider than the input", dimsOf([1, 2, 2, 3], [2, 3, 3], [1, 1], [3, 3], [1, 1], 1)],
];

describe("convolution kernels against their nested-loop definition", () => {
  const backend = getKernelBackend();
  afterEach(() => setKernelBackend(backend));

  for (const [name, d] of CASES) {
    test(`${name}: SIMD in place, SIMD copied, JavaScript and float64 agree`, () => {
      const x = randomArray(d.n * d.c * d.h * d.w),
        w = randomArray(d.cout * (d.c / d.groups) * d.kh * d.kw),
        g = randomArray(d.n * d.cout * d.oh * d.ow),
        bias = randomArray(d.cout);
      const ref = reference(d, x, w, g, bias);
      setKernelBackend("wasm");
      const simd = run(d, x, w, g, bias, true);
      const copied = run(d, x, w, g, bias, false);
      setKernelBackend("js");
      const js = run(d, x, w, g, bias, false);
      for (const key of ["y", "dx", "dw"] as const) {
        expectClose(simd[key], ref[key], `SIMD ${key}`);
        expectClose(js[key], ref[key], `JavaScript ${key}`);
        expect(Array.from(copied[key]), `copied ${key}`).toEqual(Array.from(simd[key]));
      }
      // float64 runs the JavaScript kernels, unrounded: the definition to float64 rounding.
      const y64 = new Float64Array(ref.y.length),
        dx64 = new Float64Array(x.length),
        dw64 = new Float64Array(w.length);
      convForward(x, w, bias, y64, d);
      convInputGrad(g, w, dx64, d);
      convWeightGrad(g, x, dw64, d);
      for (const [a, b] of [
        [y64, ref.y],
        [dx64, ref.dx],
        [dw64, ref.dw],
      ] as const) {
        for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!)).toBeLessThan(1e-12);
      }
    });
  }

  test("results below FLT_MIN are stored as +0 by both backends; float64 keeps them", () => {
    const d = dimsOf([1, 1, 3, 5], [1, 1, 1], [1, 1], [0, 0], [1, 1], 1);
    const x = Float64Array.from({ length: 15 }, (_, i) => (i % 2 === 0 ? 1e-20 : -1)),
      w = Float64Array.of(1e-20),
      g = Float64Array.from({ length: 15 }, () => 1e-20),
      bias = Float64Array.of(0);
    for (const b of ["wasm", "js"] as const) {
      setKernelBackend(b);
      const out = run(d, x, w, g, bias, b === "wasm");
      // x·w = 1e-40 and -1e-20 (normal); dx = g·w = 1e-40 everywhere; dw = Σ g·x keeps normal values
      expect(Array.from(out.y.filter((_, i) => i % 2 === 0)), b).toEqual(Array(8).fill(0));
      expect(
        out.y.filter((_, i) => i % 2 === 1).every((v) => Math.abs(v + 1e-20) < 1e-26),
        b,
      ).toBe(true);
      expect(
        out.dx.every((v) => Object.is(v, 0)),
        b,
      ).toBe(true);
    }
    const y64 = new Float64Array(15);
    convForward(x, w, bias, y64, d);
    expect(y64[0]).toBeCloseTo(1e-40, 50);
  });
});

// Stride 1, dilation 1, one group, padding below the kernel size and C_in·kh·kw <= 144: the SIMD
// side runs its direct kernels (assembly/conv.ts) instead of im2col + matmul; the input gradient
// only for C_in·kh·kw <= 25 or C_in a multiple of 4 (the last flag).
const DIRECT_CASES: [string, ConvDims, boolean, boolean][] = [
  ["W6's first layer shape, batch 3", dimsOf([3, 1, 28, 28], [32, 3, 3], [1, 1], [1, 1], [1, 1], 1), true, true],
  [
    "a 5×7 image, one sample, 3 channels, no bias",
    dimsOf([1, 3, 5, 7], [6, 3, 3], [1, 1], [1, 1], [1, 1], 1),
    false,
    false,
  ],
  // C_out a multiple of 4: the forward stores rows in place, each row's last tile running past it
  ["a 5×7 image, batch 3, 8 outputs", dimsOf([3, 1, 5, 7], [8, 3, 3], [1, 1], [1, 1], [1, 1], 1), true, true],
  ["a 6×13 image, 4 outputs, no bias", dimsOf([1, 2, 6, 13], [4, 3, 3], [1, 1], [1, 1], [1, 1], 1), false, true],
  ["5×5 kernel, padding 2, batch 3", dimsOf([3, 1, 9, 7], [5, 5, 5], [1, 1], [2, 2], [1, 1], 1), true, true],
  ["3 channels, 5×5 kernel, no padding", dimsOf([1, 3, 11, 6], [7, 5, 5], [1, 1], [0, 0], [1, 1], 1), false, false],
  ["3×5 kernel, unequal padding, 2 channels", dimsOf([3, 2, 6, 9], [9, 3, 5], [1, 1], [0, 2], [1, 1], 1), true, false],
  [
    "4 channels (input grad by the flipped kernel), 5×7",
    dimsOf([3, 4, 5, 7], [3, 3, 3], [1, 1], [1, 1], [1, 1], 1),
    true,
    true,
  ],
  ["C_in·kh·kw = 144, the largest direct K", dimsOf([1, 16, 5, 7], [5, 3, 3], [1, 1], [1, 1], [1, 1], 1), false, true],
];

// Just outside that rule: im2col + matmul as before.
const GENERIC_CASES: [string, ConvDims][] = [
  ["C_in·kh·kw = 153", dimsOf([1, 17, 5, 7], [4, 3, 3], [1, 1], [1, 1], [1, 1], 1)],
  ["stride 2", dimsOf([2, 1, 7, 9], [4, 3, 3], [2, 1], [1, 1], [1, 1], 1)],
  ["dilation 2", dimsOf([2, 1, 7, 9], [4, 3, 3], [1, 1], [1, 1], [1, 2], 1)],
  ["padding as wide as the kernel", dimsOf([1, 1, 5, 7], [3, 3, 3], [1, 1], [3, 1], [1, 1], 1)],
  ["2 groups", dimsOf([2, 2, 5, 7], [4, 3, 3], [1, 1], [1, 1], [1, 1], 2)],
];

// d with zero input channels added (zero weights for them) until C_in·kh·kw passes the direct
// rule: the same convolution, by im2col + matmul. x's and w's values are moved over.
function widened(d: ConvDims, x: Float64Array, w: Float64Array) {
  const c = Math.floor(144 / (d.kh * d.kw)) + 1;
  const wide: ConvDims = { ...d, c };
  const p = d.h * d.w,
    khw = d.kh * d.kw;
  const xw = new Float64Array(d.n * c * p),
    ww = new Float64Array(d.cout * c * khw);
  for (let b = 0; b < d.n; b++) xw.set(x.subarray(b * d.c * p, (b + 1) * d.c * p), b * c * p);
  for (let o = 0; o < d.cout; o++) ww.set(w.subarray(o * d.c * khw, (o + 1) * d.c * khw), o * c * khw);
  // dx and dw of the widened convolution, cut back to d's channels
  const narrow = (dx: Float64Array, dw: Float64Array) => ({
    dx: Float64Array.from({ length: x.length }, (_, i) => dx[Math.floor(i / (d.c * p)) * c * p + (i % (d.c * p))]!),
    dw: Float64Array.from(
      { length: w.length },
      (_, i) => dw[Math.floor(i / (d.c * khw)) * c * khw + (i % (d.c * khw))]!,
    ),
  });
  return { wide, xw, ww, narrow };
}

describe("direct small-K convolution kernels", () => {
  const backend = getKernelBackend();
  afterEach(() => setKernelBackend(backend));

  for (const [name, d, withBias, inputGrad] of DIRECT_CASES) {
    test(`${name}: direct SIMD agrees with im2col + matmul, JavaScript and float64`, () => {
      setKernelBackend("wasm");
      expect(convUsesDirectKernels(d)).toEqual({ forward: true, inputGrad, weightGrad: true });
      const x = randomArray(d.n * d.c * d.h * d.w),
        w = randomArray(d.cout * d.c * d.kh * d.kw),
        g = randomArray(d.n * d.cout * d.oh * d.ow),
        bias = withBias ? randomArray(d.cout) : null;
      const ref = reference(d, x, w, g, bias);
      const direct = run(d, x, w, g, bias, true);
      const copied = run(d, x, w, g, bias, false);
      const { wide, xw, ww, narrow } = widened(d, x, w);
      expect(convUsesDirectKernels(wide)).toEqual({ forward: false, inputGrad: false, weightGrad: false });
      const viaGemm = run(wide, xw, ww, g, bias, true);
      const gemm = { y: viaGemm.y, ...narrow(viaGemm.dx, viaGemm.dw) };
      setKernelBackend("js");
      const js = run(d, x, w, g, bias, false);
      for (const key of ["y", "dx", "dw"] as const) {
        expectClose(direct[key], ref[key], `direct ${key}`);
        expectClose(direct[key], gemm[key], `direct against im2col + matmul, ${key}`);
        expectClose(gemm[key], ref[key], `im2col + matmul ${key}`);
        expectClose(js[key], ref[key], `JavaScript ${key}`);
        expect(Array.from(copied[key]), `copied ${key}`).toEqual(Array.from(direct[key]));
      }
    });
  }

  for (const [name, d] of GENERIC_CASES) {
    test(`${name}: im2col + matmul, agreeing with float64`, () => {
      setKernelBackend("wasm");
      expect(convUsesDirectKernels(d)).toEqual({ forward: false, inputGrad: false, weightGrad: false });
      const x = randomArray(d.n * d.c * d.h * d.w),
        w = randomArray(d.cout * (d.c / d.groups) * d.kh * d.kw),
        g = randomArray(d.n * d.cout * d.oh * d.ow),
        bias = randomArray(d.cout);
      const ref = reference(d, x, w, g, bias);
      const simd = run(d, x, w, g, bias, true);
      for (const key of ["y", "dx", "dw"] as const) expectClose(simd[key], ref[key], `SIMD ${key}`);
    });
  }

  test.each([2, 4])("a NaN in x or g reaches only the y and dx entries whose windows hold it (C_out %i)", (cout) => {
    // the direct kernels also compute (and drop) kw - 1 columns past each row, where x's NaN is read
    setKernelBackend("wasm");
    const d = dimsOf([1, 1, 5, 7], [cout, 3, 3], [1, 1], [1, 1], [1, 1], 1);
    expect(convUsesDirectKernels(d)).toEqual({ forward: true, inputGrad: true, weightGrad: true });
    const x = randomArray(35),
      w = randomArray(9 * cout),
      g = randomArray(35 * cout);
    x[6] = Number.NaN; // row 0, last column
    g[35 + 14] = Number.NaN; // channel 1, row 2, first column
    const out = run(d, x, w, g, null, true);
    const ref = reference(d, x, w, g, null);
    for (const key of ["y", "dx"] as const) {
      const nan = (a: Float64Array) => Array.from(a, (v) => Number.isNaN(v));
      expect(nan(out[key]), key).toEqual(nan(ref[key]));
      expect(nan(ref[key]).filter(Boolean).length, key).toBeGreaterThan(0);
      const finite = (a: Float64Array) => a.map((v) => (Number.isNaN(v) ? 0 : v));
      expectClose(finite(out[key]), finite(ref[key]), key);
    }
  });
});
