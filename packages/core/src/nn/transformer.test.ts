import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  F,
  type Tensor,
  getDefaultDtype,
  gradcheck,
  gradgradcheck,
  manualSeed,
  nn,
  noGrad,
  ones,
  randn,
  setDefaultDtype,
  setSampleContext,
  tensor,
  triu,
  tril,
} from "../index.js";

// Everything here runs in float64, so references computed by loops agree to rounding and the
// gradient checks are meaningful.
let saved: ReturnType<typeof getDefaultDtype>;
beforeAll(() => {
  saved = getDefaultDtype();
  setDefaultDtype("float64");
});
afterAll(() => setDefaultDtype(saved));

const rand = (...shape: number[]): Tensor => randn(shape, { dtype: "float64" });

/** A MultiheadAttention with random biases too (PyTorch initialises them to zero). */
function makeMha(e: number, h: number, opts: ConstructorParameters<typeof nn.MultiheadAttention>[2] = {}) {
  const mha = new nn.MultiheadAttention(e, h, opts);
  noGrad(() => {
    mha.inProjBias?.copy_(rand(3 * e));
    mha.outProj.bias?.copy_(rand(e));
  });
  return mha;
}

interface RefOptions {
  /** Added to the score of query i and key j in batch n, head h. */
  bias?: (n: number, h: number, i: number, j: number) => number;
  causal?: boolean;
  /** [N, H, L, S] multipliers of the probabilities (a dropout mask). */
  drop?: Tensor;
}

/**
 * Multi-head attention by explicit loops, from PyTorch's definition, on batch-first data: x_q
 * [N, L, E], x_k and x_v [N, S, E]. Head h projects with rows h·d..(h+1)·d of the q, k and v blocks
 * of inProjWeight (plus inProjBias), attends with scale 1/√d, and the heads' outputs, concatenated
 * in head order, go through outProj. Returns the output [N, L, E] and the weights [N, H, L, S].
 */
function reference(mha: nn.MultiheadAttention, xq: Tensor, xk: Tensor, xv: Tensor, o: RefOptions = {}) {
  const [n, l, e] = xq.shape as [number, number, number];
  const s = xk.shape[1]!,
    h = mha.numHeads,
    d = e / h;
  const w = mha.inProjWeight.data,
    b = mha.inProjBias?.data;
  const proj = (x: Tensor, len: number, block: number) => {
    const out = new Float64Array(n * len * e);
    for (let r = 0; r < n * len; r++) {
      for (let c = 0; c < e; c++) {
        let acc = b ? b[block * e + c]! : 0;
        for (let t = 0; t < e; t++) acc += x.data[r * e + t]! * w[(block * e + c) * e + t]!;
        out[r * e + c] = acc;
      }
    }
    return out;
  };
  const [q, k, v] = [proj(xq, l, 0), proj(xk, s, 1), proj(xv, s, 2)];
  const concat = new Float64Array(n * l * e),
    weights = new Float64Array(n * h * l * s);
  for (let bn = 0; bn < n; bn++) {
    for (let hh = 0; hh < h; hh++) {
      for (let i = 0; i < l; i++) {
        const row = new Float64Array(s);
        for (let j = 0; j < s; j++) {
          let dot = 0;
          for (let c = 0; c < d; c++) dot += q[(bn * l + i) * e + hh * d + c]! * k[(bn * s + j) * e + hh * d + c]!;
          row[j] = o.causal && j > i ? -Infinity : dot / Math.sqrt(d) + (o.bias ? o.bias(bn, hh, i, j) : 0);
        }
        const m = Math.max(...row);
        const total = row.reduce((a, x) => a + Math.exp(x - m), 0);
        for (let j = 0; j < s; j++) {
          const at = ((bn * h + hh) * l + i) * s + j;
          const p = (Math.exp(row[j]! - m) / total) * (o.drop ? o.drop.data[at]! : 1);
          weights[at] = p;
          for (let c = 0; c < d; c++) concat[(bn * l + i) * e + hh * d + c]! += p * v[(bn * s + j) * e + hh * d + c]!;
        }
      }
    }
  }
  const wo = mha.outProj.weight.data,
    bo = mha.outProj.bias?.data;
  const out = new Float64Array(n * l * e);
  for (let r = 0; r < n * l; r++) {
    for (let c = 0; c < e; c++) {
      let acc = bo ? bo[c]! : 0;
      for (let t = 0; t < e; t++) acc += concat[r * e + t]! * wo[c * e + t]!;
      out[r * e + c] = acc;
    }
  }
  return { out, weights };
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-12): void {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  expect(worst).toBeLessThanOrEqual(tol);
}

