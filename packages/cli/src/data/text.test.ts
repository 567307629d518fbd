import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DEFAULT_SETTINGS } from "../settings.js";
import { lossSpec, textContext, trainerOptions } from "../setup.js";
import {
  BINARY_PROBE_BYTES,
  loadText,
  readTextCorpus,
  splitCorpus,
  validationWindows,
  windowStart,
  windowsPerEpoch,
} from "./text.js";

const dir = mkdtempSync(join(tmpdir(), "threadgrad-text-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A folder of files written by the test: name → contents (string, or bytes). */
function folder(name: string, files: Record<string, string | Uint8Array>): string {
  const path = join(dir, name);
  mkdirSync(path);
  for (const [file, text] of Object.entries(files)) writeFileSync(join(path, file), text);
  return path;
}

const decode = (a: ArrayLike<number>): string => Buffer.from(Uint8Array.from(a)).toString("latin1");
const LINE = "a line of text, with words and punctuation.\n";

describe("readTextCorpus", () => {
  it("reads a folder's regular files in sorted name order, skipping symlinks, binary files and subfolders", () => {
    const binary = new Uint8Array(BINARY_PROBE_BYTES).fill(65);
    binary[BINARY_PROBE_BYTES - 1] = 0; // a NUL on the last byte of the probe still makes it binary
    const late = new Uint8Array(BINARY_PROBE_BYTES + 4).fill(66);
    late[BINARY_PROBE_BYTES + 2] = 0; // past the probe: text
    const path = folder("mixed", { "b.txt": "second ", "a.txt": "first ", "C.txt": "upper ", "x.dat": binary });
    writeFileSync(join(path, "y-late-nul"), late);
    mkdirSync(join(path, "sub"));
    writeFileSync(join(path, "sub", "inner.txt"), "never read");
    symlinkSync(join(path, "a.txt"), join(path, "a.u8"));
    const corpus = readTextCorpus(path);
    expect(corpus.files).toEqual(["C.txt", "a.txt", "b.txt", "y-late-nul"].map((f) => join(path, f)));
    expect(corpus.skippedBinary).toEqual([join(path, "x.dat")]);
    expect(corpus.skippedLinks).toEqual([join(path, "a.u8")]);
    expect(decode(corpus.bytes.subarray(0, 19))).toBe("upper first second ");
    expect(corpus.bytes.length).toBe(19 + late.length);
  });

  it("reads a single file as it is", () => {
    const path = join(folder("single", { "t.txt": "héllo" }), "t.txt");
    expect(Array.from(readTextCorpus(path).bytes)).toEqual(Array.from(Buffer.from("héllo")));
  });

  it("names the path and the problem: missing, empty, binary only", () => {
    expect(() => readTextCorpus(join(dir, "nowhere"))).toThrow(
      `text: ${join(dir, "nowhere")} does not exist (expected a text file or a folder of text files)`,
    );
    const empty = folder("empty", { "e.txt": "" });
    expect(() => readTextCorpus(join(empty, "e.txt"))).toThrow(
      `text: ${join(empty, "e.txt")} holds no text: it is empty`,
    );
    expect(() => readTextCorpus(empty)).toThrow(`text: ${empty} holds no text: its text files are empty`);
    const binary = folder("binary", { "a.bin": "\0\x01", "b.bin": "x\0" });
    symlinkSync(join(binary, "a.bin"), join(binary, "c"));
    expect(() => readTextCorpus(binary)).toThrow(
      `text: ${binary} holds no text: no text file in the folder (skipped: 2 binary, 1 symbolic link)`,
    );
    expect(() => readTextCorpus(join(binary, "a.bin"))).toThrow(
      `text: ${join(binary, "a.bin")} holds no text: it is binary (a NUL byte in its first 8 KB)`,
    );
  });
});

describe("text splits and windows", () => {
  it("splits by position: the last 10% (rounded down) is validation", () => {
    const bytes = Uint8Array.from({ length: 105 }, (_, i) => i);
    const { train, val } = splitCorpus(bytes);
    expect([train.length, val.length]).toEqual([95, 10]);
    expect(val[0]).toBe(95);
  });

  it("draws each epoch's windows from (seed, epoch, window) only, inside the training split, y = x shifted", () => {
    const text = LINE.repeat(40);
    const path = join(folder("windows", { "t.txt": text }), "t.txt");
    const context = 16;
    const split = loadText(path, { context, seed: 3 });
    const train = split.train;
    const trainText = text.slice(0, text.length - Math.floor(text.length * 0.1));
    expect(train.length).toBe(windowsPerEpoch(trainText.length, context));
    expect(train.length).toBe(Math.floor(trainText.length / context));
    expect([train.features, train.numClasses, train.isTokens]).toEqual([context, 256, true]);
    const rows = (ds: typeof train) =>
      Array.from({ length: ds.length }, (_, k) => decode(ds.x.subarray(k * context, (k + 1) * context)));
    const epoch0 = rows(train);
    for (let k = 0; k < train.length; k++) {
      const start = windowStart(3, 0, k, trainText.length, context);
      expect(start).toBeGreaterThanOrEqual(0);
      expect(start + context + 1).toBeLessThanOrEqual(trainText.length);
      expect(epoch0[k]).toBe(trainText.slice(start, start + context));
      expect(decode(train.y.subarray(k * context, (k + 1) * context))).toBe(
        trainText.slice(start + 1, start + context + 1),
      );
    }
    // Another load (another process, any worker count) draws the same windows; other epochs and seeds differ.
    expect(rows(loadText(path, { context, seed: 3 }).train)).toEqual(epoch0);
    train.redraw!(1);
    const epoch1 = rows(train);
    expect(epoch1).not.toEqual(epoch0);
    train.redraw!(0);
    expect(rows(train)).toEqual(epoch0);
    expect(rows(loadText(path, { context, seed: 4 }).train)).not.toEqual(epoch0);
  });

  it("validates on consecutive windows that do not overlap; validation is also the test set", () => {
    const val = new TextEncoder().encode("0123456789abcdefghij");
    const ds = validationWindows(val, 6, "v");
    expect(ds.length).toBe(3); // 19 bytes have a next byte: three whole windows of 6
    expect(decode(ds.x)).toBe("0123456789abcdefgh");
    expect(decode(ds.y)).toBe("123456789abcdefghi");
    const path = join(folder("valtest", { "t.txt": LINE.repeat(10) }), "t.txt");
    const split = loadText(path, { context: 8, seed: 0 });
    expect(split.test).toBe(split.val);
  });

  it("refuses a corpus too short for one window of the context, naming the sizes", () => {
    const path = join(folder("short", { "t.txt": "x".repeat(100) }), "t.txt");
    expect(loadText(path, { context: 9, seed: 0 }).val!.length).toBe(1);
    expect(() => loadText(path, { context: 10, seed: 0 })).toThrow(
      `text: ${path} holds 100 bytes; its validation split (the last 10%), 10 bytes, needs at least 11 ` +
        "for one window of --context 10: give more text or a smaller --context",
    );
    expect(() => loadText(path, { context: 90, seed: 0 })).toThrow(
      /its training split \(the first 90%\), 90 bytes, needs at least 91 for one window of --context 90/,
    );
  });
});

describe("text settings", () => {
  const text = { ...DEFAULT_SETTINGS, data: "text:corpus" };

  it("take the window length from --context, else the gpt's context (chargpt without --model); a module needs it", () => {
    expect(textContext({ ...text, context: 32 })).toBe(32);
    expect(textContext(text)).toBe(64);
    expect(
      textContext({ ...text, model: { kind: "gpt", vocab: 256, context: 24, dim: 16, heads: 2, layers: 1 } }),
    ).toBe(24);
    expect(() => textContext({ ...text, model: { module: "/m/net.mjs", export: "default" } })).toThrow(
      "--data text:corpus needs --context N, the tokens per training window: --model /m/net.mjs does not say its context",
    );
  });

  it("use the sequence cross-entropy for token data and for a gpt-kind model", () => {
    const s = { ...text, loss: "cross-entropy" as const };
    expect(lossSpec(s, { module: "/m/net.mjs" }, true)).toBe("sequenceCrossEntropy");
    const gpt = { kind: "gpt", vocab: 256, context: 64, dim: 128, heads: 4, layers: 2 } as never;
    expect(lossSpec(s, gpt)).toBe("sequenceCrossEntropy");
    expect(lossSpec(s, { kind: "mlp", sizes: [4, 2] })).toBe("crossEntropy");
  });

  it("keep evaluation batches of windows to the training batch; rows may go up to 1,024", () => {
    const gpt = { kind: "gpt", vocab: 256, context: 16, dim: 16, heads: 2, layers: 1 } as never;
    const windows = { name: "text", x: new Int32Array(160), y: new Int32Array(160), length: 10, features: 16 };
    const tokens = { ...windows, task: "classification" as const, numClasses: 256, isTokens: true };
    const s = { ...text, model: gpt, loss: "cross-entropy" as const, lr: 1e-3, batchSize: 8 };
    expect(trainerOptions(s, tokens).maxBatchSize).toBe(8);
    const rows = { ...tokens, x: new Float32Array(160), y: new Int32Array(10), isTokens: false, features: 16 };
    const mlp = { ...s, data: "csv:x.csv", model: [16, 4, 2] };
    expect(trainerOptions(mlp, rows).maxBatchSize).toBe(1024);
  });
});
