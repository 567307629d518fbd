import { isGradEnabled } from "../autograd/grad-mode.js";
import { wasmServes } from "../kernels/dispatch.js";
import { currentWasmKernels } from "../kernels/wasm/matmul-kernel.js";
import type { WasmKernels } from "../kernels/wasm/wasm-kernels.js";
import { arrayFor, isFloat } from "../tensor/dtype.js";
import { fmtShape } from "../tensor/shape.js";
import { Tensor } from "../tensor/tensor.js";
import { attentionProbs, bmm, scaledDotProductAttention } from "./attention.js";
import { mul } from "./elementwise.js";
import { defineOp, record } from "./op.js";
import { cat, permute, reshape } from "./shape.js";
import { softmaxBackward } from "./softmax.js";
import { chunk } from "./split.js";

// Multi-head self-attention on the packed projection a transformer's in_proj gives: qkv [N, T, 3·d]
// holds query, key and value side by side, each d = heads·E wide with head h in columns h·E..h·E+E-1.
// The op is exactly
//   q, k, v = chunk(qkv, 3, -1);  split(z) = permute(reshape(z, [N, T, H, E]), [0, 2, 1, 3])
//   out = reshape(permute(scaledDotProductAttention(split(q), split(k), split(v)), [0, 2, 1, 3]), [N, T, d])
// and computes that way for float64 and for operands outside this thread's wasm memory. Inside it
// (the trainer's step region), float32 takes one path without the copies of chunk, split and merge:
// each head's Q, K and V are read in place from qkv by the strided SIMD matmul (row stride 3·d), and
// its output is written into its columns of out (row stride d). Backward likewise writes dQ, dK and
// dV straight into their columns of dqkv. Each product, the softmax and its backward run the same
// kernels on the same values as the composition, so both paths give the same bits.
// Gradients of every order: the first-order backward is the fused kernels only when no graph is
// being built; with createGraph it is the same formula written with differentiable ops (probs as an
// attentionProbs node of qkv):  dV = Pᵀ·dO,  dS = softmaxBackward(dO·Vᵀ, P)·scale,  dQ = dS·K,  dK = dSᵀ·Q.

/** Options of packedSelfAttention, as scaledDotProductAttention's. */
export interface PackedAttentionOptions {
  /** Query i sees keys j <= i only. */
  isCausal?: boolean;
  /** Multiplies q·kᵀ; 1/√E by default. */
  scale?: number | null;
}

interface Geometry {
  n: number;
  t: number;
  d: number;
  heads: number;
  e: number;
  scale: number;
  isCausal: boolean;
}

function geometryOf(qkv: Tensor, heads: number, opts: PackedAttentionOptions): Geometry {
  const op = "packedSelfAttention";
  if (qkv.ndim !== 3 || !isFloat(qkv.dtype)) {
    throw new Error(`${op}: expected floating point qkv [N, T, 3·dim], got ${qkv.dtype} ${fmtShape(qkv.shape)}`);
  }
  const [n, t, d3] = qkv.shape as [number, number, number];
  if (!Number.isInteger(heads) || heads < 1 || d3 % (3 * heads) !== 0) {
    throw new Error(`${op}: the last dim of qkv (${d3}) must be 3 × heads × head size, got heads ${heads}`);
  }
  const { isCausal = false, scale = null } = opts;
  if (scale !== null && !Number.isFinite(scale)) throw new Error(`${op}: scale must be a finite number, got ${scale}`);
  const d = d3 / 3;
  const e = d / heads;
  return { n, t, d, heads, e, scale: scale ?? 1 / Math.sqrt(e), isCausal };
}

// [N, T, d] ↔ [N, H, T, E]
const split = (z: Tensor, g: Geometry) => permute(reshape(z, [g.n, g.t, g.heads, g.e]), [0, 2, 1, 3]);
const merge = (z: Tensor, g: Geometry) => reshape(permute(z, [0, 2, 1, 3]), [g.n, g.t, g.d]);

/** The op as its definition composes it (float64, operands outside wasm memory). */
function composed(qkv: Tensor, g: Geometry): Tensor {
  const [q, k, v] = chunk(qkv, 3, -1) as [Tensor, Tensor, Tensor];
  const a = scaledDotProductAttention(split(q, g), split(k, g), split(v, g), { isCausal: g.isCausal, scale: g.scale });
  return merge(a, g);
}

