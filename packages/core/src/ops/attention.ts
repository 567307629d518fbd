import { noGrad } from "../autograd/grad-mode.js";
import { type FloatArray, isFloat } from "../tensor/dtype.js";
import { broadcastShapes, fmtShape, shapeEq } from "../tensor/shape.js";
import { Tensor } from "../tensor/tensor.js";
import { dropoutMask } from "./dropout.js";
import { mul, to, where } from "./elementwise.js";
import { mm } from "./linalg.js";
import { softmaxRows } from "../kernels/softmax.js";
import { defineOp, record } from "./op.js";
import { softmaxBackward } from "./softmax.js";
import { sumTo } from "./reduce.js";
import { broadcastData, broadcastTo, reshape } from "./shape.js";

// Scaled dot-product attention as two fused ops. attentionProbs computes
//   P = softmax(scale·Q·Kᵀ + bias)                      [..., L, S] from Q [..., L, E], K [..., S, E]
// in one matmul and one pass per row, and scaledDotProductAttention adds O = P·V on top, recorded as
// one node. Both backward passes are written with differentiable ops on P, which is itself the
// output of attentionProbs (a node of q, k and the bias), so gradients of every order work:
//   dV = Pᵀ·dO,  dP = dO·Vᵀ,  dS = P ⊙ (dP − Σ_row dP ⊙ P),  dQ = scale·dS·K,  dK = scale·dSᵀ·Q,
//   dBias = dS summed over the dims the bias was broadcast along.
// A row whose scores are all -inf (every key masked) gives P = 0 and O = 0, as PyTorch's
// scaled_dot_product_attention does (its "safe softmax"); a NaN score gives a NaN row. The softmax
// pass and dS are the SIMD kernels of kernels/softmax.ts when the operands lie in wasm memory.

/** Batched `op(a)·op(b)` over any number of equal leading dims, each slice through the matmul kernel. */
export function bmm(a: Tensor, b: Tensor, transA = false, transB = false): Tensor {
  const batch = a.shape.slice(0, -2);
  const [ar, ac] = a.shape.slice(-2) as [number, number];
  const [br, bc] = b.shape.slice(-2) as [number, number];
  const out = mm(reshape(a, [-1, ar, ac]), reshape(b, [-1, br, bc]), transA, transB);
  return reshape(out, [...batch, out.shape[1]!, out.shape[2]!]);
}

function checkOperands(q: Tensor, k: Tensor, op: string): [number, number, number] {
  if (q.ndim < 2 || k.ndim !== q.ndim || !shapeEq(q.shape.slice(0, -2), k.shape.slice(0, -2))) {
    throw new Error(
      `${op}: expected query [..., L, E] and key [..., S, E] with the same leading dims, ` +
        `got ${fmtShape(q.shape)} and ${fmtShape(k.shape)}`,
    );
  }
  const [l, e] = q.shape.slice(-2) as [number, number];
  const [s, ek] = k.shape.slice(-2) as [number, number];
  if (e !== ek) throw new Error(`${op}: query and key differ in their last dim (${e} vs ${ek})`);
  if (!isFloat(q.dtype) || k.dtype !== q.dtype) {
    throw new Error(`${op}: query and key must share one floating point dtype, got ${q.dtype} and ${k.dtype}`);
  }
  return [l, s, e];
}

/** dQ, dK and dBias from dP, the gradient of P = softmax(scale·Q·Kᵀ + bias); null where not needed. */
function scoresBackward(
  dp: Tensor,
  p: Tensor,
  q: Tensor,
  k: Tensor,
  bias: Tensor | null,
  scale: number,
  needs: readonly [boolean, boolean, boolean],
): [Tensor | null, Tensor | null, Tensor | null] {
  const ds = softmaxBackward(dp, p, -1);
  const scaled = needs[0] || needs[1] ? mul(ds, scale) : ds;
  return [
    needs[0] ? bmm(scaled, k) : null,
    needs[1] ? bmm(scaled, q, true, false) : null,
    needs[2] && bias !== null ? sumTo(ds, bias.shape) : null,
  ];
}

/**
 * softmax(scale·q·kᵀ + bias) over the last dim: q [..., L, E], k [..., S, E] with the same leading
 * dims, bias (float, same dtype) broadcastable to [..., L, S] or null, keys j > i masked when
 * `isCausal`. Differentiable in q, k and bias to every order.
 */
