// The built-in `gpt`: a decoder-only transformer over token ids (GPT-2's shape, without dropout).
//   ids [N, T] → token embedding + position embedding [T, dim] → `layers` pre-norm blocks
//   (x + attn(norm1(x)), then x + mlp(norm2(x))) → final LayerNorm → Linear head → logits [N, T, vocab]
// Every module is initialised as PyTorch initialises it by default: Embedding N(0, 1), LayerNorm
// weight 1 and bias 0, Linear U(-1/√in, 1/√in) for weight and bias, and the attention as
// torch.nn.MultiheadAttention (in_proj_weight Xavier-uniform, in_proj_bias and out_proj.bias 0).
// Parameter names are the state_dict keys PyTorch gives the same module tree, e.g.
// `blocks.0.attn.in_proj_weight` (see gptParameterShapes), so exported weights load into torch unchanged.
import { type Tensor, F, add, arange, nn, zeros } from "@threadgrad/core";

/** A built-in token model: `{ kind: "gpt", vocab, context, dim, heads, layers }`; MLP width 4·dim. */
export interface GptModelSpec {
  kind: "gpt";
  /** token ids run from 0 to vocab - 1 (256 for bytes) */
  vocab: number;
  /** the longest sequence the model takes (rows of the position embedding) */
  context: number;
  dim: number;
  /** attention heads; dim must be a multiple of heads */
  heads: number;
  layers: number;
  /** Never set; see ImageModelSpec.sizes. */
  sizes?: undefined;
}

/** The sizes of the `chargpt` preset: a character (byte) model of 470,784 parameters. */
export const CHARGPT = { kind: "gpt", vocab: 256, context: 64, dim: 128, heads: 4, layers: 2 } as const;

/** Largest sizes a gpt spec may give (the 2^28-parameter bound applies on top). */
export const GPT_LIMITS = { vocab: 1 << 20, context: 1 << 16, dim: 1 << 16, heads: 1 << 10, layers: 1 << 10 } as const;

/** Why these sizes cannot make a gpt, or null when they can. */
export function gptSpecProblem(spec: Omit<GptModelSpec, "kind">): string | null {
  for (const key of ["vocab", "context", "dim", "heads", "layers"] as const) {
    const v = spec[key];
    if (!Number.isInteger(v) || v < 1 || v > GPT_LIMITS[key])
      return `${key} must be an integer from 1 to ${GPT_LIMITS[key]}, got ${v}`;
  }
  if (spec.dim % spec.heads !== 0) return `dim must be divisible by heads, got dim ${spec.dim} and heads ${spec.heads}`;
  return null;
}

/**
 * The parameter names and shapes of a gpt, in registration order, computed without building it:
 * token.weight, position.weight, then per block i `blocks.i.` norm1.{weight,bias},
 * attn.{in_proj_weight [3d, d], in_proj_bias, out_proj.weight, out_proj.bias}, norm2.{weight,bias},
 * mlp.0.{weight [4d, d], bias}, mlp.2.{weight [d, 4d], bias}; then norm.{weight,bias}, head.{weight, bias}.
 */
export function gptParameterShapes(spec: Omit<GptModelSpec, "kind">): [name: string, shape: number[]][] {
  const { vocab: v, context, dim: d, layers } = spec;
  const out: [string, number[]][] = [
    ["token.weight", [v, d]],
    ["position.weight", [context, d]],
  ];
  for (let i = 0; i < layers; i++) {
    const b = `blocks.${i}.`;
    out.push([`${b}norm1.weight`, [d]], [`${b}norm1.bias`, [d]]);
    out.push([`${b}attn.in_proj_weight`, [3 * d, d]], [`${b}attn.in_proj_bias`, [3 * d]]);
    out.push([`${b}attn.out_proj.weight`, [d, d]], [`${b}attn.out_proj.bias`, [d]]);
    out.push([`${b}norm2.weight`, [d]], [`${b}norm2.bias`, [d]]);
    out.push([`${b}mlp.0.weight`, [4 * d, d]], [`${b}mlp.0.bias`, [4 * d]]);
    out.push([`${b}mlp.2.weight`, [d, 4 * d]], [`${b}mlp.2.bias`, [d]]);
  }
  out.push(["norm.weight", [d]], ["norm.bias", [d]], ["head.weight", [v, d]], ["head.bias", [v]]);
  return out;
}

/** Parameters of a gpt: V·d + C·d + L·(12d² + 13d) + 2d + d·V + V. */
export const gptParameterCount = (spec: Omit<GptModelSpec, "kind">): number => {
  const { vocab: v, context: c, dim: d, layers: l } = spec;
  return v * d + c * d + l * (12 * d * d + 13 * d) + 2 * d + d * v + v;
};