/** Mean over the heads of [N, H, L, S] weights. */
function headMean(w: Float64Array, n: number, h: number, ls: number): Float64Array {
  const out = new Float64Array(n * ls);
  for (let b = 0; b < n; b++)
    for (let hh = 0; hh < h; hh++) for (let x = 0; x < ls; x++) out[b * ls + x]! += w[(b * h + hh) * ls + x]! / h;
  return out;
}

describe("MultiheadAttention", () => {
  test("has PyTorch's parameters: inProjWeight [3E, E], inProjBias [3E], outProj; biases start at zero", () => {
    manualSeed(0);
    const mha = new nn.MultiheadAttention(8, 2);
    expect([...mha.namedParameters()].map(([k, p]) => [k, p.shape])).toEqual([
      ["inProjWeight", [24, 8]],
      ["inProjBias", [24]],
      ["outProj.weight", [8, 8]],
      ["outProj.bias", [8]],
    ]);
    expect([...mha.inProjBias!.data, ...mha.outProj.bias!.data].every((x) => x === 0)).toBe(true);
    // xavier_uniform over fan_in 8, fan_out 24: bound √(6 / 32)
    const bound = Math.sqrt(6 / 32);
    const wmax = Math.max(...[...mha.inProjWeight.data].map(Math.abs));
    expect(wmax).toBeLessThanOrEqual(bound);
    expect(wmax).toBeGreaterThan(0.9 * bound);
    const noBias = new nn.MultiheadAttention(8, 2, { bias: false });
    expect([...noBias.namedParameters()].map(([k]) => k)).toEqual(["inProjWeight", "outProj.weight"]);
  });

  test("cross-attention, sequence-first, with a boolean attnMask (true = masked) and keyPaddingMask", () => {
    manualSeed(1);
    const [n, l, s, e, h] = [2, 3, 4, 6, 3];
    const mha = makeMha(e, h);
    const xq = rand(n, l, e),
      xk = rand(n, s, e),
      xv = rand(n, s, e);
    const attnMask = tensor([
      [false, true, false, false],
      [false, false, true, true],
      [true, false, false, false],
    ]);
    const keyPaddingMask = tensor([
      [false, false, false, true],
      [false, false, false, false],
    ]);
    const [out, w] = mha.forward(xq.transpose(0, 1), xk.transpose(0, 1), xv.transpose(0, 1), {
      attnMask,
      keyPaddingMask,
    });
    const ref = reference(mha, xq, xk, xv, {
      bias: (bn, _h, i, j) => (attnMask.data[i * s + j] || keyPaddingMask.data[bn * s + j] ? -Infinity : 0),
    });
    expect(out.shape).toEqual([l, n, e]);
    expectClose(out.transpose(0, 1).data, ref.out);
    expect(w!.shape).toEqual([n, l, s]);
    expectClose(w!.data, headMean(ref.weights, n, h, l * s));
  });

  test("batchFirst, per-head float masks and unaveraged weights", () => {
    manualSeed(2);
    const [n, l, s, e, h] = [2, 2, 3, 4, 2];
    const mha = makeMha(e, h, { batchFirst: true });
    const xq = rand(n, l, e),
      xk = rand(n, s, e),
      xv = rand(n, s, e);
    const attnMask = rand(n * h, l, s),
      keyPaddingMask = rand(n, s);
    const [out, w] = mha.forward(xq, xk, xv, { attnMask, keyPaddingMask, averageAttnWeights: false });
    const ref = reference(mha, xq, xk, xv, {
      bias: (bn, hh, i, j) => attnMask.data[((bn * h + hh) * l + i) * s + j]! + keyPaddingMask.data[bn * s + j]!,
    });
    expectClose(out.data, ref.out);
    expect(w!.shape).toEqual([n, h, l, s]);
    expectClose(w!.data, ref.weights);
  });

  test("self-attention (one tensor for query, key and value) equals three separate projections", () => {
    manualSeed(3);
    const mha = makeMha(4, 2, { batchFirst: true });
    const x = rand(2, 3, 4);
    const [a, wa] = mha.forward(x, x, x);
    const [b, wb] = mha.forward(x, x.clone(), x.clone());
    expectClose(a.data, b.data, 1e-14);
    expectClose(wa!.data, wb!.data, 1e-14);
    expectClose(a.data, reference(mha, x, x, x).out);
  });

  test("isCausal is the mask triu(ones, 1); unbatched input is one batch; needWeights false gives null", () => {
    manualSeed(4);
    const mha = makeMha(4, 2);
    const x = rand(3, 4);
    const [causal, none] = mha.forward(x, x, x, { isCausal: true, needWeights: false });
    expect(none).toBeNull();
    const [masked, w] = mha.forward(x, x, x, { attnMask: triu(ones([3, 3], { dtype: "bool" }), 1) });
    expectClose(causal.data, masked.data, 0);
    expect(causal.shape).toEqual([3, 4]);
    expect(w!.shape).toEqual([3, 3]);
    const [batched] = mha.forward(x.unsqueeze(1), x.unsqueeze(1), x.unsqueeze(1), { isCausal: true });
    expectClose(batched.data, causal.data, 0);
    expectClose(causal.data, reference(mha, x.unsqueeze(0), x.unsqueeze(0), x.unsqueeze(0), { causal: true }).out);
  });

  test("dropout on the weights in training only, with the numbers F.dropout draws", () => {
    manualSeed(5);
    const [n, l, e, h] = [2, 3, 4, 2];
    const mha = makeMha(e, h, { batchFirst: true, dropout: 0.4 });
    const x = rand(n, l, e);
    manualSeed(9);
    const [out, w] = mha.forward(x, x, x, { averageAttnWeights: false });
    manualSeed(9);
    const drop = F.dropout(ones([n, h, l, l], { dtype: "float64" }), 0.4);
    const ref = reference(mha, x, x, x, { drop });
    expectClose(out.data, ref.out);
    expectClose(w!.data, ref.weights);
    mha.eval();
    const [evalOut, evalW] = mha.forward(x, x, x);
    expectClose(evalOut.data, reference(mha, x, x, x).out);
    const rowSums = evalW!.sum(-1).data;
    expectClose(rowSums, new Float64Array(rowSums.length).fill(1), 1e-12);
  });

  test("gradients of the output and the weights match finite differences to second order", () => {
    manualSeed(6);
    const mha = makeMha(4, 2);
    const q = rand(3, 2, 4).requiresGrad_(),
      kv = rand(2, 2, 4).requiresGrad_();
    const params = mha.parameters();
    const mask = tensor([
      [false, true],
      [false, false],
      [true, false],
    ]);
    const wt = rand(2, 3, 2); // weights [N, L, S] enter the checked value with fixed random factors
    const f = (a: Tensor, b: Tensor) => {
      const [y, w] = mha.forward(a, b, b, { attnMask: mask });
      return y.sum(-1).add(w!.mul(wt).sum(-1).transpose(0, 1));
    };
    expect(gradcheck(f, [q, kv])).toBe(true);
    expect(gradgradcheck(f, [q, kv])).toBe(true);
    // The parameters are leaves of the module's graph: gradcheck perturbs them in place.
    const viaParams = () =>
      mha.forward(q, kv, kv, {
        keyPaddingMask: tensor([
          [false, true],
          [false, false],
        ]),
      })[0];
    expect(gradcheck(viaParams, params)).toBe(true);
    expect(gradgradcheck(viaParams, params)).toBe(true);
  });

  test("refuses bad sizes and masks with the reason", () => {
    expect(() => new nn.MultiheadAttention(6, 4)).toThrow(
      /MultiheadAttention: embedDim must be divisible by numHeads, got 6 and 4/,
    );
    expect(() => new nn.MultiheadAttention(4, 2, { dropout: 2 })).toThrow(
      /dropout probability has to be between 0 and 1, but got 2/,
    );
    const mha = new nn.MultiheadAttention(4, 2);
    const x = rand(3, 2, 4);
    expect(() => mha.forward(rand(3, 2, 5), x, x)).toThrow(/expected query, key and value of shape \[L, N, 4\]/);
    expect(() => mha.forward(x, x, x, { attnMask: ones([3, 2], { dtype: "bool" }) })).toThrow(
      /attnMask should have shape \[3, 3\] or \[4, 3, 3\], got \[3, 2\]/,
    );
    expect(() => mha.forward(x, x, x, { keyPaddingMask: ones([3, 2], { dtype: "bool" }) })).toThrow(
      /keyPaddingMask should have shape \[2, 3\], got \[3, 2\]/,
    );
    expect(() => mha.forward(x, x, x, { keyPaddingMask: ones([2, 3], { dtype: "int32" }) })).toThrow(
      /keyPaddingMask must be bool or floating point, got int32/,
    );
    expect(() => mha.forward(x, rand(3, 1, 4), rand(3, 1, 4))).toThrow(/query and key batch sizes differ \(2 vs 1\)/);
  });
});

