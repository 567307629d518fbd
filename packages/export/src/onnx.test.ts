import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Tensor, manualSeed, nn, randint, randn, tensor } from "@threadgrad/core";
import * as ort from "onnxruntime-node";
import { afterEach, describe, expect, it } from "vitest";
import { ONNX_IR_VERSION, ONNX_OPSET, exportOnnx, saveOnnx } from "./onnx.js";
import { ModelProto } from "./onnx-schema.js";

// onnxruntime runs the exported graph on the same inputs as threadgrad's forward (in eval mode).
async function runOnnx(bytes: Uint8Array, x: Tensor, inputDtype?: "float32" | "int32" | "int64") {
  const dtype = inputDtype ?? (x.dtype === "int32" ? "int32" : "float32");
  const session = await ort.InferenceSession.create(bytes);
  const data = dtype === "int64" ? BigInt64Array.from(x.data, (v) => BigInt(v)) : x.data;
  const out = await session.run({ [session.inputNames[0]!]: new ort.Tensor(dtype, data, [...x.shape]) });
  return out[session.outputNames[0]!]!;
}

async function expectSameOutputs(model: nn.Module, x: Tensor, opts: Parameters<typeof exportOnnx>[1]) {
  model.eval();
  const expected = model.forward(x);
  const got = await runOnnx(exportOnnx(model, opts), x, opts.inputDtype);
  expect(got.dims).toEqual(expected.shape);
  let worst = 0;
  (got.data as Float32Array).forEach((v, i) => {
    worst = Math.max(worst, Math.abs(v - expected.data[i]!));
  });
  expect(worst).toBeLessThanOrEqual(1e-5);
  expect(Number.isFinite(worst)).toBe(true);
}

type Decoded = {
  irVersion: number;
  opsetImport: { domain?: string; version: number }[];
  graph: {
    node: { opType: string }[];
    initializer: { name: string; dims: number[]; dataType: number }[];
    input: { name: string; type: { tensorType: { elemType: number; shape: { dim: object[] } } } }[];
    output: { name: string; type: { tensorType: { elemType: number; shape: { dim: object[] } } } }[];
  };
};
const decode = (bytes: Uint8Array) =>
  ModelProto.toObject(ModelProto.decode(bytes), { longs: Number, defaults: false }) as Decoded;

