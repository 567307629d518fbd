import { attend } from "../ops/attention.js";
import { dropoutMask } from "../ops/dropout.js";
import { add, relu, where } from "../ops/elementwise.js";
import { gelu } from "../ops/composite.js";
import { mean } from "../ops/reduce.js";
import { permute, reshape, slice, squeeze, transpose, unsqueeze } from "../ops/shape.js";
import { chunk } from "../ops/split.js";
import { isFloat } from "../tensor/dtype.js";
import { fmtShape } from "../tensor/shape.js";
import type { Tensor } from "../tensor/tensor.js";
import * as F from "./functional.js";
import * as init from "./init.js";
import { Dropout, LayerNorm, Linear } from "./layers.js";
import { Module, Parameter } from "./module.js";
import { empty } from "./util.js";

/** Options of MultiheadAttention.forward, as PyTorch's. */
export interface MultiheadAttentionForwardOptions {
  /** [N, S] (or [S] unbatched): bool true marks a key to ignore (padding); float is added. */
  keyPaddingMask?: Tensor | null;
  /** Return the attention weights as well (default true). */
  needWeights?: boolean;
  /** [L, S] or [N·numHeads, L, S]: bool true marks a pair NOT allowed to attend; float is added. */
  attnMask?: Tensor | null;
  /** Average the returned weights over the heads ([N, L, S]) or not ([N, numHeads, L, S]). */
  averageAttnWeights?: boolean;
  /** Query i attends to keys j <= i only; applied together with attnMask when both are given. */
  isCausal?: boolean;
}

/** A mask in MultiheadAttention's convention (bool true = masked out) as an additive float bias. */
function maskBias(mask: Tensor, dtype: "float32" | "float64", what: string): Tensor {
  if (mask.dtype === "bool") return where(mask, -Infinity, 0).to(dtype);
  if (!isFloat(mask.dtype))
    throw new Error(`MultiheadAttention: ${what} must be bool or floating point, got ${mask.dtype}`);
  return mask.to(dtype);
}

/**
 * Multi-head attention with PyTorch's parameters and conventions: `inProjWeight` [3E, E] and
 * `inProjBias` [3E] hold the query, key and value projections stacked (PyTorch's in_proj_weight and
 * in_proj_bias), `outProj` is a Linear(E, E). Inputs are [L, N, E] ([N, L, E] with `batchFirst`)
 * or unbatched [L, E]; forward returns [output, weights] where weights (after dropout, as PyTorch)
 * are averaged over the heads, or null unless `needWeights`. Dropout on the attention weights
 * applies in training mode only.
 * ```ts
 * const mha = new nn.MultiheadAttention(16, 4, { batchFirst: true });
 * const [y, w] = mha.forward(x, x, x); // x [N, L, 16]: y [N, L, 16], w [N, L, L]
 * ```
 */
export class MultiheadAttention extends Module {
  inProjWeight: Tensor;
  inProjBias: Tensor | null;
  outProj: Linear;
  readonly headDim: number;
  readonly batchFirst: boolean;
  readonly dropout: number;

  constructor(
    readonly embedDim: number,
    readonly numHeads: number,
    opts: { batchFirst?: boolean; bias?: boolean; dropout?: number } = {},
  ) {
    super();
    if (!(Number.isInteger(embedDim) && embedDim > 0 && Number.isInteger(numHeads) && numHeads > 0)) {
      throw new Error(
        `MultiheadAttention: embedDim and numHeads must be positive integers, got (${embedDim}, ${numHeads})`,
      );
    }
    if (embedDim % numHeads !== 0) {
      throw new Error(`MultiheadAttention: embedDim must be divisible by numHeads, got ${embedDim} and ${numHeads}`);
    }
    const dropout = opts.dropout ?? 0;
    if (!(dropout >= 0 && dropout <= 1)) {
      throw new Error(`MultiheadAttention: dropout probability has to be between 0 and 1, but got ${dropout}`);
    }
    this.headDim = embedDim / numHeads;
    this.batchFirst = opts.batchFirst ?? false;
    this.dropout = dropout;
    const hasBias = opts.bias ?? true;
    // Draws in PyTorch's order: outProj's weight and bias when it is built, then inProjWeight.
    this.inProjWeight = Parameter(empty([3 * embedDim, embedDim]));
    this.inProjBias = hasBias ? Parameter(init.zeros_(empty([3 * embedDim]))) : null;
    this.outProj = new Linear(embedDim, embedDim, { bias: hasBias });
    init.xavierUniform_(this.inProjWeight);
    if (this.outProj.bias) init.zeros_(this.outProj.bias);
  }

