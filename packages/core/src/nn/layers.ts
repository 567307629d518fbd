import type { Tensor } from "../tensor/tensor.js";
import { empty } from "./util.js";
import { Module, Parameter } from "./module.js";
import * as F from "./functional.js";
import * as init from "./init.js";

/** A float as Python's repr writes it (`0.5`, `1.0`, `1e-05`), so toString matches PyTorch. */
export function pyFloat(v: number): string {
  if (!Number.isFinite(v)) return Number.isNaN(v) ? "nan" : v > 0 ? "inf" : "-inf";
  const exp = v === 0 ? 0 : Math.floor(Math.log10(Math.abs(v)));
  if (exp < -4 || exp >= 16) {
    const [mantissa, e] = v.toExponential().split("e") as [string, string];
    const n = Number(e);
    return `${mantissa}e${n < 0 ? "-" : "+"}${String(Math.abs(n)).padStart(2, "0")}`;
  }
  return Number.isInteger(v) ? `${v}.0` : String(v);
}

/** y = x·Wᵀ + b with W of shape [out, in], initialised as PyTorch's Linear. */
export class Linear extends Module {
  weight: Tensor;
  bias: Tensor | null;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: { bias?: boolean; dtype?: "float32" | "float64" } = {},
  ) {
    super();
    if (!(Number.isInteger(inFeatures) && inFeatures > 0 && Number.isInteger(outFeatures) && outFeatures > 0)) {
      throw new Error(`Linear: feature sizes must be positive integers, got (${inFeatures}, ${outFeatures})`);
    }
    this.weight = Parameter(empty([outFeatures, inFeatures], opts.dtype));
    this.bias = opts.bias === false ? null : Parameter(empty([outFeatures], opts.dtype));
    this.resetParameters();
  }

  /** kaiming_uniform(a=√5) for the weight, which gives U(-1/√in, 1/√in); the same bound for the bias. */
  resetParameters(): void {
    init.kaimingUniform_(this.weight, { a: Math.sqrt(5) });
    const bound = 1 / Math.sqrt(this.inFeatures);
    if (this.bias) init.uniform_(this.bias, -bound, bound);
  }

  forward(x: Tensor): Tensor {
    return F.linear(x, this.weight, this.bias);
  }

  override extraRepr(): string {
    return `in_features=${this.inFeatures}, out_features=${this.outFeatures}, bias=${this.bias ? "True" : "False"}`;
  }
}

/** Runs its layers in order. */
export class Sequential extends Module {
  layers: Module[];

  constructor(...layers: Module[]) {
    super();
    this.layers = layers;
  }

  forward(x: Tensor): Tensor {
    let h = x;
    for (const layer of this.layers) h = (layer.forward as (x: Tensor) => Tensor)(h);
    return h;
  }

  override *namedChildren(): Generator<[string, Module]> {
    for (const [i, m] of this.layers.entries()) yield [String(i), m];
  }

  get length(): number {
    return this.layers.length;
  }

  at(i: number): Module {
    const m = this.layers.at(i);
    if (m === undefined) throw new Error(`Sequential: index ${i} is out of range for ${this.layers.length} layers`);
    return m;
  }
}

export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return x.relu();
  }
}
export class Tanh extends Module {
  forward(x: Tensor): Tensor {
    return x.tanh();
  }
}
export class Sigmoid extends Module {
  forward(x: Tensor): Tensor {
    return x.sigmoid();
  }
}
export class Identity extends Module {
  forward(x: Tensor): Tensor {
    return x;
  }
}

export class GELU extends Module {
  constructor(readonly approximate: "none" | "tanh" = "none") {
    super();
  }
  forward(x: Tensor): Tensor {
    return x.gelu({ approximate: this.approximate });
  }
  override extraRepr(): string {
    return this.approximate === "none" ? "" : `approximate='${this.approximate}'`;
  }
}

export class Softplus extends Module {
  constructor(
    readonly beta = 1,
    readonly threshold = 20,
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return x.softplus(this.beta, this.threshold);
  }
  override extraRepr(): string {
    return `beta=${pyFloat(this.beta)}, threshold=${pyFloat(this.threshold)}`;
  }
}

/** Zeroes elements with probability p in training and scales the rest by 1/(1-p). */
export class Dropout extends Module {
  constructor(readonly p = 0.5) {
    super();
    if (!(p >= 0 && p <= 1)) throw new Error(`Dropout: dropout probability has to be between 0 and 1, but got ${p}`);
  }
  forward(x: Tensor): Tensor {
    return F.dropout(x, this.p, this.training);
  }
  override extraRepr(): string {
    return `p=${pyFloat(this.p)}, inplace=False`;
  }
}