describe("TransformerEncoderLayer", () => {
  const manual = (layer: nn.TransformerEncoderLayer, x: Tensor, act: (t: Tensor) => Tensor, normFirst: boolean) => {
    const sa = (t: Tensor) => layer.selfAttn.forward(t, t, t, { needWeights: false })[0];
    const ff = (t: Tensor) =>
      F.linear(act(F.linear(t, layer.linear1.weight, layer.linear1.bias)), layer.linear2.weight, layer.linear2.bias);
    const ln = (t: Tensor, m: nn.LayerNorm) => F.layerNorm(t, [layer.dModel], m.weight, m.bias, 1e-5);
    if (normFirst) {
      const h = x.add(sa(ln(x, layer.norm1)));
      return h.add(ff(ln(h, layer.norm2)));
    }
    const h = ln(x.add(sa(x)), layer.norm1);
    return ln(h.add(ff(h)), layer.norm2);
  };

  test("has PyTorch's parameter names in PyTorch's order", () => {
    const layer = new nn.TransformerEncoderLayer(8, 2, { dimFeedforward: 16 });
    expect([...layer.namedParameters()].map(([k, p]) => `${k} ${p.shape.join("x")}`)).toEqual([
      "selfAttn.inProjWeight 24x8",
      "selfAttn.inProjBias 24",
      "selfAttn.outProj.weight 8x8",
      "selfAttn.outProj.bias 8",
      "linear1.weight 16x8",
      "linear1.bias 16",
      "linear2.weight 8x16",
      "linear2.bias 8",
      "norm1.weight 8",
      "norm1.bias 8",
      "norm2.weight 8",
      "norm2.bias 8",
    ]);
    expect(new nn.TransformerEncoderLayer(8, 2).linear1.outFeatures).toBe(2048);
  });

  test("prints its children as PyTorch does, in camelCase", () => {
    expect(new nn.TransformerEncoderLayer(4, 2, { dimFeedforward: 8 }).toString()).toBe(
      [
        "TransformerEncoderLayer(",
        "  (selfAttn): MultiheadAttention(",
        "    (outProj): Linear(in_features=4, out_features=4, bias=True)",
        "  )",
        "  (linear1): Linear(in_features=4, out_features=8, bias=True)",
        "  (dropout): Dropout(p=0.1, inplace=False)",
        "  (linear2): Linear(in_features=8, out_features=4, bias=True)",
        "  (norm1): LayerNorm((4,), eps=1e-05, elementwise_affine=True)",
        "  (norm2): LayerNorm((4,), eps=1e-05, elementwise_affine=True)",
        "  (dropout1): Dropout(p=0.1, inplace=False)",
        "  (dropout2): Dropout(p=0.1, inplace=False)",
        ")",
      ].join("\n"),
    );
  });

  test.each([
    ["post-norm with relu", false, "relu" as const, (t: Tensor) => t.relu()],
    ["pre-norm with gelu", true, "gelu" as const, (t: Tensor) => t.gelu()],
    ["pre-norm with a function", true, (t: Tensor) => t.tanh(), (t: Tensor) => t.tanh()],
  ])("%s: residual blocks and LayerNorms in PyTorch's order", (_name, normFirst, activation, act) => {
    manualSeed(7);
    const layer = new nn.TransformerEncoderLayer(4, 2, { dimFeedforward: 6, dropout: 0, normFirst, activation });
    const x = rand(3, 2, 4);
    expectClose(layer.forward(x).data, manual(layer, x, act, normFirst).data, 1e-13);
  });

  test("with isCausal an output does not depend on later positions; padded keys change nothing", () => {
    manualSeed(8);
    const layer = new nn.TransformerEncoderLayer(4, 2, { dimFeedforward: 8, batchFirst: true }).eval();
    const x = rand(1, 4, 4);
    const later = x.clone();
    later.data.fill(5, 2 * 4); // positions 2 and 3 changed
    const a = layer.forward(x, { isCausal: true }),
      b = layer.forward(later, { isCausal: true });
    expectClose(a.data.slice(0, 8), b.data.slice(0, 8), 1e-14);
    expect(a.data.slice(8)).not.toEqual(b.data.slice(8));
    const pad = tensor([[false, false, true, true]]);
    const c = layer.forward(x, { srcKeyPaddingMask: pad }),
      d = layer.forward(later, { srcKeyPaddingMask: pad });
    expectClose(c.data.slice(0, 8), d.data.slice(0, 8), 1e-14);
  });

  test("dropout acts in training mode and not in eval mode", () => {
    manualSeed(9);
    const layer = new nn.TransformerEncoderLayer(4, 2, { dimFeedforward: 8, dropout: 0.5 });
    const x = rand(3, 2, 4);
    expect(layer.forward(x).data).not.toEqual(layer.forward(x).data);
    layer.eval();
    expect(layer.forward(x).data).toEqual(layer.forward(x).data);
    expectClose(layer.forward(x).data, manual(layer, x, (t) => t.relu(), false).data, 1e-13);
  });

  test("gradients with respect to the input match finite differences to second order", () => {
    manualSeed(10);
    const layer = new nn.TransformerEncoderLayer(4, 2, { dimFeedforward: 6, dropout: 0, activation: "gelu" });
    const x = rand(3, 1, 4).requiresGrad_();
    const f = (t: Tensor) => layer.forward(t, { isCausal: true });
    expect(gradcheck(f, [x])).toBe(true);
    expect(gradgradcheck(f, [x])).toBe(true);
  });

  test("refuses an unknown activation", () => {
    expect(() => new nn.TransformerEncoderLayer(4, 2, { activation: "swish" as never })).toThrow(
      /TransformerEncoderLayer: activation should be relu\/gelu, not swish/,
    );
  });
});

