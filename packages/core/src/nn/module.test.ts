import { describe, expect, test } from "vitest";
import { type Tensor, manualSeed, ones, tensor, zeros } from "../index.js";
import { Module, Parameter, isParameter } from "./module.js";
import { Dropout, LayerNorm, Linear, ReLU, Sequential } from "./layers.js";

class Block extends Module {
  fc = new Linear(3, 2);
  norm = new LayerNorm(2);
  scale = Parameter(ones([2]));
  constructor() {
    super();
    this.registerBuffer("count", zeros([1]));
  }
  forward(x: Tensor): Tensor {
    return this.norm.forward(this.fc.forward(x)).mul(this.scale);
  }
}

class Net extends Module {
  embed = Parameter(zeros([4, 3]));
  blocks = [new Block(), new Block()];
  head = new Sequential(new Linear(2, 5), new ReLU(), new Linear(5, 1));
  drop = new Dropout(0.1);
  notAParameter = zeros([2]);
  forward(x: Tensor): Tensor {
    return this.head.forward(this.blocks[1]!.forward(this.blocks[0]!.forward(x)));
  }
}

const blockKeys = (p: string) => [`${p}.scale`, `${p}.fc.weight`, `${p}.fc.bias`, `${p}.norm.weight`, `${p}.norm.bias`];
const NET_PARAMS = [
  "embed",
  ...blockKeys("blocks.0"),
  ...blockKeys("blocks.1"),
  "head.0.weight",
  "head.0.bias",
  "head.2.weight",
  "head.2.bias",
];

describe("parameter discovery", () => {
  test("Sequential names parameters by layer index and skips layers without any", () => {
    const s = new Sequential(new Linear(4, 3), new ReLU(), new Linear(3, 2));
    expect([...s.namedParameters()].map(([k]) => k)).toEqual(["0.weight", "0.bias", "2.weight", "2.bias"]);
    expect(s.parameters()).toEqual([
      (s.at(0) as Linear).weight,
      (s.at(0) as Linear).bias,
      (s.at(2) as Linear).weight,
      (s.at(2) as Linear).bias,
    ]);
  });
  test("a subclass registers parameter fields, child modules and arrays of modules in field order", () => {
    const net = new Net();
    expect([...net.namedParameters()].map(([k]) => k)).toEqual(NET_PARAMS);
    expect(net.parameters().every(isParameter)).toBe(true);
    expect(net.parameters()).not.toContain(net.notAParameter);
  });
  test("a subclass's own parameters come before those of its children", () => {
    // Parameters are listed module by module, own fields first, as PyTorch does.
    expect([...new Block().namedParameters()].map(([k]) => k)).toEqual([
      "scale",
      "fc.weight",
      "fc.bias",
      "norm.weight",
      "norm.bias",
    ]);
  });
  test("a parameter shared by two modules is listed once, under its first name", () => {
    const a = new Linear(2, 2),
      b = new Linear(2, 2);
    b.weight = a.weight;
    const s = new Sequential(a, b);
    expect([...s.namedParameters()].map(([k]) => k)).toEqual(["0.weight", "0.bias", "1.bias"]);
  });
  test("namedModules lists every module with its dotted name", () => {
    const names = [...new Net().namedModules()].map(([k, m]) => `${k}:${m.constructor.name}`);
    expect(names).toEqual([
      ":Net",
      "blocks.0:Block",
      "blocks.0.fc:Linear",
      "blocks.0.norm:LayerNorm",
      "blocks.1:Block",
      "blocks.1.fc:Linear",
      "blocks.1.norm:LayerNorm",
      "head:Sequential",
      "head.0:Linear",
      "head.1:ReLU",
      "head.2:Linear",
      "drop:Dropout",
    ]);
  });
});

describe("modes and gradients", () => {
  test("train() and eval() set the mode of every descendant", () => {
    const net = new Net();
    net.eval();
    expect([...net.namedModules()].every(([, m]) => !m.training)).toBe(true);
    net.train();
    expect([...net.namedModules()].every(([, m]) => m.training)).toBe(true);
    expect(net.train(false)).toBe(net);
    expect(net.drop.training).toBe(false);
  });
  test("zeroGrad drops gradients by default and zeroes them with setToNone false", () => {
    const lin = new Linear(3, 2);
    lin
      .forward(ones([4, 3]))
      .sum()
      .backward();
    const g = lin.weight.grad!;
    lin.zeroGrad(false);
    expect(lin.weight.grad).toBe(g);
    expect(Array.from(g.data)).toEqual([0, 0, 0, 0, 0, 0]);
    lin
      .forward(ones([4, 3]))
      .sum()
      .backward();
    lin.zeroGrad();
    expect(lin.weight.grad).toBeNull();
    expect(lin.bias!.grad).toBeNull();
  });
  test("zeroGrad zeroes a bound gradient buffer in place instead of dropping it", () => {
    const lin = new Linear(3, 2);
    const buf = new Float32Array(6);
    lin.weight.bindGrad(buf);
    lin
      .forward(ones([1, 3]))
      .sum()
      .backward();
    expect(Array.from(buf)).toEqual([1, 1, 1, 1, 1, 1]);
    for (const setToNone of [true, false]) {
      lin
        .forward(ones([1, 3]))
        .sum()
        .backward();
      lin.zeroGrad(setToNone);
      expect(lin.weight.gradIsBound).toBe(true);
      expect(lin.weight.grad!.data).toBe(buf);
      expect(Array.from(buf)).toEqual([0, 0, 0, 0, 0, 0]);
    }
    lin
      .forward(ones([1, 3]))
      .sum()
      .backward();
    expect(Array.from(buf)).toEqual([1, 1, 1, 1, 1, 1]);
  });
});

