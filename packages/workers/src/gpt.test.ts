// The built-in gpt: its size, PyTorch's names, causal masking, shorter sequences, and a checkpoint
// holding one, read back field by field and loaded without workers.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type Tensor, Generator, manualSeed, nn, noGrad, randn, tensor } from "@threadgrad/core";
import { loadTensor, readCheckpoint, writeCheckpoint } from "./checkpoint.js";
import { assertBuilt } from "./fixtures/harness.mjs";
import { CHARGPT, Gpt, type GptModelSpec, gptParameterCount, gptParameterShapes, gptSpecProblem } from "./gpt.js";
import { loadModel } from "./load-model.js";
import { readTrainerCheckpoint } from "./persist.js";
import { buildModel, builtinParameterShapes } from "./spec.js";
import { DataParallel } from "./trainer.js";

// biome-ignore lint/suspicious/noExplicitAny: a test reaches into a crafted payload at any depth
type Payload = Record<string, any>;
const dir = mkdtempSync(join(tmpdir(), "threadgrad-gpt-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SMALL = { kind: "gpt", vocab: 256, context: 8, dim: 16, heads: 2, layers: 2 } satisfies GptModelSpec;

function ids(rows: number[][]): Tensor {
  return tensor(rows, { dtype: "int32" });
}

function logits(model: Gpt, rows: number[][]): Float32Array {
  return noGrad(() => model.forward(ids(rows)).data as Float32Array);
}

describe("the gpt model", () => {
  it("chargpt (vocab 256, context 64, dim 128, 4 heads, 2 layers) has 470,784 parameters", () => {
    manualSeed(0);
    const model = new Gpt(CHARGPT);
    const total = model.parameters().reduce((n, p) => n + p.numel, 0);
    expect(total).toBe(470_784);
    expect(gptParameterCount(CHARGPT)).toBe(470_784);
  });

  it("names its parameters as PyTorch's state_dict keys, in registration order, as gptParameterShapes lists them", () => {
    const model = new Gpt(SMALL);
    const built = [...model.namedParameters()].map(([n, p]) => [n, p.shape]);
    expect(gptParameterShapes(SMALL)).toEqual(built);
    expect(builtinParameterShapes(SMALL)).toEqual(built);
    expect(built.slice(0, 8).map(([n]) => n)).toEqual([
      "token.weight",
      "position.weight",
      "blocks.0.norm1.weight",
      "blocks.0.norm1.bias",
      "blocks.0.attn.in_proj_weight",
      "blocks.0.attn.in_proj_bias",
      "blocks.0.attn.out_proj.weight",
      "blocks.0.attn.out_proj.bias",
    ]);
    expect(built.at(-2)).toEqual(["head.weight", [256, 16]]);
    expect(built.find(([n]) => n === "blocks.1.mlp.0.weight")![1]).toEqual([64, 16]);
  });

  it("initialises as PyTorch's defaults: zero attention biases, unit LayerNorm weights, N(0, 1) embeddings", () => {
    manualSeed(3);
    const p = Object.fromEntries(new Gpt(CHARGPT).namedParameters());
    const values = (name: string) => Array.from(p[name]!.data);
    expect(values("blocks.0.attn.in_proj_bias").every((v) => v === 0)).toBe(true);
    expect(values("blocks.0.attn.out_proj.bias").every((v) => v === 0)).toBe(true);
    expect(values("blocks.1.norm2.weight").every((v) => v === 1)).toBe(true);
    // Xavier-uniform on [384, 128]: bound √(6 / 512).
    const bound = Math.sqrt(6 / 512);
    const inProj = values("blocks.0.attn.in_proj_weight");
    expect(Math.max(...inProj.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...inProj.map(Math.abs))).toBeGreaterThan(0.95 * bound);
    // Linear: U(-1/√in, 1/√in) for weight and bias.
    expect(Math.max(...values("blocks.0.mlp.2.bias").map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(512));
    const token = values("token.weight");
    const mean = token.reduce((a, b) => a + b, 0) / token.length;
    const sd = Math.sqrt(token.reduce((a, b) => a + (b - mean) ** 2, 0) / token.length);
    expect(Math.abs(mean)).toBeLessThan(0.02);
    expect(Math.abs(sd - 1)).toBeLessThan(0.02);
  });

  it("attends as nn.MultiheadAttention with the same in_proj and out_proj and a causal mask", () => {
    manualSeed(2);
    const model = new Gpt(SMALL);
    const attn = model.blocks[0]!.attn;
    const mha = new nn.MultiheadAttention(16, 2, { batchFirst: true });
    mha.loadStateDict({
      inProjWeight: attn.in_proj_weight,
      inProjBias: attn.in_proj_bias,
      "outProj.weight": attn.out_proj.weight,
      "outProj.bias": attn.out_proj.bias!,
    });
    const x = randn([3, 5, 16]);
    const [want] = mha.forward(x, x, x, { isCausal: true, needWeights: false });
    const got = attn.forward(x);
    expect(got.shape).toEqual([3, 5, 16]);
    for (const [i, v] of Array.from(got.data).entries()) expect(v).toBeCloseTo(want.data[i]!, 5);
  });

  it("is causal: changing a later token never changes the logits of earlier positions", () => {
    manualSeed(1);
    const model = new Gpt(SMALL);
    const g = new Generator(2);
    const row = Array.from({ length: 8 }, () => g.integer(0, 256));
    const base = logits(model, [row]);
    for (const j of [1, 4, 7]) {
      const changed = [...row];
      changed[j] = (changed[j]! + 97) % 256;
      const out = logits(model, [changed]);
      const cut = j * 256;
      expect(Array.from(out.subarray(0, cut))).toEqual(Array.from(base.subarray(0, cut)));
      expect(Array.from(out.subarray(cut, cut + 256))).not.toEqual(Array.from(base.subarray(cut, cut + 256)));
    }
  });

  it("takes sequences shorter than its context: their logits are the longer sequence's first positions", () => {
    manualSeed(4);
    const model = new Gpt(SMALL);
    const rows = [
      [1, 2, 3, 4, 5, 6, 7, 8],
      [200, 100, 50, 25, 12, 6, 3, 1],
    ];
    const full = model.forward(ids(rows));
    expect(full.shape).toEqual([2, 8, 256]);
    const short = model.forward(ids(rows.map((r) => r.slice(0, 3))));
    expect(short.shape).toEqual([2, 3, 256]);
    const firstThree = (t: Tensor, n: number) => Array.from(t.data.subarray(n * 8 * 256, n * 8 * 256 + 3 * 256));
    const shortRow = (n: number) => Array.from(short.data.subarray(n * 3 * 256, (n + 1) * 3 * 256));
    for (const n of [0, 1]) {
      const a = firstThree(full, n);
      for (const [i, v] of shortRow(n).entries()) expect(v).toBeCloseTo(a[i]!, 5);
    }
  });

  it("refuses sequences longer than its context and ids that are not int32 [N, T], naming them", () => {
    const model = new Gpt(SMALL);
    expect(() => model.forward(ids([[1, 2, 3, 4, 5, 6, 7, 8, 9]]))).toThrow(
      "gpt: sequence length 9 is longer than the model's context of 8 tokens",
    );
    expect(() => model.forward(tensor([[1, 2]], { dtype: "float32" }))).toThrow(
      "gpt: expected int32 token ids of shape [N, T], got float32 [1, 2]",
    );
    expect(() => model.forward(tensor([1, 2], { dtype: "int32" }))).toThrow("got int32 [2]");
  });

  it("refuses sizes that cannot make a gpt, naming the size", () => {
    expect(gptSpecProblem({ ...SMALL, dim: 15 })).toBe("dim must be divisible by heads, got dim 15 and heads 2");
    expect(gptSpecProblem({ ...SMALL, layers: 0 })).toBe("layers must be an integer from 1 to 1024, got 0");
    expect(gptSpecProblem({ ...SMALL, vocab: 2.5 })).toBe("vocab must be an integer from 1 to 1048576, got 2.5");
    expect(() => new Gpt({ ...SMALL, heads: 3 })).toThrow(
      "gpt: dim must be divisible by heads, got dim 16 and heads 3",
    );
    expect(() => new Gpt({ ...SMALL, dim: 8192, layers: 400 })).toThrow(
      `gpt: these sizes make ${gptParameterCount({ ...SMALL, dim: 8192, layers: 400 })} parameters, more than the 268435456 allowed`,
    );
  });

  it("is built from its spec by buildModel", async () => {
    manualSeed(7);
    const a = await buildModel(SMALL);
    manualSeed(7);
    const b = new Gpt(SMALL);
    expect(a).toBeInstanceOf(Gpt);
    expect(Array.from(a.parameters()[4]!.data)).toEqual(Array.from(b.parameters()[4]!.data));
  });
});

describe("a checkpoint of a gpt", () => {
  it("saves without training, is checked field by field, and loads with loadModel holding the stored parameters", async () => {
    assertBuilt();
    const file = join(dir, "gpt.msgpack");
    const t = await DataParallel.create({ model: SMALL, workers: 1, seed: 5 });
    try {
      await t.save(file);
    } finally {
      await t.close();
    }
    expect(readTrainerCheckpoint(file).config.model).toEqual(SMALL);
    const loaded = (await loadModel(file)) as Gpt;
    expect(loaded).toBeInstanceOf(Gpt);
    const stored = readTrainerCheckpoint(file).params;
    expect(loaded.head.bias!.data).toEqual(loadTensor(stored.get("head.bias")!, "head.bias"));
    expect(loaded.token.weight.data).toEqual(loadTensor(stored.get("token.weight")!, "token.weight"));
    expect(loaded.forward(ids([[104, 105]])).shape).toEqual([1, 2, 256]);

    const good = readCheckpoint(file);
    let n = 0;
    const crafted = (change: (p: Payload) => void) => {
      const copy = structuredClone(good) as Payload;
      change(copy);
      const out = join(dir, `crafted-${n++}.msgpack`);
      writeCheckpoint(out, copy);
      return out;
    };
    const cases: [(p: Payload) => void, string][] = [
      [(p) => (p.config.model.heads = 3), "field 'config.model.dim' must be divisible by heads (3), got 16"],
      [(p) => (p.config.model.vocab = 0), "field 'config.model.vocab' must be an integer 1..1048576, got 0"],
      [(p) => (p.config.model.layers = "2"), `field 'config.model.layers' must be an integer 1..1024, got "2"`],
      [(p) => delete p.config.model.context, "field 'config.model.context' is missing"],
      [
        (p) => Object.assign(p.config.model, { dim: 65536, heads: 1 }),
        "field 'config.model' must make at most 268435456 parameters (it makes",
      ],
      [(p) => (p.config.model.context = 9), "field 'params.position.weight.shape' must be [9, 16]"],
      [
        (p) => (p.params["blocks.0.attn.inProjWeight"] = p.params["head.bias"]),
        "field 'params.blocks.0.attn.inProjWeight' is not a parameter of the gpt",
      ],
    ];
    for (const [change, message] of cases) {
      const f = crafted(change);
      expect(() => readTrainerCheckpoint(f)).toThrow(`checkpoint: ${f}: ${message}`);
    }
  });
});
