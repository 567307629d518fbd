// End-to-end: `--model` beyond the mlp. A user module trains; its checkpoint is evaluated, resumed
// or exported only when --model names the module again (a module the file names is never
// imported); the built-in cnn sizes itself from an image folder (and exports to ONNX), trains the
// same on 1 and 2 workers, and is refused on csv rows.
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Generator, tensor } from "@threadgrad/core";
import { loadModel, readTrainerCheckpoint } from "@threadgrad/workers";
import jpeg from "jpeg-js";
import * as ort from "onnxruntime-node";
import { PNG } from "pngjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jsonLines, requireBuilt, run, tempDir } from "./helpers.js";

const tmp = tempDir();
const CSV = join(tmp.path, "d.csv");
const NET = join(tmp.path, "net.mjs");
const MARKER = join(tmp.path, "net-imported");
const CORE = pathToFileURL(fileURLToPath(new URL("../../core/dist/index.js", import.meta.url))).href;

/** 60 rows, 4 features, 3 classes. */
function writeCsv(): void {
  const g = new Generator(4);
  const rows = Array.from(
    { length: 60 },
    (_, i) => `${[0, 1, 2, 3].map(() => g.random().toFixed(3)).join(",")},${i % 3}`,
  );
  writeFileSync(CSV, `a,b,c,d,y\n${rows.join("\n")}\n`);
}

/** A model module that leaves a marker file whenever it is imported. */
function writeNet(): void {
  writeFileSync(
    NET,
    `import { writeFileSync } from "node:fs";
import { nn } from ${JSON.stringify(CORE)};
writeFileSync(${JSON.stringify(MARKER)}, "imported");
export function build() {
  return new nn.Sequential(new nn.Linear(4, 6), new nn.Tanh(), new nn.Linear(6, 3));
}
`,
  );
}

const cli = (...args: string[]) => run(args, { cwd: tmp.path });

beforeAll(() => {
  requireBuilt();
  writeCsv();
  writeNet();
});
afterAll(tmp.cleanup);

describe("--model ./net.mjs#export", () => {
  const ckpt = join(tmp.path, "run", "checkpoint-latest.msgpack");
  const csv = ["--data", `csv:${CSV}`, "--target", "y", "--workers", "1"];

  it("trains the module's model; its checkpoint loads only with --model again", async () => {
    const r = await cli("train", ...csv, "--model", "./net.mjs#build", "--epochs", "1", "--out", "run", "--quiet");
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(MARKER)).toBe(true);
    const stored = readTrainerCheckpoint(ckpt);
    expect(stored.config.model).toEqual({ module: pathToFileURL(NET).href, export: "build" });
    expect([...stored.params.keys()]).toEqual(["0.weight", "0.bias", "2.weight", "2.bias"]);

    // Without --model: refused, naming the module and the flag, and the module is not imported.
    rmSync(MARKER);
    const refused = await cli("eval", "--checkpoint", ckpt, "--workers", "1");
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`its model was built by module "${pathToFileURL(NET).href}" (export "build")`);
    expect(refused.stderr).toContain(`pass --model ${NET}#build to load it with that module`);
    const resume = await cli("train", "--resume", ckpt, "--epochs", "2", "--workers", "1");
    expect(resume.code).toBe(2);
    expect(resume.stderr).toContain(`pass --model ${NET}#build`);
    expect(existsSync(MARKER)).toBe(false);

    // With it: the module builds the model and the stored parameters go in.
    const ev = await cli("eval", "--checkpoint", ckpt, "--workers", "1", "--model", "./net.mjs#build", "--json");
    expect(ev.code, ev.stderr).toBe(0);
    expect(existsSync(MARKER)).toBe(true);
    const result = JSON.parse(ev.stdout.trim().split("\n").at(-1)!);
    expect(result).toMatchObject({ event: "eval", samples: 12 });
    expect(result.accuracy).toBeGreaterThanOrEqual(0);
    // predict too: refused without --model (nothing imported), and with it one prediction per row.
    rmSync(MARKER);
    const noModel = await cli("predict", "--checkpoint", ckpt, "--data", `csv:${CSV}`);
    expect(noModel.code).toBe(2);
    expect(noModel.stderr).toContain(`pass --model ${NET}#build to load it with that module`);
    expect(existsSync(MARKER)).toBe(false);
    const predicted = await cli("predict", "--checkpoint", ckpt, "--data", `csv:${CSV}`, "--model", "./net.mjs#build");
    expect(predicted.code, predicted.stderr).toBe(0);
    const lines = predicted.stdout.trim().split("\n");
    expect(lines[0]).toBe("y");
    expect(lines.length).toBe(61); // the header, then one of the classes 0, 1, 2 for each of the 60 rows
    expect(lines.slice(1).every((l) => ["0", "1", "2"].includes(l))).toBe(true);
    const resumed = await cli("train", "--resume", ckpt, "--epochs", "2", "--model", "./net.mjs#build", "--quiet");
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(readTrainerCheckpoint(ckpt).progress.epoch).toBe(2);
  });

  it("a module whose parameters differ from the checkpoint's is refused by name and shape", async () => {
    const other = join(tmp.path, "wide.mjs");
    writeFileSync(
      other,
      `import { nn } from ${JSON.stringify(CORE)};\n` +
        "export function build() { return new nn.Sequential(new " +
        "nn.Linear(4, 7), new nn.Tanh(), new nn.Linear(7, 3)); }\n",
    );
    const r = await cli("eval", "--checkpoint", ckpt, "--workers", "1", "--model", "./wide.mjs#build");
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/0\.weight/);
  });

  it("eval refuses a built-in model name for --model: built-in models come from the checkpoint", async () => {
    const r = await cli("eval", "--checkpoint", ckpt, "--model", "cnn");
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--model cnn: eval takes --model only as a module path (./net.mjs[#export])");
  });

  it("export names the module and says how to export it from code", async () => {
    const r = await cli("export", "--checkpoint", ckpt, "--out", join(tmp.path, "net.onnx"));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`export: ${ckpt} holds a model from a user module`);
  });
});