  forward(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    opts: MultiheadAttentionForwardOptions = {},
  ): [Tensor, Tensor | null] {
    const { needWeights = true, averageAttnWeights = true, isCausal = false } = opts;
    const batched = this.checkInputs(query, key, value);
    const toNLE = (t: Tensor) => (!batched ? unsqueeze(t, 0) : this.batchFirst ? t : transpose(t, 0, 1));
    const [q, k, v] = this.project(query, key, value, toNLE);
    const [n, l] = q.shape as [number, number];
    const s = k.shape[1]!;
    const heads = (t: Tensor, len: number) => permute(reshape(t, [n, len, this.numHeads, this.headDim]), [0, 2, 1, 3]);
    const bias = this.bias(opts, batched, n, l, s, q.dtype as "float32" | "float64");
    const p = this.training ? this.dropout : 0;
    const drop = p > 0 ? dropoutMask([n, this.numHeads, l, s], q.dtype as "float32" | "float64", p) : null;
    const a = attend(heads(q, l), heads(k, s), heads(v, s), bias, 1 / Math.sqrt(this.headDim), isCausal, drop);
    const merged = reshape(permute(a.output, [0, 2, 1, 3]), [n, l, this.embedDim]);
    const out = this.outProj.forward(merged);
    const output = !batched ? squeeze(out, 0) : this.batchFirst ? out : transpose(out, 0, 1);
    if (!needWeights) return [output, null];
    const w = averageAttnWeights ? mean(a.weights, 1) : a.weights;
    return [output, batched ? w : squeeze(w, 0)];
  }

  /** Whether the inputs are batched; throws on shapes that do not fit. */
  private checkInputs(query: Tensor, key: Tensor, value: Tensor): boolean {
    const e = this.embedDim;
    const bad = [query, key, value].some((t) => t.ndim !== query.ndim || t.shape[t.ndim - 1] !== e);
    if ((query.ndim !== 2 && query.ndim !== 3) || bad) {
      throw new Error(
        `MultiheadAttention: expected query, key and value of shape [L, N, ${e}] (or [N, L, ${e}] with ` +
          `batchFirst, or unbatched [L, ${e}]), got ${fmtShape(query.shape)}, ${fmtShape(key.shape)}, ` +
          `${fmtShape(value.shape)}`,
      );
    }
    if (key.shape.slice(0, -1).join() !== value.shape.slice(0, -1).join()) {
      throw new Error(
        `MultiheadAttention: key ${fmtShape(key.shape)} and value ${fmtShape(value.shape)} ` +
          "must agree in all but the last dim",
      );
    }
    const batchDim = this.batchFirst ? 0 : 1;
    if (query.ndim === 3 && query.shape[batchDim] !== key.shape[batchDim]) {
      throw new Error(
        `MultiheadAttention: query and key batch sizes differ (${query.shape[batchDim]} vs ${key.shape[batchDim]})`,
      );
    }
    return query.ndim === 3;
  }

  /** The projected query, key and value, each [N, len, E]; one matmul when they are one tensor. */
  private project(query: Tensor, key: Tensor, value: Tensor, toNLE: (t: Tensor) => Tensor): [Tensor, Tensor, Tensor] {
    const e = this.embedDim;
    if (query === key && key === value) {
      const [q, k, v] = chunk(F.linear(toNLE(query), this.inProjWeight, this.inProjBias), 3, -1);
      return [q!, k!, v!];
    }
    const one = (t: Tensor, i: number) => {
      const w = slice(this.inProjWeight, 0, i * e, (i + 1) * e);
      const b = this.inProjBias === null ? null : slice(this.inProjBias, 0, i * e, (i + 1) * e);
      return F.linear(toNLE(t), w, b);
    };
    return [one(query, 0), one(key, 1), one(value, 2)];
  }