export const attentionProbs = defineOp(
  "attentionProbs",
  (q: Tensor, k: Tensor, bias: Tensor | null, scale: number, isCausal = false): Tensor => {
    const [l, s] = checkOperands(q, k, "attentionProbs");
    const shape = [...q.shape.slice(0, -1), s];
    if (bias !== null) {
      if (bias.dtype !== q.dtype) {
        throw new Error(`attentionProbs: bias must have the query's dtype ${q.dtype}, got ${bias.dtype}`);
      }
      if (!shapeEq(broadcastShapes(bias.shape, shape, "attentionProbs"), shape)) {
        throw new Error(
          `attentionProbs: bias of shape ${fmtShape(bias.shape)} does not broadcast to ${fmtShape(shape)}`,
        );
      }
    }
    const scores = noGrad(() => bmm(q, k, false, true));
    const biasData = bias === null ? null : (broadcastData(bias, shape) as FloatArray);
    const rows = scores.numel / Math.max(s, 1);
    softmaxRows(scores.data as FloatArray, biasData, rows, l, s, scale, isCausal);
    const p = new Tensor(scores.data, shape);
    const inputs = bias === null ? [q, k] : [q, k, bias];
    return record(
      p,
      "attentionProbs",
      inputs,
      (g, needs) =>
        scoresBackward(g, p, q, k, bias, scale, [needs[0]!, needs[1]!, needs[2] ?? false]).slice(0, inputs.length),
      [...inputs, p],
    );
  },
);

/** The output of attention and the probabilities it used (after dropout), both in the graph. */
export interface AttentionResult {
  output: Tensor;
  weights: Tensor;
}

/**
 * attentionProbs(q, k, bias, scale, isCausal) times `dropMask` (or not), then times v, recorded as
 * one node whose backward is written with ops. Operands as attentionProbs; v is [..., S, Ev].
 */
export function attend(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  bias: Tensor | null,
  scale: number,
  isCausal: boolean,
  dropMask: Tensor | null,
): AttentionResult {
  const [, s] = checkOperands(q, k, "scaledDotProductAttention");
  if (v.ndim !== q.ndim || !shapeEq(v.shape.slice(0, -2), q.shape.slice(0, -2)) || v.shape[v.ndim - 2] !== s) {
    throw new Error(
      `scaledDotProductAttention: expected value [..., S, Ev] with S = ${s} and the query's leading dims, ` +
        `got ${fmtShape(v.shape)} for key ${fmtShape(k.shape)}`,
    );
  }
  if (v.dtype !== q.dtype)
    throw new Error(`scaledDotProductAttention: value is ${v.dtype} but query and key are ${q.dtype}`);
  const p = attentionProbs(q, k, bias, scale, isCausal);
  const weights = dropMask === null ? p : mul(p, dropMask);
  const out = noGrad(() => bmm(weights, v));
  const inputs = bias === null ? [q, k, v] : [q, k, v, bias];
  const output = record(
    out,
    "scaledDotProductAttention",
    inputs,
    (g, needs) => {
      const dv = needs[2] ? bmm(weights, g, true, false) : null;
      const qkb: [boolean, boolean, boolean] = [needs[0]!, needs[1]!, needs[3] ?? false];
      if (!qkb.some(Boolean)) return [null, null, dv, null].slice(0, inputs.length);
      let dp = bmm(g, v, false, true);
      if (dropMask !== null) dp = mul(dp, dropMask);
      const [dq, dk, db] = scoresBackward(dp, p, q, k, bias, scale, qkb);
      return [dq, dk, dv, db].slice(0, inputs.length);
    },
    // P and the weights too: a caller changing the returned weights in place is caught at backward.
    [...inputs, p, weights],
  );
  return { output, weights };
}

/** Options of scaledDotProductAttention, as PyTorch's. */
export interface AttentionOptions {
  /**
   * Broadcastable to [..., L, S]. Boolean: true marks the pairs that take part (PyTorch's SDPA
   * convention); float: added to the scaled scores (-Infinity masks, any value biases).
   */
  attnMask?: Tensor | null;
  /** Query i sees keys j <= i only (the top-left aligned lower triangle). */
  isCausal?: boolean;
  /** Multiplies q·kᵀ; 1/√E by default. */
  scale?: number | null;
  /** Dropout probability on the attention probabilities, applied whenever > 0 (as in PyTorch). */
  dropoutP?: number;
}