/**
 * Causal multi-head self-attention with torch.nn.MultiheadAttention's parameters. The fields are
 * snake_case on purpose: a module's field names are its state_dict keys, and these are PyTorch's.
 */
class CausalSelfAttention extends nn.Module {
  in_proj_weight: Tensor;
  in_proj_bias: Tensor;
  out_proj: nn.Linear;

  constructor(
    readonly dim: number,
    readonly heads: number,
  ) {
    super();
    // PyTorch's draw order: out_proj's weight and bias when it is built, then in_proj_weight.
    this.in_proj_weight = nn.Parameter(zeros([3 * dim, dim]));
    this.in_proj_bias = nn.Parameter(zeros([3 * dim]));
    this.out_proj = new nn.Linear(dim, dim);
    nn.init.xavierUniform_(this.in_proj_weight);
    nn.init.zeros_(this.out_proj.bias!);
  }

  /**
   * x [N, T, dim] → [N, T, dim]; position t attends to positions 0..t only. The heads are split
   * from the packed q, k, v projection inside packedSelfAttention (chunk, per-head permute,
   * scaled dot-product attention, merge), without copies in a trainer's step region.
   */
  forward(x: Tensor): Tensor {
    const qkv = F.linear(x, this.in_proj_weight, this.in_proj_bias);
    return this.out_proj.forward(F.packedSelfAttention(qkv, this.heads, { isCausal: true }));
  }
}

/** One pre-norm block: x + attn(norm1(x)), then x + mlp(norm2(x)) with mlp = Linear, GELU, Linear. */
class Block extends nn.Module {
  norm1: nn.LayerNorm;
  attn: CausalSelfAttention;
  norm2: nn.LayerNorm;
  mlp: nn.Sequential;

  constructor(dim: number, heads: number) {
    super();
    this.norm1 = new nn.LayerNorm(dim);
    this.attn = new CausalSelfAttention(dim, heads);
    this.norm2 = new nn.LayerNorm(dim);
    this.mlp = new nn.Sequential(new nn.Linear(dim, 4 * dim), new nn.GELU(), new nn.Linear(4 * dim, dim));
  }

  forward(x: Tensor): Tensor {
    const y = add(x, this.attn.forward(this.norm1.forward(x)));
    return add(y, this.mlp.forward(this.norm2.forward(y)));
  }
}

/**
 * The built-in gpt as an nn.Module: int32 token ids [N, T] with T <= context in, logits
 * [N, T, vocab] out; the logits at position t depend on tokens 0..t only.
 * @example const model = new Gpt(CHARGPT); model.forward(tensor([[72, 105]], { dtype: "int32" })) // [1, 2, 256]
 */
export class Gpt extends nn.Module {
  readonly vocab: number;
  readonly context: number;
  token: nn.Embedding;
  position: nn.Embedding;
  blocks: Block[];
  norm: nn.LayerNorm;
  head: nn.Linear;

  constructor(spec: Omit<GptModelSpec, "kind">) {
    super();
    const problem = gptSpecProblem(spec);
    if (problem !== null) throw new Error(`gpt: ${problem}`);
    const count = gptParameterCount(spec);
    if (count > MAX_GPT_PARAMETERS)
      throw new Error(`gpt: these sizes make ${count} parameters, more than the ${MAX_GPT_PARAMETERS} allowed`);
    const { vocab, context, dim, heads, layers } = spec;
    this.vocab = vocab;
    this.context = context;
    this.token = new nn.Embedding(vocab, dim);
    this.position = new nn.Embedding(context, dim);
    this.blocks = Array.from({ length: layers }, () => new Block(dim, heads));
    this.norm = new nn.LayerNorm(dim);
    this.head = new nn.Linear(dim, vocab);
  }

  forward(ids: Tensor): Tensor {
    if (ids.dtype !== "int32" || ids.ndim !== 2 || ids.shape[1] === 0)
      throw new Error(`gpt: expected int32 token ids of shape [N, T], got ${ids.dtype} [${ids.shape.join(", ")}]`);
    const t = ids.shape[1]!;
    if (t > this.context)
      throw new Error(`gpt: sequence length ${t} is longer than the model's context of ${this.context} tokens`);
    let x = add(this.token.forward(ids), this.position.forward(arange(t, undefined, 1, { dtype: "int32" })));
    for (const block of this.blocks) x = block.forward(x);
    return this.head.forward(this.norm.forward(x));
  }
}

/** The same bound as MAX_PARAMETERS in spec.ts (not imported from there: spec.ts imports this file). */
const MAX_GPT_PARAMETERS = 2 ** 28;