  /** attnMask and keyPaddingMask as one additive bias broadcastable to [N, numHeads, L, S]. */
  private bias(
    opts: MultiheadAttentionForwardOptions,
    batched: boolean,
    n: number,
    l: number,
    s: number,
    dtype: "float32" | "float64",
  ): Tensor | null {
    const { attnMask = null, keyPaddingMask = null } = opts;
    let bias: Tensor | null = null;
    if (attnMask !== null) {
      const perHead = batched ? [n * this.numHeads, l, s] : [this.numHeads, l, s];
      const fits = attnMask.shape.join() === `${l},${s}` || attnMask.shape.join() === perHead.join();
      if (!fits) {
        throw new Error(
          `MultiheadAttention: attnMask should have shape ${fmtShape([l, s])} or ${fmtShape(perHead)}, ` +
            `got ${fmtShape(attnMask.shape)}`,
        );
      }
      const m = maskBias(attnMask, dtype, "attnMask");
      bias = m.ndim === 2 ? m : reshape(m, [n, this.numHeads, l, s]);
    }
    if (keyPaddingMask !== null) {
      const expected = batched ? [n, s] : [s];
      if (keyPaddingMask.shape.join() !== expected.join()) {
        throw new Error(
          `MultiheadAttention: keyPaddingMask should have shape ${fmtShape(expected)}, ` +
            `got ${fmtShape(keyPaddingMask.shape)}`,
        );
      }
      const m = reshape(maskBias(keyPaddingMask, dtype, "keyPaddingMask"), [n, 1, 1, s]);
      bias = bias === null ? m : add(bias, m);
    }
    return bias;
  }
}

export type Activation = "relu" | "gelu" | ((x: Tensor) => Tensor);

/** Options of TransformerEncoderLayer, as PyTorch's (camelCase). */
export interface TransformerEncoderLayerOptions {
  dimFeedforward?: number;
  dropout?: number;
  activation?: Activation;
  layerNormEps?: number;
  batchFirst?: boolean;
  normFirst?: boolean;
}

/**
 * PyTorch's TransformerEncoderLayer: self-attention then a feed-forward block (Linear, activation,
 * dropout, Linear), each with dropout, a residual connection and a LayerNorm, after the block
 * (post-norm, the default) or before it (`normFirst`). Parameters in PyTorch's order and names:
 * selfAttn, linear1, linear2, norm1, norm2.
 * ```ts
 * const layer = new nn.TransformerEncoderLayer(16, 4, { dimFeedforward: 32, batchFirst: true });
 * const y = layer.forward(x, { isCausal: true }); // x [N, L, 16]
 * ```
 */
export class TransformerEncoderLayer extends Module {
  selfAttn: MultiheadAttention;
  linear1: Linear;
  dropout: Dropout;
  linear2: Linear;
  norm1: LayerNorm;
  norm2: LayerNorm;
  dropout1: Dropout;
  dropout2: Dropout;
  readonly normFirst: boolean;
  /** The options it was built with, for copies. */
  readonly options: Readonly<TransformerEncoderLayerOptions>;
  private readonly activation: (x: Tensor) => Tensor;

  constructor(
    readonly dModel: number,
    readonly nhead: number,
    opts: TransformerEncoderLayerOptions = {},
  ) {
    super();
    this.options = { ...opts };
    const { dimFeedforward = 2048, dropout = 0.1, activation = "relu", layerNormEps = 1e-5 } = opts;
    this.selfAttn = new MultiheadAttention(dModel, nhead, { dropout, batchFirst: opts.batchFirst ?? false });
    this.linear1 = new Linear(dModel, dimFeedforward);
    this.dropout = new Dropout(dropout);
    this.linear2 = new Linear(dimFeedforward, dModel);
    this.norm1 = new LayerNorm(dModel, layerNormEps);
    this.norm2 = new LayerNorm(dModel, layerNormEps);
    this.dropout1 = new Dropout(dropout);
    this.dropout2 = new Dropout(dropout);
    this.normFirst = opts.normFirst ?? false;
    if (activation === "relu") this.activation = relu;
    else if (activation === "gelu") this.activation = (x) => gelu(x);
    else if (typeof activation === "function") this.activation = activation;
    else throw new Error(`TransformerEncoderLayer: activation should be relu/gelu, not ${String(activation)}`);
  }

