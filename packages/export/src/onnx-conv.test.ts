import { type Tensor, manualSeed, nn, rand, randn } from "@threadgrad/core";
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { exportOnnx } from "./onnx.js";
import { ModelProto } from "./onnx-schema.js";

// onnxruntime runs the exported graph on the same float32 input as threadgrad's forward (eval mode).
async function expectSameOutputs(model: nn.Module, x: Tensor, sampleShape: number[]): Promise<string[]> {
  model.eval();
  const expected = model.forward(x);
  const bytes = exportOnnx(model, { sampleShape });
  const session = await ort.InferenceSession.create(bytes);
  const out = await session.run({ input: new ort.Tensor("float32", x.data as Float32Array, [...x.shape]) });
  const got = out.output!;
  expect(got.dims).toEqual(expected.shape);
  let worst = 0;
  (got.data as Float32Array).forEach((v, i) => {
    worst = Math.max(worst, Math.abs(v - expected.data[i]!));
  });
  expect(Number.isFinite(worst)).toBe(true);
  expect(worst).toBeLessThanOrEqual(1e-5);
  const decoded = ModelProto.toObject(ModelProto.decode(bytes)) as { graph: { node: { opType: string }[] } };
  return decoded.graph.node.map((n) => n.opType);
}

// Non-trivial running statistics, as after training.
function withStats<T extends nn.BatchNorm1d | nn.BatchNorm2d>(bn: T): T {
  bn.runningMean!.data.set(randn([bn.numFeatures]).data);
  bn.runningVar!.data.set(rand([bn.numFeatures]).add(0.5).data);
  bn.weight!.data.set(randn([bn.numFeatures]).data);
  bn.bias!.data.set(randn([bn.numFeatures]).data);
  return bn;
}

// The layers of the CLI's cnn preset for 1×28×28 images, as packages/workers builds them.
const cnnPreset = () =>
  new nn.Sequential(
    new nn.Unflatten(1, [1, 28, 28]),
    new nn.Conv2d(1, 32, 3, { padding: 1 }),
    new nn.ReLU(),
    new nn.MaxPool2d(2),
    new nn.Conv2d(32, 64, 3, { padding: 1 }),
    new nn.ReLU(),
    new nn.MaxPool2d(2),
    new nn.Flatten(),
    new nn.Linear(64 * 7 * 7, 128),
    new nn.ReLU(),
    new nn.Linear(128, 10),
  );

