import type { TrainerCheckpoint } from "@threadgrad/workers";
import { describe, expect, it } from "vitest";
import { DEFAULT_SETTINGS } from "./config.js";
import { checkStoredModel, readStoredRun, refuseModuleCode } from "./stored-run.js";

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
      watch: { bestValLoss: null, badEvals: 0, plateau: null },
    });
    expect(readStoredRun({ ...ckpt(undefined), extra: {} })).toBeNull();
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

  it("must describe the checkpoint's own model; a module model is refused, naming the library call", () => {
    expect(() => checkStoredModel(ckpt({}), { ...settings, model: [4, 9, 3] } as never)).toThrow(
      "field 'extra.cli.settings.model' (mlp:4,9,3 relu dropout 0) " +
        "differs from field 'config.model' (mlp:4,8,3 relu dropout 0)",
    );
    expect(() => refuseModuleCode(ckpt({}, { module: "node:fs", export: "rmSync" }))).toThrow(
      'checkpoint: run/c.msgpack: its model was built by module "node:fs" (export "rmSync"); ' +
        "threadgrad loads mlp models only",
    );
  });
});