describe("exportOnnx matches threadgrad's forward in onnxruntime (within 1e-5)", () => {
  const activations: [string, () => nn.Module][] = [
    ["ReLU", () => new nn.ReLU()],
    ["Tanh", () => new nn.Tanh()],
    ["Sigmoid", () => new nn.Sigmoid()],
    ["GELU", () => new nn.GELU()],
    ["GELU tanh", () => new nn.GELU("tanh")],
    ["Softplus", () => new nn.Softplus()],
    ["Softplus beta 2 threshold 1", () => new nn.Softplus(2, 1)],
  ];
  for (const [name, act] of activations) {
    it(`an MLP with ${name} and Dropout, for batches of 1 and 7`, async () => {
      manualSeed(1);
      const model = new nn.Sequential(new nn.Linear(6, 16), act(), new nn.Dropout(0.3), new nn.Linear(16, 4));
      for (const batch of [1, 7]) await expectSameOutputs(model, randn([batch, 6]).mul(2), { sampleShape: [6] });
    });
  }

  it("inputScaling and outputScaling: raw values in, target units out", async () => {
    manualSeed(4);
    const model = new nn.Sequential(new nn.Linear(3, 8), new nn.ReLU(), new nn.Linear(8, 2));
    model.eval();
    const mean = [40000, 0.5, -3],
      std = [9000, 0.25, 2];
    const outMean = [2e5, 1],
      outStd = [5e4, 0.5];
    const raw = randn([5, 3]).mul(tensor(std)).add(tensor(mean));
    const bytes = exportOnnx(model, {
      sampleShape: [3],
      inputScaling: { mean, std },
      outputScaling: { mean: outMean, std: outStd },
    });
    expect(decode(bytes).graph.node.map((n) => n.opType)).toEqual(["Sub", "Div", "Gemm", "Relu", "Gemm", "Mul", "Add"]);
    const got = (await runOnnx(bytes, raw)).data as Float32Array;
    const scaled = model
      .forward(raw.sub(tensor(mean)).div(tensor(std)))
      .mul(tensor(outStd))
      .add(tensor(outMean));
    scaled.data.forEach((v, i) => {
      expect(Math.abs(got[i]! - v)).toBeLessThanOrEqual(1e-5 * Math.abs(v) + 1e-5);
    });
    expect(() => exportOnnx(model, { sampleShape: [3], inputScaling: { mean, std: [1, 0, 1] } })).toThrow(
      "exportOnnx: inputScaling needs mean and std of 3 finite " +
        "numbers each (std > 0), got mean of 3 and std of 3 values",
    );
    expect(() => exportOnnx(model, { sampleShape: [3], outputScaling: { mean: [1], std: [1] } })).toThrow(
      "exportOnnx: outputScaling needs mean and std of 2 finite " +
        "numbers each (std > 0), got mean of 1 and std of 1 values",
    );
  });

  it("LayerNorm over one and two dims, with and without affine, after a Linear on 3-D input", async () => {
    manualSeed(2);
    const ln = new nn.LayerNorm([3, 5]);
    ln.weight!.data.set(randn([3, 5]).data);
    ln.bias!.data.set(randn([3, 5]).data);
    const model = new nn.Sequential(
      new nn.Linear(4, 5, { bias: false }),
      ln,
      new nn.Tanh(),
      new nn.Linear(5, 5),
      new nn.LayerNorm(5, 1e-3, false),
      new nn.Flatten(),
      new nn.Linear(15, 2),
    );
    await expectSameOutputs(model, randn([6, 3, 4]), { sampleShape: [3, 4] });
  });

  it("Embedding → Flatten → Linear on int32 and int64 token ids", async () => {
    manualSeed(3);
    const model = new nn.Sequential(new nn.Embedding(11, 4, 0), new nn.Flatten(), new nn.Linear(20, 3));
    const ids = randint(0, 11, [8, 5], { dtype: "int32" });
    await expectSameOutputs(model, ids, { sampleShape: [5] });
    await expectSameOutputs(model, ids, { sampleShape: [5], inputDtype: "int64" });
    expect(decode(exportOnnx(model, { sampleShape: [5] })).graph.input[0]!.type.tensorType.elemType).toBe(6);
  });

  it("Flatten of inner dims and of the batch dim", async () => {
    manualSeed(4);
    await expectSameOutputs(new nn.Sequential(new nn.Flatten(2, 3), new nn.Linear(12, 2)), randn([3, 2, 3, 4]), {
      sampleShape: [2, 3, 4],
    });
    await expectSameOutputs(new nn.Sequential(new nn.Flatten(0, 1), new nn.ReLU()), randn([3, 2, 4]), {
      sampleShape: [2, 4],
    });
  });

  it("a weight tied between Embedding and Linear is one initializer under its state dict name", async () => {
    manualSeed(6);
    const embed = new nn.Embedding(5, 4);
    const out = new nn.Linear(4, 5);
    out.weight = embed.weight;
    const model = new nn.Sequential(embed, new nn.Tanh(), out);
    const bytes = exportOnnx(model, { sampleShape: [3] });
    expect(decode(bytes).graph.initializer.map((t) => t.name)).toEqual(Object.keys(model.stateDict()));
    expect(Object.keys(model.stateDict())).toEqual(["0.weight", "2.bias"]);
    await expectSameOutputs(model, randint(0, 5, [2, 3], { dtype: "int32" }), { sampleShape: [3] });
  });

  it("nested Sequentials and a float64 model (weights rounded to float32)", async () => {
    manualSeed(5);
    const inner = new nn.Sequential(new nn.Linear(3, 3, { dtype: "float64" }), new nn.ReLU());
    const model = new nn.Sequential(inner, new nn.Identity(), new nn.Linear(3, 2, { dtype: "float64" }));
    const bytes = exportOnnx(model, { sampleShape: [3] });
    expect(decode(bytes).graph.initializer.map((t) => t.name)).toEqual([
      "0.0.weight",
      "0.0.bias",
      "2.weight",
      "2.bias",
    ]);
    const x = randn([4, 3], { dtype: "float64" });
    const got = await runOnnx(bytes, x.to("float32"));
    const expected = model.forward(x).data;
    for (const [i, v] of (got.data as Float32Array).entries())
      expect(Math.abs(v - expected[i]!)).toBeLessThanOrEqual(1e-5);
  });
});

describe("the exported file", () => {
  it("declares IR version 8 and opset 17, a free batch dim, and state dict names for the weights", () => {
    const model = new nn.Sequential(new nn.Linear(4, 8), new nn.ReLU(), new nn.Linear(8, 3));
    const m = decode(exportOnnx(model, { sampleShape: [4], inputName: "pixels", outputName: "logits" }));
    expect(m.irVersion).toBe(ONNX_IR_VERSION);
    expect(m.irVersion).toBeLessThanOrEqual(10);
    expect(m.opsetImport).toEqual([{ domain: "", version: ONNX_OPSET }]);
    expect(ONNX_OPSET).toBeLessThanOrEqual(21);
    expect(m.graph.input[0]!.name).toBe("pixels");
    expect(m.graph.input[0]!.type.tensorType).toEqual({
      elemType: 1,
      shape: { dim: [{ dimParam: "batch" }, { dimValue: 4 }] },
    });
    expect(m.graph.output[0]!.name).toBe("logits");
    expect(m.graph.output[0]!.type.tensorType.shape.dim).toEqual([{ dimParam: "batch" }, { dimValue: 3 }]);
    expect(m.graph.node.map((n) => n.opType)).toEqual(["Gemm", "Relu", "Gemm"]);
    expect(m.graph.initializer.map((t) => [t.name, t.dims])).toEqual([
      ["0.weight", [8, 4]],
      ["0.bias", [8]],
      ["2.weight", [3, 8]],
      ["2.bias", [3]],
    ]);
  });

  it("a model of pass-through layers still has its output name (an Identity node)", async () => {
    const bytes = exportOnnx(new nn.Sequential(new nn.Dropout()), { sampleShape: [2] });
    expect(decode(bytes).graph.node.map((n) => n.opType)).toEqual(["Identity"]);
    const x = randn([3, 2]);
    expect(Array.from((await runOnnx(bytes, x)).data as Float32Array)).toEqual(Array.from(x.data));
  });
});