describe("a language-model loss over [N, C, T] logits", () => {
  test("crossEntropy with class dim 1 equals the [N·T, C] form and skips ignoreIndex -100 in the mean", () => {
    manualSeed(11);
    const [n, t, c] = [2, 3, 5];
    const logits = rand(n, t, c); // what a model emits: [N, T, C]
    const targets = tensor([
      [1, 4, -100],
      [0, -100, 2],
    ]);
    const loss = F.crossEntropy(logits.permute(0, 2, 1), targets);
    const flat = F.crossEntropy(logits.reshape(n * t, c), targets.reshape(n * t));
    let total = 0,
      count = 0;
    for (let i = 0; i < n * t; i++) {
      const y = targets.data[i]!;
      if (y === -100) continue;
      const row = [...logits.data.slice(i * c, (i + 1) * c)];
      const m = Math.max(...row);
      total += -(row[y]! - m - Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0)));
      count++;
    }
    expect(count).toBe(4);
    expect(Math.abs(loss.item() - total / count)).toBeLessThan(1e-13);
    expect(Math.abs(flat.item() - total / count)).toBeLessThan(1e-13);
    // every target ignored: 0/0, NaN as in PyTorch
    expect(
      Number.isNaN(F.crossEntropy(logits.permute(0, 2, 1), ones([n, t], { dtype: "int32" }).mul(-100)).item()),
    ).toBe(true);
  });
});