describe("exportOnnx of convolution, pooling and batch norm layers (onnxruntime within 1e-5)", () => {
  it("the cnn preset, fed flat rows [784] or shaped samples [1, 28, 28]", async () => {
    manualSeed(11);
    const model = cnnPreset();
    const flat = rand([3, 784]);
    const ops = await expectSameOutputs(model, flat, [784]);
    expect(ops).toEqual([
      "Reshape",
      "Conv",
      "Relu",
      "MaxPool",
      "Conv",
      "Relu",
      "MaxPool",
      "Reshape",
      "Gemm",
      "Relu",
      "Gemm",
    ]);
    const shaped = await expectSameOutputs(model, flat.reshape([3, 1, 28, 28]), [1, 28, 28]);
    expect(shaped[0]).toBe("Conv"); // Unflatten passes shaped input through
  });

  it("the lenet5 preset's layers (3 channels, 28×28) on flat rows", async () => {
    manualSeed(18);
    const model = new nn.Sequential(
      new nn.Unflatten(1, [3, 28, 28]),
      new nn.Conv2d(3, 6, 5, { padding: 2 }),
      new nn.ReLU(),
      new nn.MaxPool2d(2),
      new nn.Conv2d(6, 16, 5, { padding: 0 }),
      new nn.ReLU(),
      new nn.MaxPool2d(2),
      new nn.Flatten(),
      new nn.Linear(400, 120),
      new nn.ReLU(),
      new nn.Linear(120, 84),
      new nn.ReLU(),
      new nn.Linear(84, 10),
    );
    await expectSameOutputs(model, rand([2, 3 * 28 * 28]), [3 * 28 * 28]);
  });

  it("Conv2d with stride 2, dilation 2 and groups 2, 'same' padding, BatchNorm2d, AvgPool2d ceil mode", async () => {
    manualSeed(12);
    const model = new nn.Sequential(
      new nn.Conv2d(4, 6, [3, 2], { stride: 2, dilation: 2, groups: 2, padding: [1, 2] }),
      withStats(new nn.BatchNorm2d(6)),
      new nn.ReLU(),
      new nn.Conv2d(6, 6, [4, 3], { padding: "same", dilation: [1, 2], groups: 2, bias: false }),
      new nn.AvgPool2d(3, { stride: 2, ceilMode: true }),
      new nn.AvgPool2d(2, { stride: 1, padding: 1, ceilMode: true, countIncludePad: false }),
      new nn.MaxPool2d(3, { stride: 2, padding: 1, dilation: 1, ceilMode: true }),
      new nn.AdaptiveAvgPool2d(1),
      new nn.Flatten(),
      new nn.Linear(6, 3),
    );
    const ops = await expectSameOutputs(model, randn([2, 4, 13, 11]), [4, 13, 11]);
    expect(ops.slice(0, 2)).toEqual(["Conv", "BatchNormalization"]);
    expect(ops).toContain("GlobalAveragePool");
  });

  it("MaxPool2d with dilation and padding; AdaptiveAvgPool2d to a size dividing the input", async () => {
    manualSeed(13);
    const model = new nn.Sequential(
      new nn.MaxPool2d([3, 2], { stride: [1, 2], padding: [1, 1], dilation: [2, 1] }),
      new nn.AdaptiveAvgPool2d([2, null]),
    );
    const ops = await expectSameOutputs(model, randn([2, 3, 8, 6]), [3, 8, 6]);
    expect(ops).toEqual(["MaxPool", "AveragePool"]);
  });

  it("ceil mode drops a last window that would start in the right padding, as threadgrad does", async () => {
    manualSeed(16);
    // 5 + 2·1 padding, kernel 2, stride 2: ONNX's ceil_mode gives 4 windows, the 4th starting past the
    // input; threadgrad drops it, and the export says so with explicit end padding instead of ceil_mode.
    for (const pool of [
      new nn.MaxPool2d(2, { padding: 1, ceilMode: true }),
      new nn.AvgPool2d(2, { padding: 1, ceilMode: true, countIncludePad: false }),
    ]) {
      const model = new nn.Sequential(pool);
      model.eval();
      expect(model.forward(randn([1, 2, 5, 5])).shape).toEqual([1, 2, 3, 3]);
      expect(await expectSameOutputs(model, randn([2, 2, 5, 5]), [2, 5, 5])).toHaveLength(1);
    }
    // Counting padding, the last window's divisor stops at the padding: ceil_mode, where ONNX agrees on the size.
    const avg = new nn.Sequential(new nn.AvgPool2d(3, { stride: 2, ceilMode: true }));
    await expectSameOutputs(avg, randn([2, 2, 6, 7]), [2, 6, 7]);
    const padded = new nn.Sequential(new nn.AvgPool2d(2, { padding: 1, ceilMode: true }));
    expect(() => exportOnnx(padded, { sampleShape: [2, 5, 5] })).toThrow(
      "exportOnnx: module '0' (AvgPool2d) in ceil mode drops a last window that starts in the padding of " +
        "[batch, 2, 5, 5], which ONNX's ceil_mode keeps",
    );
  });

  it("Conv1d ('same', stride, groups) with BatchNorm1d on [N, C, L] and on [N, C]", async () => {
    manualSeed(14);
    const model = new nn.Sequential(
      new nn.Conv1d(2, 4, 4, { padding: "same", dilation: 3 }),
      withStats(new nn.BatchNorm1d(4)),
      new nn.Conv1d(4, 6, 3, { stride: 2, padding: 1, groups: 2 }),
      new nn.Flatten(),
      new nn.Linear(6 * 5, 5),
      withStats(new nn.BatchNorm1d(5, { eps: 1e-3 })),
    );
    await expectSameOutputs(model, randn([3, 2, 10]), [2, 10]);
  });

  it("GroupNorm (opset 18's GroupNormalization, written in opset 17) on [N, C, H, W] and [N, C, L]", async () => {
    manualSeed(17);
    const gn = new nn.GroupNorm(3, 6, 1e-3);
    gn.weight!.data.set(randn([6]).data);
    gn.bias!.data.set(randn([6]).data);
    const ops = await expectSameOutputs(new nn.Sequential(gn), randn([2, 6, 4, 5]).mul(3).add(1), [6, 4, 5]);
    expect(ops).toEqual(["Reshape", "InstanceNormalization", "Reshape", "Mul", "Add"]);
    const plain = new nn.Sequential(new nn.Conv1d(2, 4, 3), new nn.GroupNorm(2, 4, 1e-5, { affine: false }));
    await expectSameOutputs(plain, randn([3, 2, 9]), [2, 9]);
  });

  it("Unflatten in the middle of a model, and BatchNorm without affine", async () => {
    manualSeed(15);
    const bn = new nn.BatchNorm2d(2, { affine: false });
    bn.runningMean!.data.set([0.5, -1]);
    bn.runningVar!.data.set([2, 0.25]);
    const model = new nn.Sequential(new nn.Linear(5, 2 * 3 * 4), new nn.Unflatten(1, [2, 3, 4]), bn, new nn.Flatten());
    const ops = await expectSameOutputs(model, randn([4, 5]), [5]);
    expect(ops).toEqual(["Gemm", "Reshape", "BatchNormalization", "Reshape"]);
  });
});

