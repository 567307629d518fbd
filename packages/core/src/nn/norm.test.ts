import { describe, expect, test } from "vitest";
import { type Tensor, randn, tensor } from "../index.js";
import { Conv2d } from "./conv.js";
import * as F from "./functional.js";
import { ReLU, Sequential } from "./layers.js";
import { BatchNorm1d, BatchNorm2d, GroupNorm } from "./norm.js";

const near = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-12) => {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!)).toBeLessThanOrEqual(tol);
};
const f64 = { dtype: "float64" as const };

describe("BatchNorm1d and BatchNorm2d", () => {
  test("training updates runningMean, runningVar (unbiased) and numBatchesTracked", () => {
    const bn = new BatchNorm1d(2, f64);
    // Channel 0: 1, 2, 3, 4 (mean 2.5, unbiased variance 5/3); channel 1: 0, 0, 4, 4 (mean 2, 16/3).
    const x = tensor(
      [
        [1, 0],
        [2, 0],
        [3, 4],
        [4, 4],
      ],
      f64,
    );
    bn.forward(x);
    near(bn.runningMean!.data, [0.25, 0.2]);
    near(bn.runningVar!.data, [0.9 + 1 / 6, 0.9 + 1.6 / 3]);
    expect(bn.numBatchesTracked!.item()).toBe(1);
    bn.forward(x);
    near(bn.runningMean!.data, [0.9 * 0.25 + 0.25, 0.9 * 0.2 + 0.2]);
    expect(bn.numBatchesTracked!.item()).toBe(2);
  });

  test("eval() normalises with the running statistics and leaves them alone", () => {
    const bn = new BatchNorm2d(3, f64);
    const x = randn([4, 3, 2, 2], f64);
    bn.forward(x);
    const mean = Array.from(bn.runningMean!.data),
      variance = Array.from(bn.runningVar!.data);
    bn.eval();
    const y = bn.forward(x);
    near(bn.runningMean!.data, mean);
    expect(bn.numBatchesTracked!.item()).toBe(1);
    near(y.data, F.batchNorm(x, bn.runningMean, bn.runningVar, bn.weight, bn.bias).data);
    // Not the batch statistics: the running ones are a tenth of the way there.
    const batch = F.batchNorm(x, null, null, null, null, { training: true });
    expect(Math.abs(Number(y.data[0]) - Number(batch.data[0]))).toBeGreaterThan(1e-3);
    near(bn.runningVar!.data, variance);
  });

  test("momentum null keeps a cumulative average of the batch statistics", () => {
    const bn = new BatchNorm1d(1, { ...f64, momentum: null });
    bn.forward(tensor([[1], [3]], f64)); // mean 2
    bn.forward(tensor([[6], [8]], f64)); // mean 7
    bn.forward(tensor([[0], [0]], f64)); // mean 0
    near(bn.runningMean!.data, [3]);
    expect(bn.toString()).toBe("BatchNorm1d(1, eps=1e-05, momentum=None, affine=True, track_running_stats=True)");
  });

  test("without running statistics there are no buffers and evaluation uses the batch", () => {
    const bn = new BatchNorm2d(2, { ...f64, trackRunningStats: false, affine: false });
    expect([...bn.namedBuffers()]).toEqual([]);
    expect(bn.parameters()).toEqual([]);
    bn.eval();
    const x = randn([3, 2, 2, 2], f64);
    near(bn.forward(x).data, F.batchNorm(x, null, null, null, null, { training: true }).data);
  });

  test("parameters and buffers are listed apart; stateDict holds both in PyTorch's order", () => {
    const model = new Sequential(new Conv2d(1, 2, 3), new BatchNorm2d(2), new ReLU());
    expect([...model.namedParameters()].map(([k]) => k)).toEqual(["0.weight", "0.bias", "1.weight", "1.bias"]);
    expect([...model.namedBuffers()].map(([k]) => k)).toEqual(["1.runningMean", "1.runningVar", "1.numBatchesTracked"]);
    expect(Object.keys(model.stateDict())).toEqual([
      "0.weight",
      "0.bias",
      "1.weight",
      "1.bias",
      "1.runningMean",
      "1.runningVar",
      "1.numBatchesTracked",
    ]);
    expect(model.stateDict()["1.numBatchesTracked"]!.dtype).toBe("int32");
  });

  test("loadStateDict restores the buffers, and strict loading names a missing one", () => {
    const a = new BatchNorm2d(2);
    a.forward(randn([4, 2, 3, 3]));
    const b = new BatchNorm2d(2);
    b.loadStateDict(a.stateDict());
    expect(Array.from(b.runningMean!.data)).toEqual(Array.from(a.runningMean!.data));
    expect(Array.from(b.runningVar!.data)).toEqual(Array.from(a.runningVar!.data));
    expect(b.numBatchesTracked!.item()).toBe(1);
    const { runningVar: _, ...partial } = a.stateDict();
    expect(() => new BatchNorm2d(2).loadStateDict(partial)).toThrow(/Missing key\(s\) in state dict: "runningVar"/);
  });

  test("train() and eval() reach a BatchNorm inside a container", () => {
    const model = new Sequential(new BatchNorm1d(2, f64));
    const bn = model.at(0) as BatchNorm1d;
    model.eval();
    expect(bn.training).toBe(false);
    model.forward(randn([3, 2], f64));
    expect(bn.numBatchesTracked!.item()).toBe(0);
    model.train();
    model.forward(randn([3, 2], f64));
    expect(bn.numBatchesTracked!.item()).toBe(1);
  });

  test("inputs of the wrong rank or channel count are refused", () => {
    expect(() => new BatchNorm1d(2).forward(randn([2, 2, 2, 2]))).toThrow(
      /BatchNorm1d: expected 2D or 3D input \(got 4D input\)/,
    );
    expect(() => new BatchNorm2d(2).forward(randn([2, 2, 2]))).toThrow(
      /BatchNorm2d: expected 4D input \(got 3D input\)/,
    );
    expect(() => new BatchNorm2d(3).forward(randn([2, 2, 2, 2]))).toThrow(
      /BatchNorm2d: expected 3 channels in dim 1, got input \[2, 2, 2, 2\]/,
    );
    expect(() => new BatchNorm1d(2).forward(randn([1, 2]))).toThrow(
      /expected more than 1 value per channel when training/,
    );
    expect(() => new BatchNorm1d(2, { momentum: 1.5 })).toThrow(
      /BatchNorm1d: momentum must be in \[0, 1\] or null, got 1.5/,
    );
    expect(new BatchNorm2d(100).toString()).toBe(
      "BatchNorm2d(100, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)",
    );
  });
});

describe("GroupNorm", () => {
  test("is F.groupNorm with ones and zeros as the affine map, and has no buffers", () => {
    const gn = new GroupNorm(2, 4, 1e-5, f64);
    const x: Tensor = randn([3, 4, 5], f64);
    near(gn.forward(x).data, F.groupNorm(x, 2).data);
    expect([...gn.namedParameters()].map(([k]) => k)).toEqual(["weight", "bias"]);
    expect([...gn.namedBuffers()]).toEqual([]);
    expect(gn.toString()).toBe("GroupNorm(2, 4, eps=1e-05, affine=True)");
    expect(new GroupNorm(1, 3, 1e-5, { affine: false }).parameters()).toEqual([]);
  });

  test("channels that the groups do not divide are refused", () => {
    expect(() => new GroupNorm(4, 6)).toThrow(/GroupNorm: numChannels \(6\) must be divisible by numGroups \(4\)/);
  });
});