test("the README's attention example runs as written and says what it prints", () => {
  setDefaultDtype("float32");
  try {
    manualSeed(0);
    const x = randn([2, 5, 16], { requiresGrad: true }); // [batch, tokens, features]
    const attn = new nn.MultiheadAttention(16, 4, { batchFirst: true });
    const [y, weights] = attn.forward(x, x, x, { isCausal: true }); // y [2, 5, 16], weights [2, 5, 5]
    y.pow(2).mean().backward(); // fills x.grad, attn.inProjWeight.grad, ...
    expect([weights!.shape, x.grad!.shape]).toEqual([
      [2, 5, 5],
      [2, 5, 16],
    ]);
    expect(attn.inProjWeight.grad!.shape).toEqual([48, 16]);

    const q = randn([2, 4, 5, 8], { requiresGrad: true });
    const out = F.scaledDotProductAttention(q, q, q, { attnMask: tril(ones([5, 5], { dtype: "bool" })) });
    out.sum().backward();
    expect(q.grad!.shape).toEqual([2, 4, 5, 8]);

    const layer = new nn.TransformerEncoderLayer(16, 4, { dimFeedforward: 64, batchFirst: true, normFirst: true });
    const padding = tensor([
      [false, false, false, true, true], // the last two tokens of sequence 0 are padding
      [false, false, false, false, false],
    ]);
    expect(layer.forward(x, { srcKeyPaddingMask: padding }).shape).toEqual([2, 5, 16]);
  } finally {
    setDefaultDtype("float64");
  }
});

