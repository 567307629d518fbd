// End-to-end: preprocessing (standardised features and targets, labels mapped to classes) and
// `threadgrad predict`, on generated csv files, through the built binary.
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readTrainerCheckpoint } from "@threadgrad/workers";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CSV_CHUNK_BYTES } from "../src/data/index.js";
import { jsonLines, requireBuilt, run, tempDir } from "./helpers.js";

const tmp = tempDir("threadgrad-predict-");
afterAll(tmp.cleanup);
beforeAll(requireBuilt);

/** A small seeded generator (LCG), so every file is the same on every run. */
function lcg(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
}

const grade = (income: number): number => (income < 40000 ? 1 : income < 50000 ? 2 : 3);

/** Two features in [0, 1) and an income in 30k-60k that alone decides the grade, labelled 1..3. */
function incomeCsv(file: string, rows: number): string {
  const rnd = lcg(7);
  const lines = ["a,b,income,grade"];
  for (let i = 0; i < rows; i++) {
    const income = Math.round(30000 + 30000 * rnd());
    lines.push(`${rnd().toFixed(3)},${rnd().toFixed(3)},${income},${grade(income)}`);
  }
  const path = join(tmp.path, file);
  writeFileSync(path, `${lines.join("\n")}\n`);
  return path;
}

/** House prices: about 50k + 20k a room + 1.5k a square metre - 800 a year of age, +-5k noise. */
function housesCsv(file: string, rows: number): string {
  const rnd = lcg(11);
  const lines = ["rooms,area,age,price"];
  for (let i = 0; i < rows; i++) {
    const rooms = 1 + Math.floor(rnd() * 6),
      area = 40 + 200 * rnd(),
      age = Math.floor(rnd() * 80);
    const price = Math.round(50000 + 20000 * rooms + 1500 * area - 800 * age + 10000 * (rnd() - 0.5));
    lines.push(`${rooms},${area.toFixed(1)},${age},${price}`);
  }
  const path = join(tmp.path, file);
  writeFileSync(path, `${lines.join("\n")}\n`);
  return path;
}

const summaryOf = (stdout: string) => jsonLines(stdout).at(-1)!;
const TRAIN = ["--workers", "1", "--json"];