describe("stateDict and loadStateDict", () => {
  test("stateDict holds parameters then buffers by dotted name", () => {
    const keys = Object.keys(new Net().stateDict());
    expect(keys).toEqual([...NET_PARAMS, "blocks.0.count", "blocks.1.count"]);
  });
  test("a registered buffer is a field that is not a parameter", () => {
    const b = new Block();
    expect(b.stateDict().count).toBeDefined();
    expect([...b.namedParameters()].map(([k]) => k)).not.toContain("count");
    expect(Array.from((b as unknown as { count: Tensor }).count.data)).toEqual([0]);
  });
  test("assigning a new tensor to a buffer field replaces the buffer in stateDict", () => {
    const b = new Block();
    (b as unknown as { count: Tensor }).count = tensor([5], { dtype: "float32" });
    expect(Array.from(b.stateDict().count!.data)).toEqual([5]);
    b.loadStateDict({ ...b.stateDict(), count: tensor([8], { dtype: "float32" }) });
    expect(Array.from((b as unknown as { count: Tensor }).count.data)).toEqual([8]);
  });
  test("loadStateDict copies the values, sharing no storage with the source", () => {
    manualSeed(1);
    const src = new Net(),
      dst = new Net();
    src.blocks[0]!.stateDict().count!.data[0] = 7;
    const state = src.stateDict();
    expect(dst.loadStateDict(state)).toEqual({ missingKeys: [], unexpectedKeys: [] });
    const out = dst.stateDict();
    for (const [k, t] of Object.entries(state)) {
      expect(Array.from(out[k]!.data), k).toEqual(Array.from(t.data));
      expect(out[k]!.data.buffer, k).not.toBe(t.data.buffer);
    }
    const before = dst.head.at(0) as Linear;
    const w0 = before.weight.data[0]!;
    (src.head.at(0) as Linear).weight.data[0] = w0 + 1;
    expect(before.weight.data[0]).toBe(w0);
    expect(before.weight.requiresGrad).toBe(true);
    expect(before.weight.isLeaf).toBe(true);
  });
  test("stateDict tensors share storage with the module, outside the graph", () => {
    const lin = new Linear(2, 2);
    const w = lin.stateDict().weight!;
    expect(w.data).toBe(lin.weight.data);
    expect(w.requiresGrad).toBe(false);
  });
  test("missing and unexpected keys are errors that list them", () => {
    const lin = new Linear(2, 2);
    const { bias: _bias, ...noBias } = lin.stateDict();
    expect(() => lin.loadStateDict(noBias)).toThrow(
      /loadStateDict: error\(s\) in loading state dict for Linear:\n\tMissing key\(s\) in state dict: "bias"\./,
    );
    expect(() => lin.loadStateDict({ ...lin.stateDict(), extra: zeros([1]) })).toThrow(
      /Unexpected key\(s\) in state dict: "extra"\./,
    );
  });
  test("a size mismatch names the key and both shapes, even when not strict", () => {
    const lin = new Linear(2, 3);
    const state = { ...lin.stateDict(), weight: zeros([3, 4]) };
    const msg = new RegExp(
      "size mismatch for weight: copying a param with shape \\[3, 4\\] from the state dict, " +
        "the shape in the current model is \\[3, 2\\]",
    );
    expect(() => lin.loadStateDict(state)).toThrow(msg);
    expect(() => lin.loadStateDict(state, false)).toThrow(msg);
  });
  test("strict false loads the matching keys and returns the missing and unexpected ones", () => {
    const lin = new Linear(2, 2);
    const res = lin.loadStateDict(
      {
        weight: tensor(
          [
            [1, 2],
            [3, 4],
          ],
          { dtype: "float32" },
        ),
        other: zeros([1]),
      },
      false,
    );
    expect(res).toEqual({ missingKeys: ["bias"], unexpectedKeys: ["other"] });
    expect(Array.from(lin.weight.data)).toEqual([1, 2, 3, 4]);
  });
  test("a failed load leaves the module unchanged", () => {
    const lin = new Linear(2, 2);
    const before = Array.from(lin.weight.data);
    expect(() => lin.loadStateDict({ weight: ones([2, 2]), bias: ones([3]) })).toThrow(/size mismatch for bias/);
    expect(Array.from(lin.weight.data)).toEqual(before);
  });
});

describe("toString", () => {
  test("a Sequential prints like PyTorch", () => {
    expect(new Sequential(new Linear(4, 3), new ReLU()).toString()).toBe(
      "Sequential(\n  (0): Linear(in_features=4, out_features=3, bias=True)\n  (1): ReLU()\n)",
    );
  });
  test("nested modules are indented two spaces per level", () => {
    class Outer extends Module {
      body = new Sequential(new Linear(2, 2, { bias: false }), new Dropout(0.25));
      forward(x: Tensor): Tensor {
        return this.body.forward(x);
      }
    }
    expect(new Outer().toString()).toBe(
      "Outer(\n  (body): Sequential(\n    (0): Linear(in_features=2, out_features=2, bias=False)\n" +
        "    (1): Dropout(p=0.25, inplace=False)\n  )\n)",
    );
  });
  test("a module with both settings and children prints the settings on their own line", () => {
    class Cell extends Module {
      fc = new Linear(1, 1);
      override extraRepr(): string {
        return "hidden=1";
      }
      forward(x: Tensor): Tensor {
        return this.fc.forward(x);
      }
    }
    expect(new Cell().toString()).toBe(
      "Cell(\n  hidden=1\n  (fc): Linear(in_features=1, out_features=1, bias=True)\n)",
    );
  });
});