/** Turns a boolean (true = attend) or float mask into an additive bias of `dtype`. */
export function maskToBias(mask: Tensor, dtype: "float32" | "float64", op: string): Tensor {
  if (mask.dtype === "bool") return where(mask, 0, -Infinity).to(dtype);
  if (!isFloat(mask.dtype)) throw new Error(`${op}: attnMask must be bool or floating point, got ${mask.dtype}`);
  return mask.dtype === dtype ? mask : to(mask, dtype);
}

/** Validates the operands and options of scaledDotProductAttention and broadcasts the leading dims. */
export function attentionInputs(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: AttentionOptions,
): { q: Tensor; k: Tensor; v: Tensor; bias: Tensor | null; scale: number; dropMask: Tensor | null } {
  const op = "scaledDotProductAttention";
  if (q.ndim < 2 || k.ndim < 2 || v.ndim < 2) {
    throw new Error(
      `${op}: query, key and value need at least 2 dims ([..., L, E]), ` +
        `got ${fmtShape(q.shape)}, ${fmtShape(k.shape)}, ${fmtShape(v.shape)}`,
    );
  }
  if (!isFloat(q.dtype) || k.dtype !== q.dtype || v.dtype !== q.dtype) {
    throw new Error(
      `${op}: query, key and value must share one floating point dtype, got ${q.dtype}, ${k.dtype}, ${v.dtype}`,
    );
  }
  const dtype = q.dtype as "float32" | "float64";
  let batch = broadcastShapes(q.shape.slice(0, -2), k.shape.slice(0, -2), op);
  batch = broadcastShapes(batch, v.shape.slice(0, -2), op);
  const lift = (t: Tensor) => broadcastTo(t, [...batch, ...t.shape.slice(-2)]);
  const [qb, kb, vb] = [lift(q), lift(k), lift(v)];
  const l = q.shape[q.ndim - 2]!,
    e = q.shape[q.ndim - 1]!,
    s = k.shape[k.ndim - 2]!;
  const { attnMask = null, isCausal = false, scale = null, dropoutP = 0 } = opts;
  if (attnMask !== null && isCausal) {
    throw new Error(`${op}: pass either attnMask or isCausal, not both (isCausal stands for the causal mask)`);
  }
  if (scale !== null && !Number.isFinite(scale)) throw new Error(`${op}: scale must be a finite number, got ${scale}`);
  if (!(dropoutP >= 0 && dropoutP <= 1)) throw new Error(`${op}: dropoutP must be in [0, 1], got ${dropoutP}`);
  let bias: Tensor | null = null;
  if (attnMask !== null) {
    const target = [...batch, l, s];
    const fits =
      attnMask.ndim <= target.length &&
      attnMask.shape.every((d, i) => {
        const t = target[target.length - attnMask.ndim + i]!;
        return d === t || d === 1;
      });
    if (!fits)
      throw new Error(`${op}: attnMask of shape ${fmtShape(attnMask.shape)} does not broadcast to ${fmtShape(target)}`);
    bias = maskToBias(attnMask, dtype, op);
  }
  const dropMask = dropoutP > 0 ? dropoutMask([...batch, l, s], dtype, dropoutP) : null;
  return { q: qb, k: kb, v: vb, bias, scale: scale ?? 1 / Math.sqrt(e), dropMask };
}

/**
 * PyTorch's scaled_dot_product_attention: softmax(q·kᵀ·scale + mask)·v for q [..., L, E],
 * k [..., S, E], v [..., S, Ev] (leading dims broadcast), as one fused op with gradients of every
 * order. A query whose keys are all masked gets a zero output row.
 * ```ts
 * const out = F.scaledDotProductAttention(q, k, v, { isCausal: true }); // [..., L, Ev]
 * ```
 */
export const scaledDotProductAttention = defineOp(
  "scaledDotProductAttention",
  (q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor => {
    const a = attentionInputs(q, k, v, opts);
    return attend(a.q, a.k, a.v, a.bias, a.scale, opts.isCausal ?? false, a.dropMask).output;
  },
);
