import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TrainerCheckpoint } from "@threadgrad/workers";
import { afterAll, describe, expect, it } from "vitest";
import {
  DEFAULT_SETTINGS,
  absoluteDataSpec,
  dataSettings,
  newRunSettings,
  readGiven,
  readGivenSettings,
  readStoredRun,
  resumedSettings,
  trainSettings,
} from "./settings.js";

const dir = mkdtempSync(join(tmpdir(), "threadgrad-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("settings", () => {
  it("flags win over the config file, whose paths are relative to the file", () => {
    const file = join(dir, "run.json");
    writeFileSync(file, JSON.stringify({ lr: 0.1, "batch-size": 32, data: "csv:data.csv", target: "y" }));
    const given = readGivenSettings({ config: file, lr: "0.01" });
    expect(given).toMatchObject({ lr: 0.01, batchSize: 32, data: `csv:${join(dir, "data.csv")}`, target: "y" });
  });

  it("reports every bad value, from flags and file alike", () => {
    // Every setting a config file may hold, in the flag table's order: a new flag shows up here.
    const SETTINGS = [
      ...["data", "target", "task", "delimiter", "impute", "categorical", "testSplit", "imageSize", "context", "limit"],
      ...["model", "activation", "dropout", "loss", "labelSmoothing", "optimizer", "lr", "momentum", "weightDecay"],
      ...["betas", "eps", "nesterov", "amsgrad", "alpha", "lrSchedule", "warmupSteps", "stepSize", "gamma", "etaMin"],
      ...[
        "clipGradNorm",
        "batchSize",
        "epochs",
        "maxSteps",
        "workers",
        "distributed",
        "accumulateSteps",
        "shards",
        "seed",
        "out",
      ],
      ...["overwrite", "resume"],
      ...["evalEvery", "skipNonFinite", "augment", "normalize", "valSplit", "earlyStopping", "minDelta"],
      ...["plateauPatience", "quiet", "json"],
    ];
    const file = join(dir, "bad.json");
    writeFileSync(file, JSON.stringify({ epochs: 0, color: 1 }));
    expect(() => readGivenSettings({ config: file, lr: "-1", workers: "x" })).toThrow(
      [
        `--lr must be a number >= 0, got -1`,
        `--workers must be auto or an integer from 1 to 256, got x`,
        `${file}: "epochs" must be an integer >= 1, got 0`,
        `${file}: unknown setting "color" (settings: ${SETTINGS.join(", ")})`,
      ].join("\n"),
    );
  });

  it("refuses early stopping and the plateau schedule without a validation set, and a plateau gamma >= 1", () => {
    expect(() => newRunSettings({ earlyStopping: 3, minDelta: 0.01, lrSchedule: "plateau", gamma: 2 })).toThrow(
      [
        "--early-stopping 3: there is no validation set to watch; add --val-split FRACTION (e.g. --val-split 0.1)",
        "--lr-schedule plateau: there is no validation set to watch; add --val-split FRACTION (e.g. --val-split 0.1)",
        "--gamma 2: --lr-schedule plateau multiplies the lr by it, so it must be below 1",
      ].join("\n"),
    );
    expect(() => newRunSettings({ valSplit: 0.1, minDelta: 0.01 })).toThrow(
      "--min-delta only applies with --early-stopping PATIENCE",
    );
    expect(() => newRunSettings({ valSplit: 0.1, plateauPatience: 2 })).toThrow(
      "--plateau-patience only applies to --lr-schedule plateau, not none",
    );
    expect(() => newRunSettings({ gamma: 0.5, lrSchedule: "cosine" })).toThrow(
      "--gamma only applies to --lr-schedule step or plateau, not cosine",
    );
    const s = newRunSettings({ valSplit: 0.1, earlyStopping: 3, lrSchedule: "plateau", plateauPatience: 2 });
    expect(s).toMatchObject({ valSplit: 0.1, earlyStopping: 3, minDelta: 0, plateauPatience: 2, gamma: 0.1 });
  });

  it("fills the optimizer's default lr: 2e-3 for adam, PyTorch's otherwise", () => {
    expect(newRunSettings({}).lr).toBe(2e-3);
    expect(newRunSettings({ optimizer: "rmsprop" }).lr).toBe(1e-2);
  });

  it("rejects options the chosen optimizer or schedule does not take", () => {
    expect(() => newRunSettings({ optimizer: "adam", momentum: 0.9 })).toThrow(
      "--momentum does not apply to --optimizer adam (it takes --lr, --betas, --eps, --weight-decay, --amsgrad)",
    );
    expect(() => newRunSettings({ lrSchedule: "cosine", stepSize: 10 })).toThrow(
      "--step-size only applies to --lr-schedule step, not cosine",
    );
    expect(() => newRunSettings({ optimizer: "sgd", nesterov: true })).toThrow(
      /--optimizer sgd: SGD: nesterov requires momentum > 0/,
    );
  });

  it("a resume may change epochs, workers and output but nothing the run computes", () => {
    const stored = { ...DEFAULT_SETTINGS, lr: 2e-3, model: [784, 128, 10] };
    expect(resumedSettings(stored, { epochs: 40, workers: 1, lr: 2e-3, model: [784, 128, 10] })).toMatchObject({
      epochs: 40,
      workers: 1,
    });
    expect(() => resumedSettings(stored, { lr: 0.1, batchSize: 32 })).toThrow(
      "--resume: --lr 0.1 differs from the checkpoint's 0.002; a resumed run keeps its settings " +
        "(only --epochs, --max-steps, --workers, --distributed, --out and --eval-every may change)\n" +
        "--resume: --batch-size 32 differs from the checkpoint's 64; a resumed run keeps " +
        "its settings (only --epochs, --max-steps, --workers, --distributed, --out and --eval-every may change)",
    );
  });

  it("--distributed is none or mpi, none by default, and a resume may change it", () => {
    expect(newRunSettings({}).distributed).toBe("none");
    expect(readGivenSettings({ distributed: "mpi" })).toEqual({ distributed: "mpi" });
    expect(() => readGivenSettings({ distributed: "tcp" })).toThrow("--distributed must be one of none, mpi, got tcp");
    // Whether the process count may differ is checked against the run record, not the setting.
    expect(resumedSettings({ ...DEFAULT_SETTINGS }, { distributed: "mpi" }).distributed).toBe("mpi");
  });

  it("data paths become absolute; digits stays as it is", () => {
    expect(absoluteDataSpec("digits", "/a")).toBe("digits");
    expect(absoluteDataSpec("idx:x", "/a")).toBe("idx:/a/x");
    expect(absoluteDataSpec("fashion-mnist", "/a")).toBe("fashion-mnist");
  });
});