  /** A layer with the same options and a copy of this one's parameters (PyTorch's deep copy). */
  copy(): TransformerEncoderLayer {
    const layer = new TransformerEncoderLayer(this.dModel, this.nhead, this.options);
    layer.loadStateDict(this.stateDict());
    return layer.train(this.training);
  }

  // Inside a trainer, dropout keys its random numbers by the first dim as the sample index, so
  // sequence-first tensors go through it batch-first: a sample's masks then do not depend on which
  // worker runs it (the attention dropout inside selfAttn is drawn batch-first already).
  private drop(d: Dropout, x: Tensor): Tensor {
    if (this.selfAttn.batchFirst || x.ndim !== 3 || !d.training || d.p === 0) return d.forward(x);
    return transpose(d.forward(transpose(x, 0, 1)), 0, 1);
  }

  /** src [L, N, E] ([N, L, E] with batchFirst, or [L, E]); masks as MultiheadAttention's. */
  forward(
    src: Tensor,
    opts: { srcMask?: Tensor | null; srcKeyPaddingMask?: Tensor | null; isCausal?: boolean } = {},
  ): Tensor {
    const attention = (x: Tensor): Tensor => {
      const [y] = this.selfAttn.forward(x, x, x, {
        attnMask: opts.srcMask ?? null,
        keyPaddingMask: opts.srcKeyPaddingMask ?? null,
        isCausal: opts.isCausal ?? false,
        needWeights: false,
      });
      return this.drop(this.dropout1, y);
    };
    const feedForward = (x: Tensor): Tensor =>
      this.drop(this.dropout2, this.linear2.forward(this.drop(this.dropout, this.activation(this.linear1.forward(x)))));
    let x = src;
    if (this.normFirst) {
      x = add(x, attention(this.norm1.forward(x)));
      return add(x, feedForward(this.norm2.forward(x)));
    }
    x = this.norm1.forward(add(x, attention(x)));
    return this.norm2.forward(add(x, feedForward(x)));
  }
}

/**
 * PyTorch's TransformerEncoder: `numLayers` copies of `encoderLayer` (equal initial weights, as
 * PyTorch's deep copy gives; building them draws from the default generator, then their values are
 * overwritten), run in order, then the optional final `norm`. Parameters are `layers.0.selfAttn...`
 * to `layers.{numLayers-1}...`, then `norm.weight` and `norm.bias`.
 * ```ts
 * const layer = new nn.TransformerEncoderLayer(16, 4, { dimFeedforward: 32, batchFirst: true, normFirst: true });
 * const encoder = new nn.TransformerEncoder(layer, 2, { norm: new nn.LayerNorm(16) });
 * const y = encoder.forward(x, { isCausal: true }); // x [N, L, 16]
 * ```
 */
export class TransformerEncoder extends Module {
  layers: TransformerEncoderLayer[];
  norm: LayerNorm | null;

  constructor(
    encoderLayer: TransformerEncoderLayer,
    readonly numLayers: number,
    opts: { norm?: LayerNorm | null } = {},
  ) {
    super();
    if (!(Number.isInteger(numLayers) && numLayers > 0)) {
      throw new Error(`TransformerEncoder: numLayers must be a positive integer, got ${numLayers}`);
    }
    this.layers = Array.from({ length: numLayers }, () => encoderLayer.copy());
    this.norm = opts.norm ?? null;
  }

  /** src as the layers take it; `mask`, `srcKeyPaddingMask` and `isCausal` go to every layer. */
  forward(
    src: Tensor,
    opts: { mask?: Tensor | null; srcKeyPaddingMask?: Tensor | null; isCausal?: boolean } = {},
  ): Tensor {
    let x = src;
    for (const layer of this.layers) {
      x = layer.forward(x, { srcMask: opts.mask, srcKeyPaddingMask: opts.srcKeyPaddingMask, isCausal: opts.isCausal });
    }
    return this.norm === null ? x : this.norm.forward(x);
  }
}
