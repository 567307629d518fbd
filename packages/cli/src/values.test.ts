import { describe, expect, it } from "vitest";
import { resolve } from "node:path";
import { describeModel, parseEvalEvery, parseMlpSizes, parseModel, parseNumber, parseWorkers } from "./values.js";

describe("value parsers", () => {
  it("numbers come from numeric strings or JSON numbers and name the rule they break", () => {
    expect(parseNumber("1e-3", { min: 0 })).toBe(0.001);
    expect(parseNumber(5, { min: 1, isInteger: true })).toBe(5);
    expect(() => parseNumber("-1", { min: 0 })).toThrow("must be a number >= 0, got -1");
    expect(() => parseNumber("", { min: 0 })).toThrow('got ""');
    expect(() => parseNumber("1.5", { min: 1, isInteger: true })).toThrow("must be an integer >= 1, got 1.5");
    expect(() => parseNumber("1", { min: 0, max: 1, isMaxExclusive: true })).toThrow(
      "must be a number >= 0 and < 1, got 1",
    );
  });

  it("an mlp spec lists at least two positive widths, input first", () => {
    expect(parseMlpSizes("mlp:784,256,10")).toEqual([784, 256, 10]);
    expect(parseMlpSizes({ kind: "mlp", sizes: [4, 2] })).toEqual([4, 2]);
    expect(() => parseMlpSizes("mlp:abc")).toThrow(/got mlp:abc$/);
    expect(() => parseMlpSizes("mlp:784")).toThrow(/at least two/);
    expect(() => parseMlpSizes("cnn:1,2")).toThrow(/the only built-in model is mlp/);
  });

  it("--model takes mlp widths, a built-in image model or a module path with an optional export", () => {
    expect(parseModel("mlp:4,8,3")).toEqual([4, 8, 3]);
    expect(parseModel([4, 3])).toEqual([4, 3]);
    expect(parseModel("cnn")).toBe("cnn");
    expect(parseModel("lenet5")).toBe("lenet5");
    expect(parseModel("./net.mjs")).toEqual({ module: resolve("net.mjs"), export: "default" });
    expect(parseModel("../models/net.js#build")).toEqual({ module: resolve("../models/net.js"), export: "build" });
    expect(parseModel("/abs/net.mjs#makeNet")).toEqual({ module: "/abs/net.mjs", export: "makeNet" });
    expect(parseModel({ module: "/abs/net.mjs", export: "build" })).toEqual({
      module: "/abs/net.mjs",
      export: "build",
    });
    expect(describeModel(parseModel("/abs/net.mjs#build"))).toBe("/abs/net.mjs#build");
    expect(describeModel([4, 3])).toBe("mlp:4,3");
    expect(() => parseModel("resnet")).toThrow(
      "must be mlp:IN,HIDDEN...,OUT, cnn, lenet5, or a JavaScript " +
        "module path such as ./net.mjs or ./net.mjs#build, got resnet",
    );
    expect(() => parseModel("./net.mjs#not-a-name")).toThrow(
      'must be a module path with an optional #export name, as in ./net.mjs#build, got "./net.mjs#not-a-name"',
    );
    expect(() => parseModel({ module: "net.mjs" })).toThrow("must be { module: absolute path, export: name }");
  });

  it("workers are auto or 1..256", () => {
    expect(parseWorkers("auto")).toBe("auto");
    expect(parseWorkers("3")).toBe(3);
    expect(() => parseWorkers("0")).toThrow("must be auto or an integer from 1 to 256, got 0");
  });

  it("--eval-every counts epochs unless it says steps", () => {
    expect(parseEvalEvery("2")).toEqual({ every: 2, unit: "epoch" });
    expect(parseEvalEvery("500steps")).toEqual({ every: 500, unit: "step" });
    expect(parseEvalEvery(3)).toEqual({ every: 3, unit: "epoch" });
    expect(() => parseEvalEvery("0")).toThrow(/positive number of epochs/);
  });
});
