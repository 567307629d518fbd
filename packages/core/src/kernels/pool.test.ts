import { afterEach, describe, expect, test } from "vitest";
import { Generator } from "../index.js";
import { getKernelBackend, setKernelBackend } from "./backend.js";
import { type PoolDims, maxPoolIndices, poolGather, poolScatter } from "./pool.js";
import { defaultWasmKernels } from "./wasm/matmul-kernel.js";

const gen = new Generator(8);

function dims(planes: number, h: number, w: number, k: number[], s: number[], p: number[], d: number[], ceil = false) {
  const size = (n: number, i: number) => {
    let out = Math.floor((n + 2 * p[i]! - d[i]! * (k[i]! - 1) - 1 + (ceil ? s[i]! - 1 : 0)) / s[i]!) + 1;
    if (ceil && (out - 1) * s[i]! >= n + p[i]!) out--;
    return out;
  };
  return {
    planes,
    h,
    w,
    kh: k[0]!,
    kw: k[1]!,
    sh: s[0]!,
    sw: s[1]!,
    ph: p[0]!,
    pw: p[1]!,
    dh: d[0]!,
    dw: d[1]!,
    oh: size(h, 0),
    ow: size(w, 1),
  } satisfies PoolDims;
}

// The first maximum of each window in reading order; NaN beats numbers, the first NaN wins.
function referenceIndices(x: Float32Array, d: PoolDims): number[] {
  const out: number[] = [];
  for (let pl = 0; pl < d.planes; pl++)
    for (let oy = 0; oy < d.oh; oy++)
      for (let ox = 0; ox < d.ow; ox++) {
        let at = -1;
        for (let i = 0; i < d.kh; i++)
          for (let j = 0; j < d.kw; j++) {
            const iy = oy * d.sh - d.ph + i * d.dh,
              ix = ox * d.sw - d.pw + j * d.dw;
            if (iy < 0 || iy >= d.h || ix < 0 || ix >= d.w) continue;
            const v = x[pl * d.h * d.w + iy * d.w + ix]!,
              best = at < 0 ? Number.NaN : x[pl * d.h * d.w + at]!;
            if (at < 0 || (Number.isNaN(v) && !Number.isNaN(best)) || v > best) at = iy * d.w + ix;
          }
        out.push(at);
      }
  return out;
}

// Values with many ties (a few levels) and some NaN, so first-maximum order and NaN rules matter.
function input(n: number): Float32Array {
  return Float32Array.from({ length: n }, () => {
    const u = gen.random();
    return u < 0.05 ? Number.NaN : Math.floor(u * 6) - 2;
  });
}

function run(d: PoolDims, x: Float32Array, g: Float32Array, inWasm: boolean) {
  const k = defaultWasmKernels();
  const mark = k.scratchMark();
  const count = d.planes * d.oh * d.ow;
  const place = <T extends Float32Array | Int32Array>(a: T): T => {
    if (!inWasm) return a;
    const view = (
      a instanceof Float32Array
        ? k.f32(k.scratchAlloc(a.byteLength), a.length)
        : new Int32Array(k.buffer, k.scratchAlloc(a.byteLength), a.length)
    ) as T;
    view.set(a as never);
    return view;
  };
  try {
    const index = place(new Int32Array(count).fill(-7));
    const y = place(new Float32Array(count).fill(7)),
      dx = place(new Float32Array(x.length).fill(7));
    maxPoolIndices(place(x), index, d);
    poolGather(place(x), index, y, d.planes, d.h * d.w);
    poolScatter(place(g), index, dx, d.planes, d.h * d.w);
    return { index: Array.from(index), y: Array.from(y), dx: Array.from(dx) };
  } finally {
    k.scratchReset(mark);
  }
}

const CASES: [string, PoolDims][] = [
  ["2x2 stride 2, even sizes (the SIMD path)", dims(3, 8, 16, [2, 2], [2, 2], [0, 0], [1, 1])],
  ["2x2 stride 2, odd width: vector and scalar lanes", dims(2, 7, 13, [2, 2], [2, 2], [0, 0], [1, 1])],
  ["2x2 stride 2, ceil mode", dims(2, 5, 11, [2, 2], [2, 2], [0, 0], [1, 1], true)],
  ["3x3 stride 2 padding 1", dims(2, 9, 10, [3, 3], [2, 2], [1, 1], [1, 1])],
  ["3x2 stride (1, 2) dilation 2", dims(1, 9, 9, [3, 2], [1, 2], [1, 1], [2, 2])],
];

describe("max-pooling kernels against their definition", () => {
  const backend = getKernelBackend();
  afterEach(() => setKernelBackend(backend));

  for (const [name, d] of CASES) {
    test(`${name}: SIMD in place, SIMD copied and JavaScript give the reference`, () => {
      const x = input(d.planes * d.h * d.w);
      const g = Float32Array.from({ length: d.planes * d.oh * d.ow }, () => gen.random() - 0.5);
      const index = referenceIndices(x, d);
      const y = index.map((at, o) => x[Math.floor(o / (d.oh * d.ow)) * d.h * d.w + at]!);
      const dx = new Float32Array(x.length);
      index.forEach((at, o) => {
        const pos = Math.floor(o / (d.oh * d.ow)) * d.h * d.w + at;
        dx[pos] = dx[pos]! + g[o]!;
      });
      for (const [b, inWasm] of [
        ["wasm", true],
        ["wasm", false],
        ["js", false],
      ] as const) {
        setKernelBackend(b);
        const out = run(d, x, g, inWasm);
        expect(out.index, `${b} ${inWasm}`).toEqual(index);
        expect(out.y, `${b} ${inWasm}`).toEqual(y);
        expect(out.dx, `${b} ${inWasm}`).toEqual(Array.from(dx));
      }
    });
  }

  test("scatter sums below FLT_MIN are stored as +0 in both backends", () => {
    const d = dims(1, 2, 2, [1, 1], [1, 1], [0, 0], [1, 1]);
    const index = Int32Array.of(0, 0, 1, 1);
    for (const b of ["wasm", "js"] as const) {
      setKernelBackend(b);
      const dx = new Float32Array(4).fill(7);
      poolScatter(Float32Array.of(1e-20, 1e-20, 2e-38, -1.5e-38), index, dx, d.planes, 4);
      expect(Array.from(dx), b).toEqual([Math.fround(2e-20), 0, 0, 0]);
      expect(Object.is(dx[1], 0), b).toBe(true);
    }
  });
});