describe("preprocessing in train, eval and predict", () => {
  it(
    "a feature on a 30k-60k scale: labels 1..3 make 3 " + "classes, high accuracy, predictions printed as 1..3",
    async () => {
      const data = incomeCsv("income.csv", 600);
      const out = join(tmp.path, "income");
      const r = await run(["train", "--data", `csv:${data}`, "--target", "grade", ...TRAIN, "--out", out]);
      expect(r.code).toBe(0);
      const summary = summaryOf(r.stdout);
      // Unscaled, this set stayed at chance (31-38%).
      expect(summary.testAccuracy).toBeGreaterThanOrEqual(0.9);
      const ckpt = readTrainerCheckpoint(join(out, "checkpoint-best.msgpack"));
      expect((ckpt.config.model as { sizes: number[] }).sizes).toEqual([3, 128, 3]);
      const pre = (ckpt.extra.cli as { preprocess: Record<string, unknown> }).preprocess;
      expect(pre.classes).toEqual(["1", "2", "3"]);
      expect(pre.featureNames).toEqual(["a", "b", "income"]);
      const mean = (pre.features as { mean: number[] }).mean;
      expect(mean[2]).toBeGreaterThan(40000);
      expect(mean[2]).toBeLessThan(50000);

      // New rows without a target column, columns in another order: one clear row per grade.
      const fresh = join(tmp.path, "fresh.csv");
      writeFileSync(fresh, "income,b,a\n32000,0.5,0.5\n45000,0.1,0.9\n58000,0.9,0.1\n33500,0.2,0.2\n");
      const p = await run(["predict", "--checkpoint", join(out, "checkpoint-best.msgpack"), "--data", `csv:${fresh}`]);
      expect([p.code, p.stderr]).toEqual([0, ""]);
      expect(p.stdout).toBe("grade\n1\n2\n3\n1\n");

      // A file of several 1 MiB chunks, streamed in batches of 1000: every row, in input order.
      const big = join(tmp.path, "big.csv");
      const incomes = Array.from({ length: 100000 }, (_, i) => 30500 + ((i * 7919) % 29000));
      writeFileSync(big, `income,a,b\n${incomes.map((v) => `${v},0.5,0.5`).join("\n")}\n`);
      expect(statSync(big).size).toBeGreaterThan(CSV_CHUNK_BYTES);
      const streamed = await run([
        "predict",
        "--checkpoint",
        join(out, "checkpoint-best.msgpack"),
        "--data",
        `csv:${big}`,
        "--batch-size",
        "1000",
      ]);
      const lines = streamed.stdout.trim().split("\n");
      expect(lines.length).toBe(100001);
      const agree = incomes.filter((v, i) => lines[i + 1] === String(grade(v))).length;
      expect(agree / incomes.length).toBeGreaterThan(0.95);

      const proba = await run([
        "predict",
        "--checkpoint",
        join(out, "checkpoint-best.msgpack"),
        "--data",
        `csv:${fresh}`,
        "--proba",
        "--json",
      ]);
      const rows = jsonLines(proba.stdout);
      expect(rows).toHaveLength(4);
      expect(Object.keys(rows[0]!)).toEqual(["p(1)", "p(2)", "p(3)", "grade"]);
      for (const row of rows) {
        const ps = [row["p(1)"], row["p(2)"], row["p(3)"]] as number[];
        expect(ps.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
        expect(String(ps.indexOf(Math.max(...ps)) + 1)).toBe(row.grade);
      }
    },
  );

  it("--no-normalize feeds raw features and stores no scaling", async () => {
    const data = incomeCsv("raw.csv", 100);
    const out = join(tmp.path, "raw");
    const again = await run([
      "train",
      "--data",
      `csv:${data}`,
      "--target",
      "grade",
      ...TRAIN,
      "--epochs",
      "1",
      "--no-normalize",
      "--out",
      out,
    ]);
    expect(again.code).toBe(0);
    const stored = (dir: string) => {
      const ckpt = readTrainerCheckpoint(join(dir, "checkpoint-latest.msgpack"));
      const cli = ckpt.extra.cli as { settings: { normalize: boolean }; preprocess: { features: unknown } };
      return [cli.settings.normalize, cli.preprocess.features];
    };
    expect(stored(out)).toEqual([false, null]);
    // A config file says the same; the flag's absence does not override it.
    const config = join(tmp.path, "raw.json");
    writeFileSync(config, JSON.stringify({ data: `csv:${data}`, target: "grade", epochs: 1, normalize: false }));
    const fromFile = join(tmp.path, "raw-config");
    expect((await run(["train", "--config", config, ...TRAIN, "--out", fromFile])).code).toBe(0);
    expect(stored(fromFile)).toEqual([false, null]);
  });

  it("house prices with the README's SGD example: RMSE in dollars, eval and predict in the same units", async () => {
    const data = housesCsv("houses.csv", 600);
    const out = join(tmp.path, "houses");
    const args = ["--optimizer", "sgd", "--lr", "0.01", "--momentum", "0.9"];
    const r = await run(["train", "--data", `csv:${data}`, "--target", "price", ...args, ...TRAIN, "--out", out]);
    expect(r.code).toBe(0);
    const summary = summaryOf(r.stdout);
    // Prices spread about 100k; the noise alone is about 2.9k. Unscaled this run diverged (MSE 1.4e9).
    expect(summary.testRmse).toBeLessThan(10000);
    expect(summary.testMse).toBeCloseTo((summary.testRmse as number) ** 2, 0);
    const best = join(out, "checkpoint-best.msgpack");
    const ev = await run(["eval", "--checkpoint", best, "--json"]);
    const result = jsonLines(ev.stdout)[0]!;
    expect(result.rmse).toBeLessThan(10000);
    expect(result.rmse).toBeCloseTo(Math.sqrt(result.loss as number), 6);

    const fresh = join(tmp.path, "homes.csv");
    writeFileSync(fresh, "rooms,area,age\n3,100,10\n5,200,40\n");
    const p = await run(["predict", "--checkpoint", best, "--data", `csv:${fresh}`, "--out", join(tmp.path, "p.csv")]);
    expect(p.code).toBe(0);
    const [header, ...values] = readFileSync(join(tmp.path, "p.csv"), "utf8").trim().split("\n");
    expect(header).toBe("price");
    const expected = [50000 + 60000 + 150000 - 8000, 50000 + 100000 + 300000 - 32000];
    values.forEach((v, i) => {
      expect(Math.abs(Number(v) - expected[i]!)).toBeLessThan(15000);
    });

    // The ONNX graph takes the raw features and gives prices: the same figures predict printed.
    const onnx = join(tmp.path, "houses.onnx");
    const e = await run(["export", "--checkpoint", best, "--out", onnx]);
    expect(e.stdout).toBe(
      `wrote ${onnx} (onnx: input [batch, 3] float32 -> values [batch, 1]; ` +
        "the graph standardises its inputs and gives target units)\n",
    );
    const session = await ort.InferenceSession.create(onnx);
    const raw = new ort.Tensor("float32", Float32Array.of(3, 100, 10, 5, 200, 40), [2, 3]);
    const got = (await session.run({ input: raw })).values!.data as Float32Array;
    values.forEach((v, i) => {
      expect(Math.abs(got[i]! - Number(v))).toBeLessThan(1);
    });
  });

  it("text labels: class names in eval's table and in predictions; bad inputs are named", async () => {
    const rnd = lcg(3);
    const lines = ["length,width,species"];
    for (let i = 0; i < 300; i++) {
      const big = rnd() < 0.5;
      lines.push(`${((big ? 5 : 1) + rnd()).toFixed(2)},${(rnd() * 2).toFixed(2)},${big ? '"large, one"' : "small"}`);
    }
    const data = join(tmp.path, "species.csv");
    writeFileSync(data, `${lines.join("\n")}\n`);
    const out = join(tmp.path, "species");
    const trained = await run(["train", "--data", `csv:${data}`, "--target", "species", ...TRAIN, "--out", out]);
    expect(trained.code).toBe(0);
    const best = join(out, "checkpoint-best.msgpack");
    const ev = await run(["eval", "--checkpoint", best]);
    expect(ev.stdout).toMatch(/^large, one +\d+/m);
    expect(ev.stdout).toMatch(/^small +\d+/m);

    // Other data is mapped into the trained classes and columns, or refused naming the problem.
    const unseen = join(tmp.path, "unseen.csv");
    writeFileSync(unseen, "length,width,species\n1,1,small\n3,1,medium\n");
    const u = await run(["eval", "--checkpoint", best, "--data", `csv:${unseen}`, "--target", "species"]);
    expect(u.code).toBe(2);
    expect(u.stderr).toContain(
      `csv: ${unseen} line 3, column 3 ("species"): the label "medium" is not one of the 2 classes ` +
        "the model was trained on: large, one, small",
    );
    const swapped = join(tmp.path, "swapped.csv");
    writeFileSync(swapped, `width,length,species\n${"1,1,small\n".repeat(5)}`);
    const w = await run(["eval", "--checkpoint", best, "--data", `csv:${swapped}`, "--target", "species"]);
    expect(w.code).toBe(2);
    expect(w.stderr).toContain(`has feature columns width, length, but ${best} was trained on length, width`);

    const fresh = join(tmp.path, "plants.csv");
    writeFileSync(fresh, "length,width,species\n5.5,1,\n1.2,1,?\n");
    const p = await run(["predict", "--checkpoint", best, "--data", `csv:${fresh}`]);
    expect(p.stdout).toBe('species\n"large, one"\nsmall\n');
    const asJson = await run(["predict", "--checkpoint", best, "--data", `csv:${fresh}`, "--json"]);
    expect(jsonLines(asJson.stdout)).toEqual([{ species: "large, one" }, { species: "small" }]);

    const missing = join(tmp.path, "missing.csv");
    writeFileSync(missing, "length\n1\n");
    const m = await run([
      "predict",
      "--checkpoint",
      best,
      "--data",
      `csv:${missing}`,
      "--out",
      join(tmp.path, "m.csv"),
    ]);
    expect(m.code).toBe(2);
    expect(m.stderr).toContain(`csv: ${missing} lacks the feature columns width`);
    expect(existsSync(join(tmp.path, "m.csv"))).toBe(false);

    const bad = join(tmp.path, "bad.csv");
    writeFileSync(bad, "length,width\n1,2\n3,wide\n");
    const b = await run(["predict", "--checkpoint", best, "--data", `csv:${bad}`, "--out", join(tmp.path, "b.csv")]);
    expect(b.code).toBe(2);
    expect(b.stderr).toContain(`csv: ${bad} line 3, column 2 ("width"): not a decimal number`);
    expect(existsSync(join(tmp.path, "b.csv"))).toBe(false);

    writeFileSync(join(tmp.path, "kept.csv"), "mine\n");
    const kept = await run([
      "predict",
      "--checkpoint",
      best,
      "--data",
      `csv:${fresh}`,
      "--out",
      join(tmp.path, "kept.csv"),
    ]);
    expect(kept.code).toBe(2);
    expect(kept.stderr).toContain("kept.csv already exists; pass --force to replace it");
    expect(readFileSync(join(tmp.path, "kept.csv"), "utf8")).toBe("mine\n");
  });

  it("image sets: one prediction per test image, named after the label", async () => {
    const out = join(tmp.path, "digits");
    const r = await run(["train", "--limit", "300", "--epochs", "1", "--workers", "1", "--quiet", "--out", out]);
    expect(r.code).toBe(0);
    const best = join(out, "checkpoint-best.msgpack");
    const p = await run(["predict", "--checkpoint", best, "--data", "digits", "--batch-size", "500"]);
    const [header, ...rows] = p.stdout.trim().split("\n");
    expect(header).toBe("label");
    expect(rows.length).toBe(1667);
    expect(rows.every((v) => /^[0-9]$/.test(v))).toBe(true);
    const wrong = await run(["predict", "--checkpoint", best, "--data", `csv:${join(tmp.path, "none.csv")}`]);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain(`csv: cannot read ${join(tmp.path, "none.csv")}`);
  });
});
