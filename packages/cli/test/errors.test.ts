// End-to-end: bad flags, bad values and malformed data end with exit status 2 and a message that
// names the flag or the file; --help, --version and bench work.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { idxBytes, jsonLines, requireBuilt, run, tempDir } from "./helpers.js";

const tmp = tempDir();
beforeAll(requireBuilt);
afterAll(tmp.cleanup);

/** An IDX folder of two 2x2 images per split with labels 0 and 3; `patch` may spoil one file. */
function idxDir(name: string, patch?: (file: string, bytes: Uint8Array) => Uint8Array): string {
  const dir = join(tmp.path, name);
  mkdirSync(dir);
  for (const prefix of ["train", "t10k"]) {
    const files: [string, Uint8Array][] = [
      [`${prefix}-images-idx3-ubyte`, idxBytes(0x803, [2, 2, 2], [0, 255, 255, 0, 255, 0, 0, 255])],
      [`${prefix}-labels-idx1-ubyte`, idxBytes(0x801, [2], [0, 3])],
    ];
    for (const [file, bytes] of files) writeFileSync(join(dir, file), patch ? patch(file, bytes) : bytes);
  }
  return dir;
}

function csv(name: string, text: string): string {
  const file = join(tmp.path, name);
  writeFileSync(file, text);
  return file;
}

const train = (...args: string[]) =>
  run(["train", "--epochs", "1", "--workers", "1", "--out", join(tmp.path, "out"), ...args]);

