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
      "must be mlp:IN,HIDDEN...,OUT, cnn, lenet5, chargpt, gpt:layers=2,heads=4,dim=128,context=64, or a JavaScript " +
        "module path such as ./net.mjs or ./net.mjs#build, got resnet",
    );
    expect(() => parseModel("./net.mjs#not-a-name")).toThrow(
      'must be a module path with an optional #export name, as in ./net.mjs#build, got "./net.mjs#not-a-name"',
    );
    expect(() => parseModel({ module: "net.mjs" })).toThrow("must be { module: absolute path, export: name }");
  });

  it("--model takes chargpt and gpt:KEY=N,... with keys in any order, missing ones as chargpt", () => {
    const chargpt = { kind: "gpt", vocab: 256, context: 64, dim: 128, heads: 4, layers: 2 };
    expect(parseModel("chargpt")).toEqual(chargpt);
    expect(parseModel("gpt:layers=2,heads=4,dim=128,context=64")).toEqual(chargpt);
    expect(parseModel("gpt:context=32, dim=64")).toEqual({ ...chargpt, context: 32, dim: 64 });
    expect(parseModel("gpt:")).toEqual(chargpt);
    expect(parseModel({ ...chargpt, layers: 3 })).toEqual({ ...chargpt, layers: 3 });
    expect(describeModel(parseModel("gpt:heads=2,layers=1"))).toBe("gpt:layers=1,heads=2,dim=128,context=64");
    expect(parseModel(describeModel(parseModel("gpt:heads=2,layers=1")))).toEqual({ ...chargpt, heads: 2, layers: 1 });
  });

  it("a gpt spec names the unknown key or the bad value", () => {
    expect(() => parseModel("gpt:width=64")).toThrow(`unknown key 'width', got "gpt:width=64"`);
    expect(() => parseModel("gpt:layers=two")).toThrow("layers must be an integer from 1 to 1024, got two");
    expect(() => parseModel("gpt:layers=0")).toThrow("layers must be an integer from 1 to 1024, got 0");
    expect(() => parseModel("gpt:heads=1.5")).toThrow("heads must be an integer from 1 to 1024, got 1.5");
    expect(() => parseModel("gpt:dim=100,heads=3")).toThrow("dim must be divisible by heads, got dim 100 and heads 3");
    expect(() => parseModel("gpt:dim")).toThrow("'dim' has no =N, got gpt:dim");
    expect(() => parseModel("gpt:dim=64,dim=32")).toThrow("dim is given twice");
    expect(() => parseModel("gpt:dim=65536,layers=1024,heads=1")).toThrow(
      "makes a gpt of 52777468428544 parameters, more than the 268435456 allowed",
    );
    expect(() => parseModel({ kind: "gpt", vocab: 100 })).toThrow("vocab must be 256, got 100");
    expect(() => parseModel({ kind: "gpt", dim: -64 })).toThrow("dim must be an integer from 1 to 65536, got -64");
    expect(() => parseModel("chargpt2")).toThrow("chargpt, gpt:layers=2,heads=4,dim=128,context=64, or a JavaScript");
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