/** A checkpoint of an mlp:4,8,3 whose run record holds `settings` (and `extra` besides). */
function checkpoint(settings: Record<string, unknown>, extra: Record<string, unknown> = {}): TrainerCheckpoint {
  return {
    path: "run/c.msgpack",
    extra: { cli: { settings, best: null, trainLoss: null, ...extra } },
    config: { model: { kind: "mlp", sizes: [4, 8, 3] }, loss: "crossEntropy" },
  } as unknown as TrainerCheckpoint;
}
const RECORDED = { ...DEFAULT_SETTINGS, model: [4, 8, 3], loss: "cross-entropy", lr: 0.002, out: "/runs/a" };

describe("one pass from flags, config file and checkpoint to settings", () => {
  it("a new run takes a flag over the config file over the default", () => {
    const file = join(dir, "new.json");
    writeFileSync(file, JSON.stringify({ epochs: 3, "batch-size": 16, quiet: true }));
    const run = trainSettings({ config: file, epochs: "5" });
    expect(run.settings).toMatchObject({ epochs: 5, batchSize: 16, seed: 0, optimizer: "adam", lr: 2e-3 });
    expect(run.given.quiet).toBe(true);
    expect(run.stored).toBeNull();
    expect(run.checkpoint).toBeNull();
  });

  it("keeps where each given value came from", () => {
    const file = join(dir, "from.json");
    writeFileSync(file, JSON.stringify({ epochs: 3, seed: 4 }));
    expect(readGiven({ config: file, epochs: "5" }).from).toEqual({
      config: "--config",
      epochs: "--epochs",
      seed: `${file}: "seed"`,
    });
  });

  it("a resumed run takes a flag over the config file over the stored run over the default", () => {
    const file = join(dir, "resume.json");
    writeFileSync(file, JSON.stringify({ epochs: 30, workers: 2, seed: 7 }));
    // Written before --plateau-patience and --no-normalize existed: the values such a run had.
    const { plateauPatience: _, normalize: __, ...older } = { ...RECORDED, seed: 7, epochs: 10, workers: 3 };
    const stored = readStoredRun(checkpoint(older))!.settings;
    const { values, from } = readGiven({ config: file, epochs: "40" });
    expect(resumedSettings(stored, values, from)).toMatchObject({
      epochs: 40, // the flag
      workers: 2, // the config file
      seed: 7, // the stored run (the file repeats it)
      evalEvery: { every: 1, unit: "epoch" }, // stored as the default
      plateauPatience: 5, // missing from the record: the default
      normalize: false, // missing from the record: what such a run did, not today's default
    });
  });

  it("a value a resume may not change is named by its source", () => {
    const file = join(dir, "conflict.json");
    writeFileSync(file, JSON.stringify({ lr: 0.1 }));
    const stored = readStoredRun(checkpoint(RECORDED))!.settings;
    const { values, from } = readGiven({ config: file, batchSize: "32" });
    expect(() => resumedSettings(stored, values, from)).toThrow(
      `--resume: ${file}: "lr" 0.1 differs from the checkpoint's 0.002; a resumed run keeps its settings ` +
        "(only --epochs, --max-steps, --workers, --distributed, --out and --eval-every may change)\n" +
        "--resume: --batch-size 32 differs from the checkpoint's 64; a resumed run keeps its settings " +
        "(only --epochs, --max-steps, --workers, --distributed, --out and --eval-every may change)",
    );
  });

  it("an option the optimizer or schedule does not take is named by its source", () => {
    const file = join(dir, "optimizer.json");
    writeFileSync(file, JSON.stringify({ momentum: 0.9, "eta-min": 0.1 }));
    expect(() => trainSettings({ config: file, alpha: "0.9" })).toThrow(
      [
        `${file}: "momentum" does not apply to --optimizer adam (it takes --lr, --betas, --eps, --weight-decay, --amsgrad)`,
        "--alpha does not apply to --optimizer adam (it takes --lr, --betas, --eps, --weight-decay, --amsgrad)",
        `${file}: "eta-min" only applies to --lr-schedule cosine, not none`,
      ].join("\n"),
    );
  });

  it("a stored run may leave an optimizer's options null but not the set-up's lr, model or loss", () => {
    const options = { momentum: null, weightDecay: null, betas: null, eps: null, nesterov: null, amsgrad: null };
    expect(readStoredRun(checkpoint({ ...RECORDED, ...options, alpha: null }))?.settings).toMatchObject(options);
    expect(() => readStoredRun(checkpoint({ ...RECORDED, lr: null, loss: null }))).toThrow(
      [
        "checkpoint: run/c.msgpack: field 'extra.cli.settings.loss' must hold a value, got null",
        "checkpoint: run/c.msgpack: field 'extra.cli.settings.lr' must hold a value, got null",
      ].join("\n"),
    );
  });

  it("--resume names a checkpoint that cannot be read", () => {
    const missing = join(dir, "nothing.msgpack");
    expect(() => trainSettings({ resume: missing })).toThrow(missing);
  });
});

