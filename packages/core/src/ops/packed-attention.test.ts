import { describe, expect, it } from "vitest";
import { grad } from "../autograd/engine.js";
import { setDefaultWasmKernels } from "../kernels/wasm/matmul-kernel.js";
import { runInStepRegion } from "../kernels/wasm/step-region.js";
import { createWasmKernels } from "../kernels/wasm/wasm-kernels.js";
import { tensor } from "../tensor/creation.js";
import type { Tensor } from "../tensor/tensor.js";
import { scaledDotProductAttention } from "./attention.js";
import { mul } from "./elementwise.js";
import { packedSelfAttention } from "./packed-attention.js";
import { sum } from "./reduce.js";
import { permute, reshape } from "./shape.js";
import { chunk } from "./split.js";

// packedSelfAttention against its definition (chunk, split heads, scaled dot-product attention,
// merge). Float64 gradients of every order are checked against finite differences by the generic
// walk in ops.test.ts; here the float32 path on the SIMD kernels, taken for operands in this
// thread's wasm memory, must give the definition's bits in the forward and in backward.
const k = createWasmKernels({ heapBytes: 4 << 20, scratchBytes: 32 << 20 });
setDefaultWasmKernels(k);

function definition(qkv: Tensor, heads: number, isCausal: boolean): Tensor {
  const [n, t, d3] = qkv.shape as [number, number, number];
  const d = d3 / 3;
  const split = (z: Tensor) => permute(reshape(z, [n, t, heads, d / heads]), [0, 2, 1, 3]);
  const [q, kk, v] = chunk(qkv, 3, -1) as [Tensor, Tensor, Tensor];
  const a = scaledDotProductAttention(split(q), split(kk), split(v), { isCausal });
  return reshape(permute(a, [0, 2, 1, 3]), [n, t, d]);
}

const wave = (n: number, f: number, amp: number) =>
  Float32Array.from({ length: n }, (_, i) => amp * Math.sin(f * i + 0.3));
const bits = (t: Tensor) => Array.from(new Uint32Array(Float32Array.from(t.data as Float32Array).buffer));

// [n, t, dim, heads, isCausal]; every qkv, output and gradient at least 1 KiB, so the step region holds them
const CASES = [
  [2, 9, 24, 2, false],
  [1, 33, 40, 5, true],
  [2, 16, 32, 4, true],
] as const;

describe("packedSelfAttention", () => {
  it.each(CASES)(
    "float32 in wasm memory gives the definition's bits, forward and backward (%i×%i×%i, %i heads)",
    (n, t, d, heads, isCausal) => {
      const data = wave(n * t * 3 * d, 1.7, 2);
      const dout = tensor(wave(n * t * d, 0.3, 1), { shape: [n, t, d] });
      const run = (f: typeof definition) =>
        runInStepRegion(k, () => {
          const buf = k.allocF32(data.length);
          buf.set(data);
          const qkv = tensor(buf, { shape: [n, t, 3 * d], requiresGrad: true });
          const out = f(qkv, heads, isCausal);
          const [dqkv] = grad(out, [qkv], { gradOutputs: [dout] });
          return { op: out.gradFn?.name, out: bits(out), dqkv: bits(dqkv!) };
        });
      const fused = run((qkv, h, c) => packedSelfAttention(qkv, h, { isCausal: c }));
      const defined = run(definition);
      expect(fused.op).toBe("packedSelfAttention"); // the SIMD path ran (the definition ends in a reshape)
      expect(fused.out).toEqual(defined.out);
      expect(fused.dqkv).toEqual(defined.dqkv);
    },
  );

  it("second-order gradients through the SIMD path equal the definition's", () => {
    const [n, t, d, heads] = [2, 16, 32, 4];
    const data = wave(n * t * 3 * d, 0.9, 1.5);
    const w = tensor(wave(n * t * d, 0.41, 1), { shape: [n, t, d] });
    const run = (f: typeof definition) =>
      runInStepRegion(k, () => {
        const buf = k.allocF32(data.length);
        buf.set(data);
        const qkv = tensor(buf, { shape: [n, t, 3 * d], requiresGrad: true });
        const [g1] = grad(sum(mul(f(qkv, heads, true), w)), [qkv], { createGraph: true });
        const [g2] = grad(sum(mul(g1!, g1!)), [qkv]);
        return Array.from(g2!.data as Float32Array);
      });
    const fused = run((qkv, h, c) => packedSelfAttention(qkv, h, { isCausal: c }));
    const defined = run(definition);
    const scale = Math.max(...defined.map(Math.abs));
    expect(scale).toBeGreaterThan(0);
    fused.forEach((v, i) => {
      expect(Math.abs(v - defined[i]!)).toBeLessThanOrEqual(scale * 1e-5);
    });
  });

  it("float32 outside wasm memory and float64 compute by the definition", () => {
    const data = wave(2 * 5 * 18, 1.1, 1);
    const f32 = tensor(data, { shape: [2, 5, 18] });
    expect(bits(packedSelfAttention(f32, 3, { isCausal: true }))).toEqual(bits(definition(f32, 3, true)));
    const f64 = tensor(Float64Array.from(data), { shape: [2, 5, 18] });
    expect(Array.from(packedSelfAttention(f64, 3).data)).toEqual(Array.from(definition(f64, 3, false).data));
  });

  it("refuses a qkv that is not [N, T, 3·heads·E] floats, and a non-finite scale", () => {
    expect(() => packedSelfAttention(tensor(new Float32Array(12), { shape: [2, 6] }), 1)).toThrow(
      /packedSelfAttention: expected floating point qkv \[N, T, 3·dim\], got float32 \[2, 6\]/,
    );
    expect(() => packedSelfAttention(tensor(new Float32Array(24), { shape: [1, 2, 12] }), 3)).toThrow(
      /packedSelfAttention: the last dim of qkv \(12\) must be 3 × heads × head size, got heads 3/,
    );
    expect(() =>
      packedSelfAttention(tensor(new Float32Array(24), { shape: [1, 2, 12] }), 2, { scale: Number.NaN }),
    ).toThrow(/packedSelfAttention: scale must be a finite number, got NaN/);
  });
});
