import type { TrainerCheckpoint } from "@threadgrad/workers";
import { describe, expect, it } from "vitest";
import { DEFAULT_SETTINGS, readStoredRun } from "./settings.js";
import { checkStoredModel, moduleToLoad } from "./stored-run.js";

const settings = { ...DEFAULT_SETTINGS, model: [4, 8, 3], loss: "cross-entropy", lr: 0.002, out: "/runs/a" };

function ckpt(cli: unknown, model: TrainerCheckpoint["config"]["model"] = { kind: "mlp", sizes: [4, 8, 3] }) {
  return {
    path: "run/c.msgpack",
    extra: { cli },
    config: { model, loss: "crossEntropy" },
  } as unknown as TrainerCheckpoint;
}

describe("the run record stored in a checkpoint", () => {
  it("reads back the settings train stores", () => {
    const run = readStoredRun(
      ckpt({ settings, best: { metric: "testLoss", value: 0.5, step: 3 }, trainLoss: Number.NaN }),
    );
    expect(run).toEqual({
      settings,
      best: { metric: "testLoss", value: 0.5, step: 3 },
      trainLoss: Number.NaN,
      preprocess: null,
      categories: null,
      watch: { bestValLoss: null, badEvals: 0, plateau: null },
      // A record from before the process count was stored: one process.
      processes: 1,
    });
    expect(readStoredRun({ ...ckpt(undefined), extra: {} })).toBeNull();
  });

  it("reads the count of processes a run had, and refuses one that is not a positive integer", () => {
    expect(readStoredRun(ckpt({ settings, best: null, trainLoss: null, processes: 2 }))?.processes).toBe(2);
    for (const processes of [0, 1.5, "2", null]) {
      expect(() => readStoredRun(ckpt({ settings, best: null, trainLoss: null, processes }))).toThrow(
        `checkpoint: run/c.msgpack: field 'extra.cli.processes' must be an integer from 1 to 1048576, got ${JSON.stringify(processes)}`,
      );
    }
  });

  it("reports every bad setting at once, each with its field", () => {
    const bad = {
      ...settings,
      evalEvery: { every: 2, unit: "hour" },
      betas: [0.9, 0.99, 0.5],
      epochs: 0,
      workers: "all",
    };
    const field = "checkpoint: run/c.msgpack: field 'extra.cli.settings";
    expect(() => readStoredRun(ckpt({ settings: bad, best: null, trainLoss: null }))).toThrow(
      [
        `${field}.betas' must be two numbers in [0, 1), got [0.9,0.99,0.5]`,
        `${field}.epochs' must be an integer >= 1, got 0`,
        `${field}.workers' must be auto or an integer from 1 to 256, got "all"`,
        `${field}.evalEvery' must be { every, unit } with unit epoch or step, got {"every":2,"unit":"hour"}`,
      ].join("\n"),
    );
  });

  it("refuses a null where the run always has a value, and a bad best", () => {
    expect(() => readStoredRun(ckpt({ settings: { ...settings, lr: null }, best: null, trainLoss: null }))).toThrow(
      "field 'extra.cli.settings.lr' must hold a value, got null",
    );
    expect(() =>
      readStoredRun(ckpt({ settings, best: { metric: "testLoss", value: 1, step: -1 }, trainLoss: 1 })),
    ).toThrow("field 'extra.cli.best.step' must be a non-negative integer, got -1");
  });

  it("reads a validation best, a latest best and the early-stopping and plateau counters", () => {
    const watch = {
      bestValLoss: 0.25,
      badEvals: 2,
      plateau: { lastEpoch: 4, best: 0.25, numBadEpochs: 1, cooldownCounter: 0, lastLr: [0.1] },
    };
    const best = { metric: "valAccuracy", value: 0.9, step: 7 };
    expect(readStoredRun(ckpt({ settings, best, trainLoss: 1, watch }))).toMatchObject({ best, watch });
    const latest = { metric: "latest", value: null, step: 7 };
    expect(readStoredRun(ckpt({ settings, best: latest, trainLoss: 1 }))?.best).toEqual(latest);
    expect(() => readStoredRun(ckpt({ settings, best: { ...latest, value: 3 }, trainLoss: 1 }))).toThrow(
      "field 'extra.cli.best.value' must be null for latest, got 3",
    );
    expect(() =>
      readStoredRun(ckpt({ settings, best: null, trainLoss: 1, watch: { ...watch, badEvals: -1 } })),
    ).toThrow("field 'extra.cli.watch.badEvals' must be a non-negative integer, got -1");
    const plateau = { ...watch.plateau, lastLr: [0] };
    expect(() => readStoredRun(ckpt({ settings, best: null, trainLoss: 1, watch: { ...watch, plateau } }))).toThrow(
      "field 'extra.cli.watch.plateau.lastLr' must be one number > 0, got [0]",
    );
  });

  it("gives settings added later their defaults when an older checkpoint lacks them", () => {
    const { valSplit, earlyStopping, minDelta, plateauPatience, delimiter, impute, categorical, ...older } = settings;
    expect(readStoredRun(ckpt({ settings: older, best: null, trainLoss: 1 }))?.settings).toEqual(settings);
    expect(() => readStoredRun(ckpt({ settings: { ...settings, valSplit: 1.5 }, best: null, trainLoss: 1 }))).toThrow(
      "field 'extra.cli.settings.valSplit' must be",
    );
    for (const categorical of ["auto", ["color", "city"]]) {
      const run = readStoredRun(ckpt({ settings: { ...settings, categorical }, best: null, trainLoss: 1 }));
      expect(run?.settings.categorical).toEqual(categorical);
    }
    expect(() =>
      readStoredRun(ckpt({ settings: { ...settings, categorical: "color" }, best: null, trainLoss: 1 })),
    ).toThrow("field 'extra.cli.settings.categorical' must be a list, got \"color\"");
  });

  it("must describe the checkpoint's own model", () => {
    expect(() => checkStoredModel(ckpt({}), { ...settings, model: [4, 9, 3] } as never)).toThrow(
      "field 'extra.cli.settings.model' (mlp:4,9,3 relu dropout 0) " +
        "differs from field 'config.model' (mlp:4,8,3 relu dropout 0)",
    );
    const cnn = { kind: "cnn", inChannels: 1, height: 8, width: 8, classes: 3 } as const;
    expect(() => checkStoredModel(ckpt({}, cnn), { ...settings, model: "cnn" } as never)).not.toThrow();
    expect(() => checkStoredModel(ckpt({}, cnn), { ...settings, model: "lenet5" } as never)).toThrow(
      "field 'extra.cli.settings.model' (lenet5) differs from field 'config.model' (cnn)",
    );
    const mod = { module: "file:///work/net.mjs", export: "build" };
    const given = { module: "/work/net.mjs", export: "build" };
    expect(() => checkStoredModel(ckpt({}, mod), { ...settings, model: given } as never)).not.toThrow();
    expect(() =>
      checkStoredModel(ckpt({}, mod), { ...settings, model: { ...given, module: "/work/other.mjs" } } as never),
    ).toThrow(
      "(module file:///work/other.mjs#build) differs from field 'config.model' (module file:///work/net.mjs#build)",
    );
  });

  it("reads back a built-in image model's name and a module's path, and refuses other shapes", () => {
    for (const model of ["cnn", "lenet5", { module: "/work/net.mjs", export: "build" }]) {
      expect(
        readStoredRun(ckpt({ settings: { ...settings, model }, best: null, trainLoss: null }))?.settings.model,
      ).toEqual(model);
    }
    expect(() =>
      readStoredRun(ckpt({ settings: { ...settings, model: { module: "net.mjs" } }, best: null, trainLoss: null })),
    ).toThrow("field 'extra.cli.settings.model' must be { module: absolute path, export: name }");
    expect(() => readStoredRun(ckpt({ settings: { ...settings, model: 7 }, best: null, trainLoss: null }))).toThrow(
      "field 'extra.cli.settings.model' must be a list of mlp widths, a built-in model's name or { module, export }",
    );
  });

  it("reads back a gpt and checks it against the checkpoint's gpt, size by size", () => {
    const gpt = { kind: "gpt", vocab: 256, context: 64, dim: 128, heads: 4, layers: 2 } as const;
    const run = readStoredRun(ckpt({ settings: { ...settings, model: gpt }, best: null, trainLoss: null }));
    expect(run?.settings.model).toEqual(gpt);
    expect(() => checkStoredModel(ckpt({}, gpt), { ...settings, model: gpt } as never)).not.toThrow();
    expect(() => checkStoredModel(ckpt({}, gpt), { ...settings, model: { ...gpt, layers: 3 } } as never)).toThrow(
      "(gpt vocab 256 layers 3 heads 4 dim 128 context 64) differs from field 'config.model' " +
        "(gpt vocab 256 layers 2 heads 4 dim 128 context 64)",
    );
    expect(moduleToLoad(ckpt({}, gpt), undefined)).toBeUndefined();
    expect(() => moduleToLoad(ckpt({}, gpt), { module: "/work/net.mjs", export: "default" })).toThrow(
      "--model /work/net.mjs: run/c.msgpack holds the built-in gpt, not a model from a module",
    );
  });

  it("a module's model loads only with --model naming a module again; a module loss never", () => {
    const mod = ckpt({}, { module: "file:///work/net.mjs", export: "build" });
    expect(() => moduleToLoad(mod, undefined)).toThrow(
      'checkpoint: run/c.msgpack: its model was built by module "file:///work/net.mjs" (export "build"); ' +
        "threadgrad never imports a module a checkpoint names: pass --model /work/net.mjs#build to load it",
    );
    expect(() => moduleToLoad(mod, "cnn")).toThrow("pass --model /work/net.mjs#build");
    expect(moduleToLoad(mod, { module: "/work/net.mjs", export: "build" })).toEqual({
      module: "file:///work/net.mjs",
      export: "build",
    });
    expect(moduleToLoad(ckpt({}), undefined)).toBeUndefined();
    expect(() => moduleToLoad(ckpt({}), { module: "/work/net.mjs", export: "default" })).toThrow(
      "--model /work/net.mjs: run/c.msgpack holds the built-in mlp, not a model from a module",
    );
    const loss = { ...ckpt({}), config: { model: { kind: "mlp", sizes: [4, 3] }, loss: { module: "node:fs" } } };
    expect(() => moduleToLoad(loss as never, undefined)).toThrow(
      'checkpoint: run/c.msgpack: its loss comes from module "node:fs"; threadgrad trains built-in losses only',
    );
  });

  describe("the stored preprocessing", () => {
    const preprocess = {
      features: { mean: [1, 2, 3, 40000], std: [1, 0.5, 2, 9000] },
      target: null,
      classes: ["1", "2", "3"],
      featureNames: ["a", "b", "c", "income"],
      targetName: "grade",
    };
    const read = (p: unknown, s: object = settings) =>
      readStoredRun(ckpt({ settings: s, best: null, trainLoss: null, preprocess: p }));

    it("reads back what train stores; a record from before --no-normalize fed raw features", () => {
      expect(read(preprocess)?.preprocess).toEqual(preprocess);
      const { normalize: _, ...old } = settings;
      expect(read(undefined, old)?.settings.normalize).toBe(false);
    });

    it("refuses scalings that would divide by zero or do not fit the model, naming the field", () => {
      const at = "checkpoint: run/c.msgpack: field 'extra.cli.preprocess";
      const features = (mean: unknown, std: unknown) => ({ ...preprocess, features: { mean, std } });
      expect(() => read(features([1, 2, 3, 4], [1, 0, 1, 1]))).toThrow(
        `${at}.features.std[1]' must be a list of finite numbers > 0, got 0`,
      );
      expect(() => read(features([1, 2, 3, "x"], [1, 1, 1, 1]))).toThrow(
        `${at}.features.mean[3]' must be a list of finite numbers, got "x"`,
      );
      expect(() => read(features([1, 2, 3], [1, 1, 1]))).toThrow(
        `${at}.featureNames' must name the 3 scaled features, got 4`,
      );
      expect(() => read({ ...preprocess, features: null, featureNames: ["a", "b"] })).toThrow(
        `${at}.featureNames' must name the 4 model inputs, got 2`,
      );
      expect(() => read({ ...preprocess, classes: ["1", "2", "3", "4"] })).toThrow(
        `${at}.classes' must name at most the model's 3 outputs, got ["1","2","3","4"]`,
      );
      expect(() => read({ ...preprocess, classes: ["1", "1", "3"] })).toThrow(
        `${at}.classes' must be a list of distinct strings`,
      );
      const mse = { ...settings, model: [4, 8, 1], loss: "mse" };
      const regression = { ...preprocess, classes: null, target: { mean: 2e5, std: -1 } };
      expect(() => read(regression, mse)).toThrow(`${at}.target.std' must be a finite number > 0, got -1`);
      expect(read({ ...regression, target: { mean: 2e5, std: 5e4 } }, mse)?.preprocess?.target).toEqual({
        mean: 2e5,
        std: 5e4,
      });
    });
  });

  describe("the stored one-hot categories", () => {
    // What train stores for a csv of size, color (blue, green, red) and city (oslo, rome).
    const categories = [
      { name: "color", feature: 1, values: ["blue", "green", "red"] },
      { name: "city", feature: 4, values: ["oslo", "rome"] },
    ];
    const preprocess = {
      features: null,
      target: null,
      classes: ["no", "yes"],
      featureNames: ["size", "color=blue", "color=green", "color=red", "city=oslo", "city=rome"],
      targetName: "bought",
    };
    const s = { ...settings, model: [6, 8, 2] };
    const read = (c: unknown, p: unknown = preprocess, model: object = s) =>
      readStoredRun(ckpt({ settings: model, best: null, trainLoss: null, preprocess: p, categories: c }));
    const at = "checkpoint: run/c.msgpack: field 'extra.cli.categories";

    it("reads back what train stores; null when the run had none or predates them", () => {
      expect(read(categories)?.categories).toEqual(categories);
      expect(read(categories, null)?.categories).toEqual(categories);
      expect(read(null)?.categories).toBeNull();
      expect(read(undefined)?.categories).toBeNull();
    });

    it("refuses mistyped columns, naming the field", () => {
      const col = (c: object) => [categories[0], { ...categories[1], ...c }];
      expect(() => read({ color: ["blue"] })).toThrow(
        `${at}' must be null or a list of { name, feature, values }, got {"color":["blue"]}`,
      );
      expect(() => read(["color"])).toThrow(`${at}[0]' must be null or a list of { name, feature, values }`);
      expect(() => read(col({ name: 7 }))).toThrow(`${at}[1].name' must be a string no other column has, got 7`);
      expect(() => read(col({ name: "color" }))).toThrow(`${at}[1].name' must be a string no other column has`);
      expect(() => read(col({ values: ["oslo", 2] }))).toThrow(
        `${at}[1].values[1]' must be a list of distinct strings, got 2`,
      );
      expect(() => read(col({ values: "oslo" }))).toThrow(`${at}[1].values' must be a list of distinct strings`);
      expect(() => read(col({ values: ["x", "x"] }))).toThrow(`${at}[1].values' must be a list of distinct strings`);
      expect(() => read(col({ feature: "4" }))).toThrow(
        `${at}[1].feature' must be an integer >= 4 with room for its 2 one-hot features among the model's 6 inputs`,
      );
    });

    it("refuses features that overlap, leave the model's inputs or differ from the stored names", () => {
      const room = "with room for its 2 one-hot features among the model's 6 inputs";
      expect(() => read([categories[0], { ...categories[1], feature: 3 }])).toThrow(
        `${at}[1].feature' must be an integer >= 4 ${room}, got 3`,
      );
      expect(() => read([{ ...categories[1], feature: 5 }], null)).toThrow(
        `${at}[0].feature' must be an integer >= 0 ${room}, got 5`,
      );
      expect(() => read([categories[0], { ...categories[1], values: ["rome", "oslo"] }])).toThrow(
        `${at}[1].values[0]' must match its feature's stored name "city=oslo", got "rome"`,
      );
      // A module's model: the inputs are the stored feature names.
      const inputs = "among the model's 6 inputs, got 5";
      expect(() => read([{ ...categories[1], feature: 5 }], preprocess, { ...s, model: "cnn" })).toThrow(inputs);
    });
  });
});