/** dqkv from dO as differentiable ops (the backward while a graph is built, and outside wasm memory). */
function composedBackward(dout: Tensor, qkv: Tensor, g: Geometry): Tensor {
  const [q, k, v] = (chunk(qkv, 3, -1) as [Tensor, Tensor, Tensor]).map((z) => split(z, g)) as [Tensor, Tensor, Tensor];
  const gh = split(dout, g);
  const p = attentionProbs(q, k, null, g.scale, g.isCausal);
  const dv = bmm(p, gh, true, false);
  const ds = mul(softmaxBackward(bmm(gh, v, false, true), p, -1), g.scale);
  return cat([merge(bmm(ds, k), g), merge(bmm(ds, q, true, false), g), merge(dv, g)], -1);
}

/** This thread's kernels when float32 runs in wasm and every array lies in their memory, else null. */
function kernelsFor(arrays: readonly Tensor["data"][]): WasmKernels | null {
  if (!wasmServes("float32")) return null;
  const k = currentWasmKernels();
  if (k === undefined) return null;
  for (const a of arrays) if (!(a instanceof Float32Array) || !k.contains(a)) return null;
  return k;
}

/** Runs `fn` with this call's matmul packing scratch (and 16 spare bytes at `spare`), released after. */
function withScratch(k: WasmKernels, g: Geometry, fn: (pack: number, spare: number) => void): boolean {
  const x = k.exports;
  const packBytes = Math.max(x.matmulPackBytes(g.t, g.e, g.t), x.matmulPackBytes(g.t, g.t, g.e));
  const softmaxBytes = Math.max(g.t, 2) * 8;
  if (packBytes + softmaxBytes + 256 > k.scratchFree()) return false;
  const mark = k.scratchMark();
  try {
    fn(k.scratchAlloc(packBytes, 64), k.scratchAlloc(softmaxBytes, 16));
  } finally {
    k.scratchReset(mark);
  }
  return true;
}

// Byte offsets of head h of sample s: its query columns in qkv (key: + d floats, value: + 2·d), its
// columns in an [N, T, d] array, its [T, T] block of probabilities.
const qkvAt = (base: number, s: number, h: number, g: Geometry) => base + ((s * g.t * 3 + 0) * g.d + h * g.e) * 4;
const rowsAt = (base: number, s: number, h: number, g: Geometry) => base + (s * g.t * g.d + h * g.e) * 4;
const blockAt = (base: number, s: number, h: number, g: Geometry) => base + (s * g.heads + h) * g.t * g.t * 4;

/** Forward in place: probs [N, H, T, T] and out [N, T, d]; false when scratch is short. */
function forwardKernels(k: WasmKernels, qkv: Float32Array, probs: Float32Array, out: Float32Array, g: Geometry) {
  const x = k.exports;
  const { t, d, e } = g;
  return withScratch(k, g, (pack, softmaxScratch) => {
    for (let s = 0; s < g.n; s++) {
      for (let h = 0; h < g.heads; h++) {
        const q = qkvAt(qkv.byteOffset, s, h, g);
        k.matmulStrided(q, q + d * 4, blockAt(probs.byteOffset, s, h, g), t, e, t, 0, 1, 3 * d, 3 * d, t, pack);
      }
    }
    const rows = g.n * g.heads * t;
    x.softmaxRows(probs.byteOffset, 0, probs.byteOffset, softmaxScratch, rows, t, t, g.scale, g.isCausal ? 1 : 0);
    for (let s = 0; s < g.n; s++) {
      for (let h = 0; h < g.heads; h++) {
        const v = qkvAt(qkv.byteOffset, s, h, g) + 2 * d * 4;
        const o = rowsAt(out.byteOffset, s, h, g);
        k.matmulStrided(blockAt(probs.byteOffset, s, h, g), v, o, t, t, e, 0, 0, t, 3 * d, d, pack);
      }
    }
  });
}