export class Flatten extends Module {
  constructor(
    readonly startDim = 1,
    readonly endDim = -1,
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return x.flatten(this.startDim, this.endDim);
  }
  override extraRepr(): string {
    return `start_dim=${this.startDim}, end_dim=${this.endDim}`;
  }
}

/**
 * Splits dimension `dim` into `sizes`, as PyTorch's nn.Unflatten: `new Unflatten(1, [1, 28, 28])`
 * turns [N, 784] into [N, 1, 28, 28]. Input that already has that shape passes through unchanged,
 * so a model can start with it and take flat rows or shaped samples alike.
 */
export class Unflatten extends Module {
  readonly sizes: readonly number[];
  constructor(
    readonly dim: number,
    sizes: readonly number[],
  ) {
    super();
    if (!Number.isInteger(dim) || dim < 0) throw new Error(`Unflatten: dim must be a non-negative integer, got ${dim}`);
    if (sizes.length === 0 || sizes.some((s) => !Number.isInteger(s) || s < 1))
      throw new Error(`Unflatten: sizes must be positive integers, got [${sizes.join(", ")}]`);
    this.sizes = [...sizes];
  }
  forward(x: Tensor): Tensor {
    const { dim, sizes } = this;
    const shape = x.shape;
    const n = sizes.reduce((a, b) => a * b, 1);
    if (shape.length >= dim + sizes.length && sizes.every((s, i) => shape[dim + i] === s)) return x;
    if (shape.length <= dim || shape[dim] !== n) {
      throw new Error(
        `Unflatten: dimension ${dim} of input [${shape.join(", ")}] must have ${n} elements ` +
          `(${sizes.join("×")}) or already be [${sizes.join(", ")}]`,
      );
    }
    return x.reshape([...shape.slice(0, dim), ...sizes, ...shape.slice(dim + 1)]);
  }
  override extraRepr(): string {
    return `dim=${this.dim}, unflattened_size=(${this.sizes.join(", ")}${this.sizes.length === 1 ? "," : ""})`;
  }
}

/** A lookup table of `numEmbeddings` vectors, N(0, 1) initialised; the padding row stays zero. */
export class Embedding extends Module {
  weight: Tensor;
  /** Non-negative: a negative index given to the constructor counts from the end, as in PyTorch. */
  readonly paddingIdx: number | null;
  constructor(
    readonly numEmbeddings: number,
    readonly embeddingDim: number,
    paddingIdx: number | null = null,
  ) {
    super();
    if (
      paddingIdx !== null &&
      !(Number.isInteger(paddingIdx) && paddingIdx >= -numEmbeddings && paddingIdx < numEmbeddings)
    ) {
      throw new Error(
        `Embedding: paddingIdx must be an integer in [${-numEmbeddings}, ${numEmbeddings}), got ${paddingIdx}`,
      );
    }
    this.paddingIdx = paddingIdx !== null && paddingIdx < 0 ? paddingIdx + numEmbeddings : paddingIdx;
    this.weight = Parameter(empty([numEmbeddings, embeddingDim]));
    init.normal_(this.weight);
    if (this.paddingIdx !== null)
      this.weight.data.fill(0, this.paddingIdx * embeddingDim, (this.paddingIdx + 1) * embeddingDim);
  }
  forward(indices: Tensor): Tensor {
    return F.embedding(indices, this.weight, this.paddingIdx);
  }
  override extraRepr(): string {
    const padding = this.paddingIdx === null ? "" : `, padding_idx=${this.paddingIdx}`;
    return `${this.numEmbeddings}, ${this.embeddingDim}${padding}`;
  }
}

/** Normalises over the trailing `normalizedShape` dims, then applies an elementwise affine map. */
export class LayerNorm extends Module {
  weight: Tensor | null;
  bias: Tensor | null;
  readonly normalizedShape: number[];
  constructor(
    normalizedShape: number | number[],
    readonly eps = 1e-5,
    elementwiseAffine = true,
  ) {
    super();
    this.normalizedShape = typeof normalizedShape === "number" ? [normalizedShape] : normalizedShape;
    this.weight = elementwiseAffine ? Parameter(init.ones_(empty(this.normalizedShape))) : null;
    this.bias = elementwiseAffine ? Parameter(init.zeros_(empty(this.normalizedShape))) : null;
  }
  forward(x: Tensor): Tensor {
    return F.layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }
  override extraRepr(): string {
    // A Python tuple: (4,) for one dim, (2, 3) for more.
    const dims = this.normalizedShape.join(", ") + (this.normalizedShape.length === 1 ? "," : "");
    return `(${dims}), eps=${pyFloat(this.eps)}, elementwise_affine=${this.weight ? "True" : "False"}`;
  }
}