describe("usage errors exit 2 with a clear message", () => {
  it.each([
    [["--frobnicate"], /unknown option '--frobnicate'/],
    [["--lr", "-1"], /--lr must be a number >= 0, got -1/],
    [["--workers", "0"], /--workers must be auto or an integer from 1 to 256, got 0/],
    [["--model", "mlp:abc"], /--model must be mlp:SIZES .*got mlp:abc/],
    [["--model", "mlp:100,10"], /model: mlp input size 100 does not match the 784 features of digits/],
    [["--optimizer", "adam", "--momentum", "0.9"], /--momentum does not apply to --optimizer adam/],
    [
      ["--lr-schedule", "onecycle", "--warmup-steps", "10"],
      /--warmup-steps does not combine with --lr-schedule onecycle/,
    ],
    [["--data", "nope"], /data: unknown data set "nope"/],
  ])("train %j", async (args, message) => {
    const r = await train(...args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });

  it("refuses --out pointing at another run's folder (its metrics and checkpoints would be mixed)", async () => {
    const dir = tempDir();
    try {
      writeFileSync(join(dir.path, "metrics.jsonl"), "{}\n");
      const r = await train("--out", dir.path);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(
        /already holds a run's files \(metrics.jsonl\); choose another folder or pass --overwrite/,
      );
    } finally {
      dir.cleanup();
    }
  });

  it("reports every bad value of one command line", async () => {
    const r = await train("--lr", "-1", "--batch-size", "0", "--dropout", "1.5");
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--lr must be");
    expect(r.stderr).toContain("--batch-size must be");
    expect(r.stderr).toContain("--dropout must be");
  });

  it("checks config files like flags, and flags win over them", async () => {
    const bad = csv("bad.json", JSON.stringify({ lr: -2, "batch-size": 64, colour: "red" }));
    const r = await train("--config", bad);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${bad}: "lr" must be a number >= 0, got -2`);
    expect(r.stderr).toContain(`${bad}: unknown setting "colour"`);
    const good = csv("good.json", JSON.stringify({ lr: 0.1, limit: 128, batchSize: 64 }));
    const ok = await train("--config", good, "--lr", "0.001", "--json");
    expect(ok.code).toBe(0);
    expect(jsonLines(ok.stdout)[0]!.settings).toMatchObject({ lr: 0.001, limit: 128, batchSize: 64 });
  });
});

describe("malformed data exits 2 and names the file", () => {
  it("bad IDX magic", async () => {
    const dir = idxDir("magic", (file, b) =>
      file.startsWith("train-images") ? Object.assign(new Uint8Array(b), { 3: 0x99 }) : b,
    );
    const r = await train("--data", `idx:${dir}`);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${join(dir, "train-images-idx3-ubyte")} has bad magic number`);
  });

  it("truncated IDX", async () => {
    const dir = idxDir("truncated", (file, b) => (file.startsWith("t10k-labels") ? b.subarray(0, b.length - 1) : b));
    const r = await train("--data", `idx:${dir}`);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${join(dir, "t10k-labels-idx1-ubyte")} is truncated`);
  });

  it("CSV cell that is not a number, with its line and column", async () => {
    // A numeric column (--categorical names only x1) refuses text; auto refuses a stray text cell
    // in a column of numbers rather than reading the column as categories.
    const file = csv("cells.csv", "x1,x2,label\n1,2,0\n3,oops,1\n");
    const r = await train("--data", `csv:${file}`, "--target", "label", "--categorical", "x1");
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`csv: ${file} line 3, column 2 ("x2"): not a decimal number`);
    const rows = Array.from({ length: 12 }, (_, i) => `${i},${i === 5 ? "oops" : i},${i % 2}`).join("\n");
    const stray = csv("stray.csv", `x1,x2,label\n${rows}\n`);
    const auto = await train("--data", `csv:${stray}`, "--target", "label");
    expect(auto.code).toBe(2);
    expect(auto.stderr).toContain(
      `csv: ${stray} column 2 ("x2"): 11 of 12 cells are numbers, but line 7 is not; fix it, or pass --categorical x2`,
    );
  });

  it("CSV label out of range for the model's outputs", async () => {
    const rows = Array.from({ length: 20 }, (_, i) => `${i},${i % 7},${i % 4}`).join("\n");
    const file = csv("labels.csv", `x1,x2,label\n${rows}\n`);
    const r = await train("--data", `csv:${file}`, "--target", "label", "--model", "mlp:2,8,3");
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      new RegExp(`label 3 at row \\d+ \\(line \\d+\\) of ${file}.* is out of range for a model with 3 outputs`),
    );
  });

  it("IDX label out of range for the model's outputs", async () => {
    const dir = idxDir("labels");
    const r = await train("--data", `idx:${dir}`, "--model", "mlp:4,8,3");
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`label 3 at row`);
    expect(r.stderr).toContain(dir);
  });

  it("a checkpoint that is not one", async () => {
    const r = await run(["eval", "--checkpoint", csv("fake.msgpack", "hello")]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("fake.msgpack is not a threadgrad checkpoint");
  });
});

describe("help, version and bench", () => {
  it.each(["train", "eval", "predict", "bench"])("%s --help shows examples and exits 0", async (command) => {
    const r = await run([command, "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`$ threadgrad ${command}`);
  });

  it("--version prints the package version", async () => {
    const r = await run(["--version"]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it("bench --workers 1 --steps 5 --json ends with the bench event", async () => {
    const r = await run(["bench", "--workers", "1", "--steps", "5", "--warmup-steps", "1", "--json"]);
    expect(r.code).toBe(0);
    const last = jsonLines(r.stdout).pop()!;
    expect(last.event).toBe("bench");
    expect((last.workload as { name: string }).name).toBe("W1");
    const results = last.results as { workers: number; samplesPerSec: number }[];
    expect(results).toHaveLength(1);
    expect(results[0]!.workers).toBe(1);
    expect(results[0]!.samplesPerSec).toBeGreaterThan(0);
    expect(last.scalingEfficiency).toBe(1);
    // which matmul served: the BLAS where one is installed, else the WebAssembly kernel and why
    expect(last.matmul).toMatch(/one thread per worker$|^WebAssembly SIMD \(no native BLAS: .+\)$/);
  });

  it("bench says THREADGRAD_BLAS=off kept the products in WebAssembly", async () => {
    const r = await run(["bench", "--workers", "1", "--steps", "1", "--warmup-steps", "0"], {
      env: { THREADGRAD_BLAS: "off" },
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("matmul: WebAssembly SIMD (no native BLAS: THREADGRAD_BLAS=off)");
  });

  it("bench --model cnn runs W6 at batch 128 and says which data it trained on", async () => {
    const r = await run(["bench", "--model", "cnn", "--workers", "1", "--steps", "1", "--warmup-steps", "0", "--json"]);
    expect(r.code).toBe(0);
    const last = jsonLines(r.stdout).pop()!;
    const workload = last.workload as {
      name: string;
      model: string;
      batchSize: number;
      data: string;
      realData: boolean;
    };
    expect([workload.name, workload.model, workload.batchSize]).toEqual(["W6", "cnn", 128]);
    // Fashion-MNIST where it is installed, random data of its shape (said on stderr too) where not
    expect(workload.data).toMatch(
      workload.realData ? /^Fashion-MNIST train \(60,000 samples/ : /^random N\(0,1\) data/,
    );
    if (!workload.realData) expect(r.stderr).toContain("bench: note: Fashion-MNIST absent: random N(0,1) data");
    expect((last.results as { samplesPerSec: number }[])[0]!.samplesPerSec).toBeGreaterThan(0);
  });

  it("bench --model takes mlp:SIZES, cnn or chargpt, and the presets take no --activation", async () => {
    const r = await run(["bench", "--model", "lenet5", "--steps", "1"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--model must be mlp:SIZES");
    expect(r.stderr).toContain("or cnn or chargpt, got lenet5");
    const a = await run(["bench", "--model", "cnn", "--activation", "tanh"]);
    expect(a.code).toBe(2);
    expect(a.stderr).toContain("--activation applies to mlp models only; the cnn preset uses ReLU");
    const g = await run(["bench", "--model", "chargpt", "--activation", "relu"]);
    expect(g.code).toBe(2);
    expect(g.stderr).toContain("--activation applies to mlp models only; the chargpt preset uses GELU");
  });

  /** `bench --model chargpt` for one step on one worker, reading W7's text from `textDir`. */
  const benchW7 = (textDir: string) =>
    run(["bench", "--model", "chargpt", "--workers", "1", "--steps", "1", "--warmup-steps", "0", "--json"], {
      env: { THREADGRAD_FORTUNES_DIR: textDir },
    });

  it("bench --model chargpt runs W7 on the text and reports tokens/s", async () => {
    const dir = join(tmp.path, "w7-text");
    mkdirSync(dir);
    const text = "Q: Why? A: Because.\n%\n".repeat(20);
    writeFileSync(join(dir, "fortunes"), text);
    writeFileSync(join(dir, "fortunes.dat"), Uint8Array.of(0, 0, 0, 2));
    const r = await benchW7(dir);
    expect(r.code).toBe(0);
    expect(r.stderr).not.toContain("fortunes text absent");
    const last = jsonLines(r.stdout).pop()!;
    expect(last.event).toBe("bench");
    const workload = last.workload as Record<string, unknown>;
    expect(workload).toMatchObject({ name: "W7", model: "chargpt", batchSize: 32, tokensPerStep: 2048 });
    expect(workload).toMatchObject({
      data: `the fortunes text (${text.length} bytes of 1 file, ${dir})`,
      realData: true,
    });
    const [result] = last.results as { workers: number; samplesPerSec: number; tokensPerSec: number }[];
    expect(result!.workers).toBe(1);
    expect(result!.samplesPerSec).toBeGreaterThan(0);
    expect(result!.tokensPerSec).toBeCloseTo(result!.samplesPerSec * 64, 6);
  });

  it("bench --model chargpt without the text trains on random tokens and says so", async () => {
    const dir = join(tmp.path, "w7-empty");
    mkdirSync(dir);
    const r = await benchW7(dir);
    expect(r.code).toBe(0);
    const why = `text: ${dir} holds no text: no text file in the folder`;
    expect(r.stderr).toContain(`bench: note: fortunes text absent: random tokens (1,048,576 uniform bytes; ${why};`);
    const last = jsonLines(r.stdout).pop()!;
    expect(last.workload).toMatchObject({ name: "W7", realData: false });
    expect((last.workload as { data: string }).data).toContain(why);
    expect((last.results as { tokensPerSec: number }[])[0]!.tokensPerSec).toBeGreaterThan(0);
  });
});
