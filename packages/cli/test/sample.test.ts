// End-to-end: `threadgrad sample` on gpt checkpoints made without training (DataParallel.create then
// save), some with a head bias that forces the bytes it emits. stdout is read as raw bytes, so a
// sequence that is not UTF-8 would show.
import { spawn, spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { DataParallel, type ModelSpec, type StoredTensor, readCheckpoint, writeCheckpoint } from "@threadgrad/workers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BIN, requireBuilt, tempDir } from "./helpers.js";

const tmp = tempDir("threadgrad-sample-");
const GPT = { kind: "gpt", vocab: 256, context: 16, dim: 16, heads: 2, layers: 1 } as const;
const WORKERS = pathToFileURL(fileURLToPath(new URL("../../workers/dist/index.js", import.meta.url))).href;
const path = (name: string) => join(tmp.path, name);

async function save(model: ModelSpec, file: string): Promise<string> {
  const t = await DataParallel.create({ model, workers: 1, seed: 1 });
  try {
    await t.save(path(file));
  } finally {
    await t.close();
  }
  return path(file);
}

/** A copy of `from` whose head bias is `bias` at the given byte values (weights unchanged). */
function biased(from: string, file: string, bias: [id: number, value: number][]): string {
  const payload = readCheckpoint(from) as { params: Record<string, StoredTensor> };
  const stored = payload.params["head.bias"]!;
  const values = new Float32Array(new Uint8Array(stored.bytes).buffer);
  for (const [id, b] of bias) values[id] = b;
  payload.params["head.bias"] = { ...stored, bytes: new Uint8Array(values.buffer) };
  writeCheckpoint(path(file), payload);
  return path(file);
}

interface Result {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

function sample(...args: string[]): Result {
  const r = spawnSync(process.execPath, [BIN, "sample", ...args], { cwd: tmp.path, timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr.toString("utf8") };
}

/** The bytes as UTF-8, throwing on any sequence that is not. */
const strictUtf8 = (b: Buffer): string => new TextDecoder("utf-8", { fatal: true }).decode(b);

let plain: string;
let mlp: string;

beforeAll(async () => {
  requireBuilt();
  plain = await save(GPT, "gpt.msgpack");
  mlp = await save({ kind: "mlp", sizes: [4, 3] }, "mlp.msgpack");
});
afterAll(tmp.cleanup);

describe("threadgrad sample", () => {
  it("gives the same bytes for a seed and other bytes for another seed", () => {
    const args = ["--checkpoint", plain, "--prompt", "Hi", "--tokens", "40", "--temperature", "1"];
    const a = sample(...args, "--seed", "3");
    expect(a.code, a.stderr).toBe(0);
    expect(a.stdout.subarray(0, 2).toString()).toBe("Hi");
    expect(sample(...args, "--seed", "3").stdout).toEqual(a.stdout);
    expect(sample(...args, "--seed", "4").stdout).not.toEqual(a.stdout);
    strictUtf8(a.stdout);
  });

  it("with --top-k 1 prints the greedy (--temperature 0) text", () => {
    const args = ["--checkpoint", plain, "--prompt", "abc", "--tokens", "30"];
    const greedy = sample(...args, "--temperature", "0");
    expect(greedy.code, greedy.stderr).toBe(0);
    expect(sample(...args, "--top-k", "1", "--temperature", "1.5", "--seed", "9").stdout).toEqual(greedy.stdout);
  });

  it("prints only the prompt and the text on stdout, nothing on stderr", () => {
    const file = biased(plain, "a.msgpack", [[0x61, 100]]);
    const r = sample("--checkpoint", file, "--prompt", "Hé", "--tokens", "12", "--seed", "1");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.toString("utf8")).toBe(`Hé${"a".repeat(12)}`);
    expect(r.stderr).toBe("");
    // An empty prompt: the model starts after a newline byte that is not printed.
    expect(sample("--checkpoint", file, "--tokens", "3").stdout.toString("utf8")).toBe("aaa");
  });

  it("prints valid UTF-8 when the model emits bytes that are not (0xC3 lead bytes, 0xFF)", () => {
    const lead = biased(plain, "c3.msgpack", [[0xc3, 100]]);
    const r = sample("--checkpoint", lead, "--prompt", "x", "--tokens", "5", "--temperature", "0");
    expect(r.code, r.stderr).toBe(0);
    // Each 0xC3 is cut short by the next; the last one is flushed at the end.
    expect(strictUtf8(r.stdout)).toBe(`x${"\uFFFD".repeat(5)}`);

    const mixed = biased(plain, "mixed.msgpack", [
      [0xc3, 100],
      [0xa9, 100],
      [0xff, 100],
    ]);
    const m = sample("--checkpoint", mixed, "--prompt", "", "--tokens", "60", "--seed", "2");
    expect(m.code, m.stderr).toBe(0);
    const text = strictUtf8(m.stdout);
    expect(text).toMatch(/^[é\uFFFD]+$/);
    expect(text).toContain("é");
    expect(text).toContain("\uFFFD");
  });

  it("keeps the last context bytes of a longer prompt, and says so on stderr", () => {
    const long = "The quick brown fox jumps over the lazy dog";
    const args = ["--checkpoint", plain, "--tokens", "20", "--seed", "5", "--temperature", "0.8", "--top-k", "40"];
    const full = sample(...args, "--prompt", long);
    expect(full.code, full.stderr).toBe(0);
    expect(full.stderr).toContain(`the prompt has ${long.length} bytes; the model sees its last 16`);
    const cut = sample(...args, "--prompt", long.slice(-16));
    expect(full.stdout.subarray(0, long.length).toString()).toBe(long);
    expect(full.stdout.subarray(long.length)).toEqual(cut.stdout.subarray(16));
  });

  it("refuses a checkpoint that is not a token model over bytes, naming what it holds", async () => {
    const r = sample("--checkpoint", mlp, "--prompt", "x");
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`sample: ${mlp} holds the built-in mlp, not a token model`);
    expect(r.stdout.length).toBe(0);
    const words = await save({ ...GPT, vocab: 100 }, "vocab100.msgpack");
    const w = sample("--checkpoint", words);
    expect(w.code).toBe(2);
    expect(w.stderr).toContain("holds a gpt over 100 token ids; sample decodes bytes and needs vocab 256");
  });

  it("names bad flag values", () => {
    const cases: [string[], string][] = [
      [["--temperature", "-1"], "--temperature must be a number >= 0 and <= 1000000, got -1"],
      [["--top-k", "0"], "--top-k must be an integer >= 1 and <= 256, got 0"],
      [["--tokens", "1.5"], "--tokens must be an integer >= 0 and <= 1000000, got 1.5"],
      [["--model", "chargpt"], "--model chargpt: sample takes --model only as a module path"],
    ];
    for (const [flags, message] of cases) {
      const r = sample("--checkpoint", plain, ...flags);
      expect(r.code, flags.join(" ")).toBe(2);
      expect(r.stderr).toContain(message);
    }
  });

  it("loads a module's model only with --model, and refuses one that is not a token model", async () => {
    writeFileSync(
      path("net.mjs"),
      `import { Gpt, buildMlp } from ${JSON.stringify(WORKERS)};
export const gpt = () => new Gpt(${JSON.stringify(GPT)});
export const mlp = () => buildMlp([4, 3]);
`,
    );
    const url = pathToFileURL(path("net.mjs")).href;
    const fromModule = await save({ module: url, export: "gpt" }, "module.msgpack");
    const refused = sample("--checkpoint", fromModule, "--prompt", "x");
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`pass --model ${path("net.mjs")}#gpt`);
    const r = sample("--checkpoint", fromModule, "--model", "./net.mjs#gpt", "--prompt", "x", "--tokens", "8");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.subarray(0, 1).toString()).toBe("x");
    strictUtf8(r.stdout);

    const notTokens = await save({ module: url, export: "mlp" }, "module-mlp.msgpack");
    const m = sample("--checkpoint", notTokens, "--model", "./net.mjs#mlp", "--prompt", "x");
    expect(m.code).toBe(2);
    expect(m.stderr).toContain("has no context field");
  });

  it("stops on Ctrl-C with what it printed ending in valid UTF-8, exit 130", async () => {
    // Every byte is a lead byte cut short by the next: the decoder holds one when the signal comes.
    const lead = biased(plain, "c3-long.msgpack", [[0xc3, 100]]);
    const args = ["sample", "--checkpoint", lead, "--prompt", "go", "--tokens", "1000000", "--temperature", "0"];
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    const chunks: Buffer[] = [];
    let stderr = "";
    let signalled = false;
    child.stdout.on("data", (b: Buffer) => {
      chunks.push(b);
      // Once text beyond the prompt has come out, generation is under way and the handler is in place.
      if (!signalled && Buffer.concat(chunks).length > 2) {
        signalled = true;
        child.kill("SIGINT");
      }
    });
    child.stderr.on("data", (b: Buffer) => {
      stderr += b.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
    expect(code, stderr).toBe(130);
    expect(stderr).toMatch(/sample: stopped by Ctrl-C after \d+ of 1000000 tokens/);
    const text = strictUtf8(Buffer.concat(chunks));
    expect(text).toMatch(/^go\uFFFD+$/);
  });
});

describe("--model gpt on the command line", () => {
  const threadgrad = (...args: string[]) => {
    const r = spawnSync(process.execPath, [BIN, ...args], { cwd: tmp.path, timeout: 60_000, encoding: "utf8" });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  it("train --help lists chargpt and the gpt form; sample --help shows its examples", () => {
    const train = threadgrad("train", "--help");
    expect(train.code).toBe(0);
    expect(train.stdout.replace(/\s+/g, " ")).toContain("chargpt or gpt:layers=2,heads=4,dim=128,context=64");
    const help = threadgrad("sample", "--help");
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("--top-k <k>");
    expect(help.stdout).toContain("0 = greedy");
  });

  it("train names an unknown gpt key, and refuses a gpt on float samples", () => {
    const unknown = threadgrad("train", "--model", "gpt:width=64", "--workers", "1");
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain(`--model must be gpt:KEY=N,...`);
    expect(unknown.stderr).toContain(`unknown key 'width', got "gpt:width=64"`);
    const floats = threadgrad("train", "--model", "chargpt", "--limit", "20", "--workers", "1", "--out", "r");
    expect(floats.code).toBe(2);
    expect(floats.stderr).toContain(
      "--model gpt:layers=2,heads=4,dim=128,context=64 takes token ids (text data), but digits has float samples",
    );
  });

  it("export writes a gpt as safetensors under PyTorch's names and refuses ONNX", () => {
    const out = path("gpt.safetensors");
    const r = threadgrad("export", "--checkpoint", plain, "--format", "safetensors", "--out", out);
    expect(r.code, r.stderr).toBe(0);
    const bytes = readFileSync(out);
    const header = JSON.parse(bytes.subarray(8, 8 + Number(bytes.readBigUInt64LE(0))).toString("utf8"));
    expect(header["blocks.0.attn.in_proj_weight"].shape).toEqual([48, 16]);
    expect(header["blocks.0.attn.out_proj.bias"].shape).toEqual([16]);
    expect(header["head.bias"].shape).toEqual([256]);
    const onnx = threadgrad("export", "--checkpoint", plain, "--format", "onnx", "--out", path("gpt.onnx"));
    expect(onnx.code).toBe(2);
    expect(onnx.stderr).toContain(
      `export: ${plain} holds a gpt; it exports as safetensors only (--format safetensors)`,
    );
  });
});