describe("dropout inside a trainer's sample context", () => {
  afterAll(() => setSampleContext(null));

  test.each([false, true])(
    "batchFirst %s: a sample's output does not depend on the other samples of its batch",
    (batchFirst) => {
      manualSeed(12);
      const layer = new nn.TransformerEncoderLayer(4, 2, { dimFeedforward: 8, dropout: 0.3, batchFirst });
      const x = rand(3, 3, 4); // [N, L, E] or [L, N, E]
      setSampleContext({ seed: 1, step: 4, firstSample: 20 });
      const all = layer.forward(x);
      // sample 22 alone, as a worker holding only that sample would run it
      const one = batchFirst ? x.slice(0, 2) : x.slice(1, 2);
      setSampleContext({ seed: 1, step: 4, firstSample: 22 });
      const alone = layer.forward(one);
      setSampleContext(null);
      expectClose((batchFirst ? all.slice(0, 2) : all.slice(1, 2)).data, alone.data, 1e-13);
      // and dropout did act: the output differs from eval mode
      expect(alone.data).not.toEqual(layer.eval().forward(one).data);
    },
  );
});

describe("TransformerEncoder", () => {
  test("stacks copies of the layer: equal initial weights, separate tensors, PyTorch's names", () => {
    manualSeed(13);
    const layer = new nn.TransformerEncoderLayer(4, 2, { dimFeedforward: 8, batchFirst: true, normFirst: true });
    const encoder = new nn.TransformerEncoder(layer, 2, { norm: new nn.LayerNorm(4) });
    const names = [...encoder.namedParameters()].map(([k]) => k);
    expect(names.length).toBe(2 * 12 + 2);
    expect(names.slice(0, 2)).toEqual(["layers.0.selfAttn.inProjWeight", "layers.0.selfAttn.inProjBias"]);
    expect(names.slice(12, 13)).toEqual(["layers.1.selfAttn.inProjWeight"]);
    expect(names.slice(-2)).toEqual(["norm.weight", "norm.bias"]);
    const [a, b] = encoder.layers as [nn.TransformerEncoderLayer, nn.TransformerEncoderLayer];
    expect(a.linear1.weight.data).toEqual(layer.linear1.weight.data);
    expect(b.linear1.weight.data).toEqual(layer.linear1.weight.data);
    expect(a.linear1.weight).not.toBe(b.linear1.weight);
    noGrad(() => a.linear1.weight.mul_(2));
    expect(b.linear1.weight.data).toEqual(layer.linear1.weight.data);
  });

  test("runs the layers in order with the masks, then the norm", () => {
    manualSeed(14);
    const layer = new nn.TransformerEncoderLayer(4, 2, { dimFeedforward: 8, dropout: 0 });
    const norm = new nn.LayerNorm(4);
    noGrad(() => norm.weight!.copy_(rand(4)));
    const encoder = new nn.TransformerEncoder(layer, 3, { norm });
    noGrad(() => {
      for (const p of encoder.parameters()) p.add_(rand(...p.shape).mul(0.1)); // make the layers differ
    });
    const x = rand(3, 2, 4);
    const pad = tensor([
      [false, false, true],
      [false, false, false],
    ]);
    let h = x;
    for (const l of encoder.layers) h = l.forward(h, { srcKeyPaddingMask: pad, isCausal: true });
    const want = norm.forward(h);
    expectClose(encoder.forward(x, { srcKeyPaddingMask: pad, isCausal: true }).data, want.data, 0);
    const f = (t: Tensor) => encoder.forward(t, { srcKeyPaddingMask: pad });
    expect(gradcheck(f, [x.requiresGrad_()])).toBe(true);
  });

  test("refuses a layer count that is not a positive integer", () => {
    const layer = new nn.TransformerEncoderLayer(4, 2, { dimFeedforward: 8 });
    expect(() => new nn.TransformerEncoder(layer, 0)).toThrow(
      /TransformerEncoder: numLayers must be a positive integer, got 0/,
    );
  });
});