describe("the data a checkpoint is evaluated on", () => {
  const categories = [{ name: "color", feature: 0, values: ["red", "blue"] }];

  it("without --data: the stored data, all of it, with the stored categories and --task over the stored", () => {
    const ckpt = checkpoint({ ...RECORDED, data: "csv:/d/x.csv", target: "y", limit: 100 }, { categories });
    const run = dataSettings({ task: "classification" }, ckpt);
    expect(run.isTrainedData).toBe(true);
    expect(run.stored?.categories).toEqual(categories);
    expect(run.settings).toMatchObject({
      data: "csv:/d/x.csv",
      target: "y",
      limit: null,
      task: "classification",
      categorical: ["color"],
      model: [4, 8, 3],
    });
  });

  it("with --data: the defaults under the flags, the path made absolute", () => {
    const run = dataSettings({ data: "csv:new.csv", target: "z", testSplit: "0.5" }, checkpoint(RECORDED));
    expect(run.isTrainedData).toBe(false);
    expect(run.settings).toEqual({
      ...DEFAULT_SETTINGS,
      data: `csv:${join(process.cwd(), "new.csv")}`,
      target: "z",
      testSplit: 0.5,
    });
  });

  it("names each bad flag, and a checkpoint that does not say its data", () => {
    expect(() => dataSettings({ task: "guess", testSplit: "2" }, checkpoint(RECORDED))).toThrow(
      [
        "--task must be one of classification, regression, got guess",
        "--test-split must be a number >= 0 and < 1, got 2",
      ].join("\n"),
    );
    const library = { ...checkpoint(RECORDED), extra: {} } as TrainerCheckpoint;
    expect(() => dataSettings({}, library)).toThrow(
      "eval: run/c.msgpack does not say which data it was trained on; pass --data",
    );
  });
});
