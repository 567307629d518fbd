import { describe, expect, test } from "vitest";
import { type Tensor, manualSeed, noGrad, randn, tensor } from "../index.js";
import { AdaptiveAvgPool2d, AvgPool2d, Conv1d, Conv2d, MaxPool2d } from "./conv.js";
import * as F from "./functional.js";
import { Flatten, Linear, ReLU, Sequential } from "./layers.js";
import { BatchNorm2d, GroupNorm } from "./norm.js";

describe("Conv2d and Conv1d", () => {
  test("weight [out, in/groups, kH, kW] and bias [out], drawn from U(±1/√fan_in) as PyTorch", () => {
    manualSeed(3);
    const conv = new Conv2d(4, 6, [3, 5], { groups: 2 });
    expect(conv.weight.shape).toEqual([6, 2, 3, 5]);
    expect(conv.bias!.shape).toEqual([6]);
    // kaiming_uniform(a=√5): gain √(2/6), bound gain·√(3/fan_in) = 1/√fan_in; fan_in = 2·3·5 = 30.
    const bound = 1 / Math.sqrt(30);
    for (const t of [conv.weight, conv.bias!]) {
      const v = Array.from(t.data);
      expect(Math.max(...v.map(Math.abs))).toBeLessThanOrEqual(bound);
    }
    // 180 uniform draws reach close to both ends of the interval.
    const w = Array.from(conv.weight.data);
    expect(Math.max(...w)).toBeGreaterThan(0.9 * bound);
    expect(Math.min(...w)).toBeLessThan(-0.9 * bound);
    expect(new Conv1d(3, 2, 4).weight.shape).toEqual([2, 3, 4]);
    expect(new Conv2d(1, 2, 3, { bias: false }).bias).toBeNull();
  });

  test("forward is F.conv2d / F.conv1d with the layer's settings", () => {
    const conv = new Conv2d(2, 4, 3, { stride: [2, 1], padding: 1, dilation: [1, 2], dtype: "float64" });
    const x = randn([2, 2, 7, 6], { dtype: "float64" });
    const y = conv.forward(x);
    const ref = F.conv2d(x, conv.weight, conv.bias, { stride: [2, 1], padding: 1, dilation: [1, 2] });
    expect(y.shape).toEqual([2, 4, 4, 4]);
    expect(Array.from(y.data)).toEqual(Array.from(ref.data));
    const c1 = new Conv1d(4, 2, 3, { padding: "same", groups: 2, dtype: "float64" });
    const x1 = randn([3, 4, 9], { dtype: "float64" });
    expect(Array.from(c1.forward(x1).data)).toEqual(
      Array.from(F.conv1d(x1, c1.weight, c1.bias, { padding: "same", groups: 2 }).data),
    );
  });

  test("toString matches PyTorch's repr", () => {
    expect(new Conv2d(1, 20, 5).toString()).toBe("Conv2d(1, 20, kernel_size=(5, 5), stride=(1, 1))");
    expect(new Conv2d(16, 33, [3, 5], { stride: 2, padding: [4, 2], dilation: [3, 1] }).toString()).toBe(
      "Conv2d(16, 33, kernel_size=(3, 5), stride=(2, 2), padding=(4, 2), dilation=(3, 1))",
    );
    expect(new Conv2d(4, 4, 3, { groups: 2, bias: false, padding: "same" }).toString()).toBe(
      "Conv2d(4, 4, kernel_size=(3, 3), stride=(1, 1), padding=same, groups=2, bias=False)",
    );
    expect(new Conv1d(16, 33, 3, { stride: 2 }).toString()).toBe("Conv1d(16, 33, kernel_size=(3,), stride=(2,))");
    expect(new MaxPool2d(2).toString()).toBe(
      "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)",
    );
    expect(new MaxPool2d([3, 2], { stride: [2, 1], ceilMode: true }).toString()).toBe(
      "MaxPool2d(kernel_size=(3, 2), stride=(2, 1), padding=0, dilation=1, ceil_mode=True)",
    );
    expect(new AvgPool2d(3, { stride: 2 }).toString()).toBe("AvgPool2d(kernel_size=3, stride=2, padding=0)");
    expect(new AdaptiveAvgPool2d([5, 7]).toString()).toBe("AdaptiveAvgPool2d(output_size=(5, 7))");
    expect(new AdaptiveAvgPool2d([null, 7]).toString()).toBe("AdaptiveAvgPool2d(output_size=(None, 7))");
  });

  test("bad settings are refused with the value", () => {
    expect(() => new Conv2d(3, 4, 3, { groups: 2 })).toThrow(
      /Conv2d: inChannels \(3\) must be divisible by groups \(2\)/,
    );
    expect(() => new Conv2d(4, 3, 3, { groups: 2 })).toThrow(
      /Conv2d: outChannels \(3\) must be divisible by groups \(2\)/,
    );
    expect(() => new Conv2d(0, 3, 3)).toThrow(/Conv2d: inChannels must be a positive integer, got 0/);
    expect(() => new Conv2d(1, 3, 3, { padding: "full" as "same" })).toThrow(
      /Conv2d: invalid padding string 'full', should be one of 'valid', 'same'/,
    );
    expect(() => new Conv1d(1, 3, 3, { padding: "same", stride: 2 })).toThrow(
      /Conv1d: padding='same' is not supported for strided convolutions/,
    );
    expect(() => new Conv1d(1, 3, 0)).toThrow(/Conv1d: kernelSize must be an integer >= 1/);
    expect(() => new MaxPool2d(0)).toThrow(/MaxPool2d: kernelSize must be an integer >= 1/);
  });

  test("pool modules are their functions", () => {
    const x = randn([2, 3, 6, 6], { dtype: "float64" });
    const same = (a: Tensor, b: Tensor) => expect(Array.from(a.data)).toEqual(Array.from(b.data));
    same(new MaxPool2d(3, { stride: 2, padding: 1 }).forward(x), F.maxPool2d(x, 3, { stride: 2, padding: 1 }));
    same(new AvgPool2d(2, { ceilMode: true }).forward(x), F.avgPool2d(x, 2, { ceilMode: true }));
    same(new AdaptiveAvgPool2d([4, null]).forward(x), F.adaptiveAvgPool2d(x, [4, null]));
  });
});