describe("--model cnn", () => {
  it("sizes itself from an image folder; eval, a safetensors and an ONNX export follow", async () => {
    const dir = join(tmp.path, "shapes");
    for (const [label, name] of ["dark", "light"].entries()) {
      mkdirSync(join(dir, name), { recursive: true });
      for (let i = 0; i < 12; i++) {
        const level = label === 0 ? 20 + i : 220 - i;
        const data = Buffer.alloc(8 * 8 * 4, level);
        for (let p = 3; p < data.length; p += 4) data[p] = 255;
        const file = join(dir, name, `${i}.${i % 2 ? "png" : "jpg"}`);
        if (i % 2) {
          const png = new PNG({ width: 8, height: 8 });
          png.data.set(data);
          writeFileSync(file, PNG.sync.write(png));
        } else writeFileSync(file, jpeg.encode({ width: 8, height: 8, data }, 90).data);
      }
    }
    const r = await cli("train", "--data", `images:${dir}`, "--model", "cnn", "--epochs", "3", "--workers", "2");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr + r.stdout).toContain(`training cnn on images:${dir}: 19 train / 5 test samples`);
    const runDir = /run folder\s+(\S+)/.exec(r.stdout)![1]!;
    const ckpt = resolve(tmp.path, runDir, "checkpoint-latest.msgpack");
    // The JPEGs are colour files (their lossy gray is not exactly R = G = B): three channels.
    // 8×8 pools to 2×2, so the classifier takes 64·2·2.
    const stored = readTrainerCheckpoint(ckpt);
    expect(stored.config.model).toEqual({ kind: "cnn", inChannels: 3, height: 8, width: 8, classes: 2 });
    expect(stored.params.get("1.weight")!.shape).toEqual([32, 3, 3, 3]);
    expect(stored.params.get("8.weight")!.shape).toEqual([128, 256]);
    const ev = await cli("eval", "--checkpoint", ckpt, "--workers", "1", "--json");
    expect(ev.code, ev.stderr).toBe(0);
    expect(JSON.parse(ev.stdout.trim().split("\n").at(-1)!)).toMatchObject({ samples: 5 });
    const exported = await cli(
      "export",
      "--checkpoint",
      ckpt,
      "--format",
      "safetensors",
      "--out",
      join(tmp.path, "w.st"),
    );
    expect(exported.code, exported.stderr).toBe(0);
    expect(exported.stdout).toContain("safetensors: the cnn's 8 tensors");
    // --augment redraws crops and flips each epoch; the run record keeps it for a resume.
    const aug = await cli(
      "train",
      "--data",
      `images:${dir}`,
      "--model",
      "cnn",
      "--augment",
      "--epochs",
      "2",
      "--workers",
      "2",
      "--out",
      "aug",
      "--quiet",
    );
    expect(aug.code, aug.stderr).toBe(0);
    const augRun = readTrainerCheckpoint(join(tmp.path, "aug", "checkpoint-latest.msgpack"));
    expect((augRun.extra as { cli: { settings: { augment: boolean } } }).cli.settings.augment).toBe(true);
    expect(augRun.progress.epoch).toBe(2);
    // ONNX: the graph takes the flat rows the CLI feeds, [batch, 3·8·8], and gives the loaded model's logits.
    const onnxPath = join(tmp.path, "w.onnx");
    const onnx = await cli("export", "--checkpoint", ckpt, "--out", onnxPath);
    expect(onnx.code, onnx.stderr).toBe(0);
    expect(onnx.stdout).toBe(`wrote ${onnxPath} (onnx: input [batch, 192] float32 -> logits [batch, 2])\n`);
    const model = await loadModel(ckpt);
    const g = new Generator(9);
    const rows = Float32Array.from({ length: 5 * 192 }, () => g.random());
    const expected = model.forward(tensor(rows, { shape: [5, 192] }));
    const session = await ort.InferenceSession.create(onnxPath);
    const got = (await session.run({ input: new ort.Tensor("float32", rows, [5, 192]) })).logits!;
    expect(got.dims).toEqual([5, 2]);
    const data = got.data as Float32Array;
    for (let i = 0; i < 10; i++) expect(Math.abs(data[i]! - expected.data[i]!)).toBeLessThanOrEqual(1e-5);
    expect(new Set(data).size).toBeGreaterThan(1);
  });

  it("trains the same on 1 and 2 workers: each evaluation's test loss to 1e-4, the same accuracy", async () => {
    // 256 built-in digits (28×28, the preset's full size: both convolutions, both poolings, the
    // 3136-wide classifier), 2 epochs of 4 Adam steps, 500 test digits evaluated after each epoch.
    const evals = async (workers: string) => {
      const args = ["train", "--model", "cnn", "--limit", "256", "--test-split", "0.05", "--epochs", "2"];
      args.push("--batch-size", "64", "--workers", workers, "--out", `cnn-${workers}w`, "--json");
      // About 20 s each on a 2-core machine shared with a dozen other jobs.
      const r = await run(args, { cwd: tmp.path, timeoutMs: 110_000 });
      expect(r.code, r.stderr).toBe(0);
      return jsonLines(r.stdout).filter((e) => e.event === "eval") as { testLoss: number; testAccuracy: number }[];
    };
    const one = await evals("1");
    const two = await evals("2");
    expect(one.length).toBe(2);
    expect(two.length).toBe(2);
    // It learns: the second evaluation's loss is below the first, which is below chance's ln 10.
    expect(one[1]!.testLoss).toBeLessThan(one[0]!.testLoss);
    expect(one[0]!.testLoss).toBeLessThan(Math.log(10));
    for (let i = 0; i < 2; i++) {
      expect(Math.abs(two[i]!.testLoss - one[i]!.testLoss)).toBeLessThanOrEqual(1e-4);
      expect(two[i]!.testAccuracy).toBe(one[i]!.testAccuracy);
    }
  }, 240_000);

  it("--augment is refused on flat csv rows", async () => {
    const r = await cli("train", "--data", `csv:${CSV}`, "--target", "y", "--augment", "--workers", "1");
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `--augment needs image data (channels × height × width per sample), but csv:${CSV} has flat rows`,
    );
  });

  it("is refused on flat csv rows, naming the data and the fix", async () => {
    const r = await cli("train", "--data", `csv:${CSV}`, "--target", "y", "--model", "lenet5", "--workers", "1");
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `--model lenet5 needs image data (channels × height × width per sample), but csv:${CSV} has flat rows of 4 features; ` +
        "use --model mlp:4,128,3 for tabular data",
    );
  });
});