describe("exportOnnx refuses what it cannot map, naming the layer", () => {
  it("GroupNorm on the wrong channels, uneven adaptive pooling, batch norm without running stats, bad shapes", () => {
    expect(() => exportOnnx(new nn.Sequential(new nn.GroupNorm(2, 4)), { sampleShape: [6, 3, 3] })).toThrow(
      "exportOnnx: module '0' (GroupNorm) expects [batch, 4, ...], got [batch, 6, 3, 3]",
    );
    expect(() => exportOnnx(new nn.Sequential(new nn.AdaptiveAvgPool2d(3)), { sampleShape: [2, 7, 6] })).toThrow(
      "exportOnnx: module '0' (AdaptiveAvgPool2d) pools 7×6 to 3×3",
    );
    const bn = new nn.BatchNorm2d(2, { trackRunningStats: false });
    expect(() => exportOnnx(new nn.Sequential(bn), { sampleShape: [2, 3, 3] })).toThrow(
      "exportOnnx: module '0' (BatchNorm2d) keeps no running statistics",
    );
    expect(() => exportOnnx(new nn.Sequential(new nn.Conv2d(3, 4, 3)), { sampleShape: [2, 8, 8] })).toThrow(
      "exportOnnx: module '0' (Conv2d) expects [batch, 3, H, W], got shape [batch, 2, 8, 8]",
    );
    expect(() => exportOnnx(new nn.Sequential(new nn.Unflatten(1, [2, 5])), { sampleShape: [9] })).toThrow(
      "exportOnnx: module '0' (Unflatten) cannot split dim 1 of [batch, 9] into [2, 5]",
    );
    expect(() => exportOnnx(new nn.Sequential(new nn.MaxPool2d(2)), { sampleShape: [4, 4] })).toThrow(
      "exportOnnx: module '0' (MaxPool2d) expects [batch, C, H, W], got [batch, 4, 4]",
    );
  });
});
