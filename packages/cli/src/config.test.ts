import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DEFAULT_SETTINGS, absoluteDataSpec, newRunSettings, readGivenSettings, resumedSettings } from "./config.js";

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
      ...["clipGradNorm", "batchSize", "epochs", "maxSteps", "workers", "accumulateSteps", "seed", "out", "overwrite"],
      "resume",
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
        "(only --epochs, --max-steps, --workers, --out and --eval-every may change)\n" +
        "--resume: --batch-size 32 differs from the checkpoint's 64; a resumed run keeps " +
        "its settings (only --epochs, --max-steps, --workers, --out and --eval-every may change)",
    );
  });

  it("data paths become absolute; digits stays as it is", () => {
    expect(absoluteDataSpec("digits", "/a")).toBe("digits");
    expect(absoluteDataSpec("idx:x", "/a")).toBe("idx:/a/x");
    expect(absoluteDataSpec("fashion-mnist", "/a")).toBe("fashion-mnist");
  });
});