/** dqkv [N, T, 3·d] from dO and probs; dp is [N, H, T, T] of scratch; false when scratch is short. */
function backwardKernels(
  k: WasmKernels,
  dout: Float32Array,
  qkv: Float32Array,
  probs: Float32Array,
  dp: Float32Array,
  dqkv: Float32Array,
  g: Geometry,
): boolean {
  const x = k.exports;
  const { t, d, e } = g;
  const head = (s: number, h: number) => {
    const q = qkvAt(qkv.byteOffset, s, h, g);
    return {
      q,
      v: q + 2 * d * 4,
      dq: qkvAt(dqkv.byteOffset, s, h, g),
      g: rowsAt(dout.byteOffset, s, h, g),
      p: blockAt(probs.byteOffset, s, h, g),
      dp: blockAt(dp.byteOffset, s, h, g),
    };
  };
  return withScratch(k, g, (pack, spare) => {
    for (let s = 0; s < g.n; s++) {
      for (let h = 0; h < g.heads; h++) {
        const a = head(s, h);
        k.matmulStrided(a.p, a.g, a.dq + 2 * d * 4, t, t, e, 1, 0, t, d, 3 * d, pack); // dV = Pᵀ·dO
        k.matmulStrided(a.g, a.v, a.dp, t, e, t, 0, 1, d, 3 * d, t, pack); // dP = dO·Vᵀ
      }
    }
    const rows = g.n * g.heads * t;
    x.softmaxBackward(dp.byteOffset, probs.byteOffset, dp.byteOffset, rows, t);
    // dS·scale as the op mul(ds, scale) rounds it: scale as a float32 scalar, flushed.
    k.f32(spare, 1)[0] = g.scale;
    x.binaryF32(2, dp.byteOffset, 0, spare, 2, dp.byteOffset, rows, t);
    for (let s = 0; s < g.n; s++) {
      for (let h = 0; h < g.heads; h++) {
        const a = head(s, h);
        k.matmulStrided(a.dp, a.q + d * 4, a.dq, t, t, e, 0, 0, t, 3 * d, 3 * d, pack); // dQ = dS·K
        k.matmulStrided(a.dp, a.q, a.dq + d * 4, t, t, e, 1, 0, t, 3 * d, 3 * d, pack); // dK = dSᵀ·Q
      }
    }
  });
}

function backward(dout: Tensor, qkv: Tensor, probs: Tensor, g: Geometry): Tensor {
  if (!isGradEnabled() && dout.dtype === "float32") {
    const dqkv = arrayFor("float32", qkv.numel, false);
    const dp = arrayFor("float32", probs.numel, false);
    const k = kernelsFor([dout.data, qkv.data, probs.data, dqkv, dp]);
    if (
      k !== null &&
      backwardKernels(
        k,
        dout.data as Float32Array,
        qkv.data as Float32Array,
        probs.data as Float32Array,
        dp as Float32Array,
        dqkv as Float32Array,
        g,
      )
    )
      return new Tensor(dqkv, qkv.shape);
  }
  return composedBackward(dout, qkv, g);
}

/**
 * Causal or full multi-head self-attention on a packed projection: qkv [N, T, 3·dim] (query, key
 * and value side by side, `heads` heads each), as torch.nn.MultiheadAttention computes it from
 * in_proj's output, before out_proj: [N, T, dim]. Gradients of every order.
 * ```ts
 * const a = F.packedSelfAttention(F.linear(x, inProjWeight, inProjBias), 4, { isCausal: true }); // [N, T, dim]
 * ```
 */
export const packedSelfAttention = defineOp(
  "packedSelfAttention",
  (qkv: Tensor, heads: number, opts: PackedAttentionOptions = {}): Tensor => {
    const g = geometryOf(qkv, heads, opts);
    if (qkv.dtype !== "float32" || g.t === 0 || g.n === 0) return composed(qkv, g);
    const out = arrayFor("float32", g.n * g.t * g.d, false);
    const probs = arrayFor("float32", g.n * g.heads * g.t * g.t, false);
    const k = kernelsFor([qkv.data, out, probs]);
    if (k === null || !forwardKernels(k, qkv.data as Float32Array, probs as Float32Array, out as Float32Array, g))
      return composed(qkv, g);
    const p = new Tensor(probs, [g.n, g.heads, g.t, g.t]);
    return record(
      new Tensor(out, [g.n, g.t, g.d]),
      "packedSelfAttention",
      [qkv],
      (dout) => [backward(dout, qkv, p, g)],
      [qkv],
    );
  },
);
