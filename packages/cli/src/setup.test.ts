import { lrAt } from "@threadgrad/optim";
import { describe, expect, it } from "vitest";
import { DEFAULT_SETTINGS } from "./settings.js";
import type { Dataset } from "./data/index.js";
import {
  buildSchedule,
  evaluationBatchSize,
  imageModelSpec,
  modelSpec,
  trainerOptions,
  updatesPerEpoch,
} from "./setup.js";

const s = { ...DEFAULT_SETTINGS, lr: 0.1 };

describe("schedules", () => {
  it("warm-up is LinearLR from lr/(w+1) to lr, then the schedule via SequentialLR", () => {
    const sched = buildSchedule({ ...s, lrSchedule: "cosine", warmupSteps: 4 }, 104)!;
    expect(sched).toEqual({
      kind: "sequential",
      milestones: [4],
      schedules: [
        { kind: "linear", startFactor: 1 / 5, endFactor: 1, totalIters: 4 },
        { kind: "cosine", tMax: 100, etaMin: 0 },
      ],
    });
    expect(lrAt(sched, 0.1, 0)).toBeCloseTo(0.02, 12);
    expect(lrAt(sched, 0.1, 4)).toBeCloseTo(0.1, 12);
    expect(lrAt(sched, 0.1, 54)).toBeCloseTo(0.05, 12);
  });

  it("none is a constant lr, with or without warm-up", () => {
    expect(buildSchedule(s, 100)).toBeNull();
    const warm = buildSchedule({ ...s, warmupSteps: 9 }, 100)!;
    expect(lrAt(warm, 0.1, 50)).toBeCloseTo(0.1, 12);
  });

  it("step decays by gamma every third of the run unless --step-size says otherwise", () => {
    expect(buildSchedule({ ...s, lrSchedule: "step" }, 90)).toEqual({ kind: "step", stepSize: 30, gamma: 0.1 });
    expect(buildSchedule({ ...s, lrSchedule: "step", stepSize: 7, gamma: 0.5 }, 90)).toEqual({
      kind: "step",
      stepSize: 7,
      gamma: 0.5,
    });
  });

  it("onecycle peaks at --lr over the whole run", () => {
    expect(buildSchedule({ ...s, lrSchedule: "onecycle" }, 50)).toEqual({
      kind: "onecycle",
      maxLr: 0.1,
      totalSteps: 50,
    });
  });

  it("warm-up must be shorter than the run", () => {
    expect(() => buildSchedule({ ...s, warmupSteps: 10 }, 10)).toThrow(
      "--warmup-steps 10 must be less than the run's 10 optimizer steps",
    );
  });

  it("counts optimizer steps per epoch with accumulation", () => {
    expect(updatesPerEpoch({ ...s, batchSize: 64, accumulateSteps: 1 }, 8333)).toBe(131);
    expect(updatesPerEpoch({ ...s, batchSize: 64, accumulateSteps: 4 }, 8333)).toBe(33);
  });
});

describe("model specs from the data", () => {
  const images = (sampleShape: number[] | undefined, numClasses = 10): Dataset => ({
    name: "set",
    x: new Float32Array(0),
    y: new Int32Array(0),
    length: 0,
    features: (sampleShape ?? [4]).reduce((a, b) => a * b, 1),
    ...(sampleShape ? { sampleShape } : {}),
    task: "classification",
    numClasses,
  });

  it("sizes cnn and lenet5 from the samples' channels, height and width and the classes", () => {
    expect(imageModelSpec("cnn", images([3, 32, 24], 5), "images:/x")).toEqual({
      kind: "cnn",
      inChannels: 3,
      height: 32,
      width: 24,
      classes: 5,
    });
    expect(modelSpec({ ...s, model: "lenet5" }, images([1, 28, 28]))).toEqual({
      kind: "lenet5",
      inChannels: 1,
      height: 28,
      width: 28,
      classes: 10,
    });
    expect(modelSpec({ ...s, model: [784, 10], activation: "tanh" }, images([1, 28, 28]))).toEqual({
      kind: "mlp",
      sizes: [784, 10],
      activation: "tanh",
      dropout: 0,
    });
    expect(modelSpec({ ...s, model: { module: "/m/net.mjs", export: "build" } }, images(undefined))).toEqual({
      module: "file:///m/net.mjs",
      export: "build",
    });
  });

  it("refuses flat rows, regression and images too small, naming the data", () => {
    expect(() => imageModelSpec("cnn", images(undefined, 3), "csv:d.csv")).toThrow(
      "--model cnn needs image data (channels × height × width per sample), but csv:d.csv has flat rows of 4 features; " +
        "use --model mlp:4,128,3 for tabular data",
    );
    expect(() => imageModelSpec("cnn", { ...images([1, 8, 8]), task: "regression" }, "x")).toThrow(
      "--model cnn is a classifier, but x has a regression target",
    );
    expect(() => imageModelSpec("lenet5", images([1, 8, 8]), "images:/small")).toThrow(
      "--model lenet5: lenet5 needs images of at least 12×12 pixels, got 8×8 in images:/small",
    );
  });
});

describe("evaluation batches", () => {
  const data = (sampleShape?: number[]): Dataset => ({
    name: "set",
    x: new Float32Array(0),
    y: new Int32Array(0),
    length: 0,
    features: 784,
    ...(sampleShape ? { sampleShape } : {}),
    task: "classification",
    numClasses: 10,
  });

  it("images evaluate in batches of the training batch, flat rows in batches of up to 1,024", () => {
    // A cnn's forward over 1,024 images outgrows a rank's step scratch; the training batch's fits.
    const cnn = { ...s, data: "fashion-mnist", model: "cnn" as const, batchSize: 128 };
    expect(trainerOptions(cnn, data([1, 28, 28])).maxBatchSize).toBe(128);
    const mlp = { ...s, data: "fashion-mnist", model: [784, 128, 10], batchSize: 128 };
    expect(trainerOptions(mlp, data([1, 28, 28])).maxBatchSize).toBe(128);
    expect(trainerOptions({ ...mlp, data: "csv:x.csv" }, data()).maxBatchSize).toBe(1024);
    expect(trainerOptions({ ...mlp, data: "csv:x.csv", batchSize: 2048 }, data()).maxBatchSize).toBe(2048);
  });

  it("the batch training and eval evaluate in: the training batch for images and text, 1,024 flat rows", () => {
    expect(evaluationBatchSize(128, data([1, 28, 28]))).toBe(128);
    expect(evaluationBatchSize(2048, data([1, 28, 28]))).toBe(2048);
    expect(evaluationBatchSize(32, { ...data(), isTokens: true })).toBe(32);
    expect(evaluationBatchSize(64, data())).toBe(1024);
    expect(evaluationBatchSize(2048, data())).toBe(1024);
  });
});