describe("exportOnnx errors", () => {
  class Doubler extends nn.Module {
    forward(x: Tensor): Tensor {
      return x.mul(2);
    }
  }
  class Net extends nn.Module {
    fc = new nn.Linear(2, 2);
    forward(x: Tensor): Tensor {
      return this.fc.forward(x).relu();
    }
  }
  class ScaledLinear extends nn.Linear {
    override forward(x: Tensor): Tensor {
      return super.forward(x).mul(3);
    }
  }

  it("names a module it has no mapping for, inside a Sequential or at the root", () => {
    const seq = new nn.Sequential(new nn.Linear(2, 2), new nn.Sequential(new nn.ReLU(), new Doubler()));
    expect(() => exportOnnx(seq, { sampleShape: [2] })).toThrow(
      /exportOnnx: module '1\.1' \(Doubler\) has no ONNX mapping; supported layers: Sequential, Linear, ReLU/,
    );
    expect(() => exportOnnx(new Net(), { sampleShape: [2] })).toThrow(/the model \(Net\) has no ONNX mapping/);
    expect(() => exportOnnx(new nn.Sequential(new ScaledLinear(2, 2)), { sampleShape: [2] })).toThrow(
      /module '0' \(ScaledLinear\) has no ONNX mapping/,
    );
  });

  it("suspects a second copy of core when a class has a supported layer's name", () => {
    const other = {
      Linear: class extends nn.Module {
        forward(x: Tensor): Tensor {
          return x;
        }
      },
    };
    expect(() => exportOnnx(new nn.Sequential(new other.Linear()), { sampleShape: [2] })).toThrow(
      "exportOnnx: module '0' (Linear) has no ONNX mapping " +
        "(a class of that name from another copy of @threadgrad/core?)",
    );
  });

  it("names the layer and the shape when the sample shape does not fit", () => {
    const model = new nn.Sequential(new nn.Linear(4, 2));
    expect(() => exportOnnx(model, { sampleShape: [5] })).toThrow(
      "exportOnnx: module '0' (Linear) expects 4 input features, got shape [batch, 5]",
    );
    expect(() => exportOnnx(new nn.Sequential(new nn.Flatten(), new nn.Embedding(3, 2)), { sampleShape: [2] })).toThrow(
      "exportOnnx: module '1' (Embedding) needs int32 or int64 token ids, got float32 (set inputDtype)",
    );
    expect(() => exportOnnx(new nn.LayerNorm(3), { sampleShape: [4] })).toThrow(
      "exportOnnx: module '<model>' (LayerNorm) normalizes over [3], got shape [batch, 4]",
    );
    expect(() => exportOnnx(new nn.Flatten(1, 3), { sampleShape: [4] })).toThrow(
      "exportOnnx: module '<model>' (Flatten) cannot flatten dims 1..3 of shape [batch, 4]",
    );
  });

  it("rejects a bad sample shape, input dtype or names", () => {
    const model = new nn.Linear(2, 2);
    expect(() => exportOnnx(model, { sampleShape: [0] })).toThrow(
      "exportOnnx: sampleShape must be a list of positive integers, got [0]",
    );
    expect(() => exportOnnx(model, { sampleShape: 4 as unknown as number[] })).toThrow(
      "exportOnnx: sampleShape must be a list of positive integers, got 4",
    );
    expect(() => exportOnnx(model, { sampleShape: [2], inputDtype: "float64" as "float32" })).toThrow(
      "exportOnnx: inputDtype must be float32, int32 or int64, got 'float64'",
    );
    expect(() => exportOnnx(model, { sampleShape: [2], inputName: "x", outputName: "x" })).toThrow(
      "exportOnnx: input and output names must be distinct and non-empty, got 'x', 'x'",
    );
  });
});

describe("saveOnnx", () => {
  let dir = "";
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("writes a file onnxruntime loads, and keeps an existing file unless overwrite is set", async () => {
    dir = mkdtempSync(join(tmpdir(), "threadgrad-onnx-"));
    const path = join(dir, "model.onnx");
    const model = new nn.Sequential(new nn.Linear(3, 2));
    writeFileSync(path, "previous");
    expect(() => saveOnnx(model, path, { sampleShape: [3] })).toThrow(
      `saveOnnx: ${path} already exists; pass overwrite: true to replace it`,
    );
    expect(readFileSync(path, "utf8")).toBe("previous");
    saveOnnx(model, path, { sampleShape: [3], overwrite: true });
    expect(readdirSync(dir)).toEqual(["model.onnx"]);
    const session = await ort.InferenceSession.create(path);
    expect(session.inputNames).toEqual(["input"]);
    expect(session.outputNames).toEqual(["output"]);
  });
});
