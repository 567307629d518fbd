// End-to-end: CSV input options of the built binary (separator, task warning).
import { writeFileSync } from "node:fs";
import { loadModel, predictOutputs, readTrainerCheckpoint } from "@threadgrad/workers";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jsonLines, requireBuilt, run, tempDir } from "./helpers.js";

const tmp = tempDir("threadgrad-csv-input-");
afterAll(tmp.cleanup);
beforeAll(requireBuilt);

/** 60 rows of two features and a 1-based rating (1, 2 or 3), fields joined by `sep`. */
function ratings(sep: string): string {
  const file = join(tmp.path, `ratings-${sep === "\t" ? "tab" : sep}.csv`);
  const lines = [["x1", "x2", "rating"].join(sep)];
  for (let i = 0; i < 60; i++) lines.push([(i % 7) / 7, (i % 5) / 5, 1 + (i % 3)].join(sep));
  writeFileSync(file, `${lines.join("\n")}\n`);
  return file;
}

const TRAIN = ["train", "--target", "rating", "--epochs", "1", "--batch-size", "16", "--workers", "1"];

describe("threadgrad train on csv files", () => {
  it("detects a ; or tab separator, and warns, naming --task, about labels 1..3 that skip 0", async () => {
    for (const sep of [";", "\t"]) {
      const r = await run([...TRAIN, "--data", `csv:${ratings(sep)}`, "--json", "--out", join(tmp.path, `run${sep}`)]);
      expect(r.code).toBe(0);
      expect(jsonLines(r.stdout)[0]).toMatchObject({ features: 2, classes: 3, trainSamples: 48 });
      expect(r.stderr).toContain(
        'column 3 ("rating"): guessed classification from integer targets: 3 distinct labels; ' +
          "1 of the labels 0..3 never occur (0), so the 3 labels become classes 0..2. " +
          "If the column is a quantity, pass --task regression",
      );
    }
    const told = await run([...TRAIN, "--data", `csv:${ratings(";")}`, "--task", "classification", "--json"]);
    expect(told.code).toBe(0);
    expect(told.stderr).toBe("");
  });

  it("uses the separator given, and refuses one it does not know", async () => {
    const file = ratings(";");
    const wrong = await run([...TRAIN, "--data", `csv:${file}`, "--delimiter", ","]);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain(`csv: ${file} has no target column "rating"`);
    const unknown = await run([...TRAIN, "--data", `csv:${file}`, "--delimiter", "|"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('--delimiter must be "," ";" or tab, got "|"');
    const digits = await run(["train", "--delimiter", ";", "--epochs", "1"]);
    expect(digits.code).toBe(2);
    expect(digits.stderr).toContain("data: --delimiter only applies to csv:FILE, not digits");
  });

  it("--impute fills or drops empty cells; without it the empty cell is refused, naming the flag", async () => {
    const file = join(tmp.path, "gaps.csv");
    const rows = Array.from({ length: 40 }, (_, i) => `${i % 4 === 0 ? "" : i / 40},${(i % 5) / 5},${i % 2}`);
    writeFileSync(file, `a,b,y\n${rows.join("\n")}\n`);
    const base = ["train", "--data", `csv:${file}`, "--target", "y", "--epochs", "1", "--workers", "1", "--json"];
    const refused = await run(base);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(
      /csv: \S+gaps\.csv line 2, column 1 \("a"\): the cell is empty \(pass --impute mean, median or drop/,
    );
    const dropped = await run([...base, "--impute", "drop"]);
    expect(dropped.code).toBe(0);
    expect(jsonLines(dropped.stdout)[0]).toMatchObject({ trainSamples: 24, testSamples: 6 });
    const filled = await run([...base, "--impute", "median"]);
    expect(filled.code).toBe(0);
    expect(jsonLines(filled.stdout)[0]).toMatchObject({ trainSamples: 32, testSamples: 8 });
    expect(Number.isFinite(jsonLines(filled.stdout).at(-1)!.testLoss)).toBe(true);
  });

  it("one-hot encodes a text column by default; eval and predict apply the stored categories", async () => {
    const file = join(tmp.path, "shop.csv");
    const colors = ["red", "green", "blue"];
    const rows = Array.from({ length: 60 }, (_, i) => `${(i % 7) / 7},${colors[i % 3]},${i % 3 === 0 ? 1 : 0}`);
    writeFileSync(file, `size,color,bought\n${rows.join("\n")}\n`);
    const out = join(tmp.path, "shop");
    const args = ["train", "--data", `csv:${file}`, "--target", "bought", "--epochs", "2", "--workers", "1"];
    const r = await run([...args, "--json", "--out", out]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(jsonLines(r.stdout)[0]).toMatchObject({ features: 4 }); // size + blue, green, red
    const ev = await run(["eval", "--checkpoint", join(out, "checkpoint-latest.msgpack"), "--json"]);
    expect(ev.code).toBe(0);
    expect(jsonLines(ev.stdout)[0]!.loss).toBeCloseTo(jsonLines(r.stdout).at(-1)!.testLoss as number, 6);
    // predict maps each color cell to its stored one-hot input, whatever the column order; an unseen
    // or empty cell sets none. Checked against the model's own forward pass on inputs encoded here.
    const news = join(tmp.path, "shop-new.csv");
    writeFileSync(news, "color,size\nred,0.5\ngreen,0.25\nblue,0\npurple,0.5\n,0.75\n");
    const checkpoint = join(out, "checkpoint-latest.msgpack");
    const p = await run(["predict", "--checkpoint", checkpoint, "--data", `csv:${news}`, "--proba", "--json"]);
    expect(p.stderr).toBe("");
    expect(p.code).toBe(0);
    const predicted = jsonLines(p.stdout);
    const ckpt = readTrainerCheckpoint(checkpoint);
    const { mean, std } = (ckpt.extra.cli as { preprocess: { features: { mean: number[]; std: number[] } } }).preprocess
      .features;
    const encoded = [
      [0.5, 0, 0, 1],
      [0.25, 0, 1, 0],
      [0, 1, 0, 0],
      [0.5, 0, 0, 0],
      [0.75, 0, 0, 0],
    ];
    const x = Float32Array.from(encoded.flat(), (v, i) => (v - mean[i % 4]!) / std[i % 4]!);
    const logits = predictOutputs(await loadModel(ckpt), x, { sampleShape: [4] });
    expect(predicted).toHaveLength(5);
    predicted.forEach((row, r) => {
      const [l0, l1] = [logits[2 * r]!, logits[2 * r + 1]!];
      expect(row["p(1)"]).toBeCloseTo(1 / (1 + Math.exp(l0 - l1)), 5);
      expect(row.bought).toBe(l1 > l0 ? "1" : "0");
    });
    // eval on other data encodes with the stored categories too: pink, never trained on, sets none
    // of the color inputs (fitting again would have made it an input the model does not have).
    const pink = join(tmp.path, "shop-pink.csv");
    writeFileSync(pink, `size,color,bought\n${"0.5,pink,1\n".repeat(10)}`);
    const ev2 = await run([
      "eval",
      "--checkpoint",
      checkpoint,
      "--data",
      `csv:${pink}`,
      "--target",
      "bought",
      "--json",
    ]);
    expect(ev2.stderr).toBe("");
    expect(ev2.code).toBe(0);
    const [l0, l1] = [logits[6]!, logits[7]!]; // the purple row: [0.5, 0, 0, 0]
    expect(jsonLines(ev2.stdout)[0]).toMatchObject({ samples: 2, accuracy: l1 > l0 ? 1 : 0 });
    expect(jsonLines(ev2.stdout)[0]!.loss).toBeCloseTo(Math.log(1 + Math.exp(l0 - l1)), 5);
    const extra = join(tmp.path, "shop-shade.csv");
    writeFileSync(extra, "size,color,shade\n0.5,red,dark\n");
    const unknown = await run(["predict", "--checkpoint", checkpoint, "--data", `csv:${extra}`]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain(
      `csv: ${extra}: column 3 ("shade") is not a feature the model was trained on (size, color)`,
    );
    const lacking = join(tmp.path, "shop-size.csv");
    writeFileSync(lacking, "size\n0.5\n");
    const lacks = await run(["predict", "--checkpoint", checkpoint, "--data", `csv:${lacking}`]);
    expect(lacks.code).toBe(2);
    expect(lacks.stderr).toContain(`csv: ${lacking} lacks the feature columns color`);
    const named = await run([...args, "--categorical", "colour"]);
    expect(named.code).toBe(2);
    expect(named.stderr).toContain('--categorical names "colour", which is no column (columns: size, color, bought)');
  });
});