describe("a small CNN", () => {
  const build = () =>
    new Sequential(
      new Conv2d(1, 4, 3, { padding: 1 }),
      new BatchNorm2d(4),
      new ReLU(),
      new MaxPool2d(2),
      new Conv2d(4, 6, 3, { groups: 2 }),
      new GroupNorm(2, 6),
      new ReLU(),
      new AdaptiveAvgPool2d(1),
      new Flatten(),
      new Linear(6, 3),
    );

  test("float32 forward and backward reach every parameter, and gradient steps lower the loss", () => {
    manualSeed(11);
    const model = build();
    const x = randn([8, 1, 8, 8]);
    const y = tensor([0, 1, 2, 0, 1, 2, 0, 1], { dtype: "int32" });
    const loss0 = F.crossEntropy(model.forward(x), y);
    expect(loss0.dtype).toBe("float32");
    loss0.backward();
    for (const [name, p] of model.namedParameters()) {
      expect(p.grad, name).not.toBeNull();
      expect(
        Array.from(p.grad!.data).some((v) => v !== 0),
        name,
      ).toBe(true);
    }
    let loss = loss0.item();
    for (let step = 0; step < 20; step++) {
      model.zeroGrad();
      const l = F.crossEntropy(model.forward(x), y);
      l.backward();
      noGrad(() => {
        for (const p of model.parameters()) p.sub_(p.grad!.mul(0.1));
      });
      loss = l.item();
    }
    expect(loss).toBeLessThan(0.8 * loss0.item());
  });

  test("float32 output agrees with the same model in float64", () => {
    manualSeed(12);
    const m32 = build();
    const x = randn([4, 1, 8, 8]);
    // The same computation in float64, layer by layer, on float64 copies of the parameters.
    const y32 = m32.forward(x);
    const params64 = new Map([...m32.namedParameters()].map(([k, p]) => [k, p.to("float64")]));
    const conv = (i: number) => m32.at(i) as Conv2d;
    const h1 = F.conv2d(x.to("float64"), params64.get("0.weight")!, params64.get("0.bias")!, { padding: 1 });
    const h2 = F.maxPool2d(
      F.relu(F.batchNorm(h1, null, null, params64.get("1.weight")!, params64.get("1.bias")!, { training: true })),
      2,
    );
    const h3 = F.conv2d(h2, params64.get("4.weight")!, params64.get("4.bias")!, { groups: conv(4).groups });
    const h4 = F.relu(F.groupNorm(h3, 2, params64.get("5.weight")!, params64.get("5.bias")!));
    const y64 = F.linear(F.adaptiveAvgPool2d(h4, 1).flatten(1), params64.get("9.weight")!, params64.get("9.bias")!);
    const worst = Math.max(...Array.from(y32.data, (v, i) => Math.abs(v - Number(y64.data[i]))));
    expect(worst).toBeLessThan(1e-4);
  });
});

// The core README's convolutional example, as written there, with its printed claims checked.
test("the README's CNN example: a backward reaches every parameter, eval() gives [4, 10]", () => {
  manualSeed(0);
  const model = new Sequential(
    new Conv2d(1, 8, 3, { padding: 1 }),
    new BatchNorm2d(8),
    new ReLU(),
    new MaxPool2d(2),
    new Conv2d(8, 16, 3, { stride: 2 }),
    new ReLU(),
    new AdaptiveAvgPool2d(1),
    new Flatten(),
    new Linear(16, 10),
  );
  const x = randn([4, 1, 28, 28]);
  const y = tensor([3, 1, 4, 1], { dtype: "int32" });
  const loss = F.crossEntropy(model.forward(x), y);
  loss.backward();
  expect(loss.item()).toBeCloseTo(Math.log(10), 0);
  expect(model.parameters().every((p) => p.grad !== null)).toBe(true);
  model.eval();
  expect(noGrad(() => model.forward(x)).shape).toEqual([4, 10]);
  expect([...model.namedBuffers()].map(([name]) => name)).toEqual([
    "1.runningMean",
    "1.runningVar",
    "1.numBatchesTracked",
  ]);
});
