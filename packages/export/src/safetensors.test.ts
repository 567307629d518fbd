import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Tensor, manualSeed, nn, randn, tensor } from "@threadgrad/core";
import { afterEach, describe, expect, it } from "vitest";
import { saveSafetensors, toSafetensors } from "./safetensors.js";

// An independent reader, written from the format's description: it checks the layout as it goes.
const ELEMENT_BYTES: Record<string, number> = { F64: 8, F32: 4, I32: 4, BOOL: 1 };
type Entry = { dtype: string; shape: number[]; data_offsets: [number, number] };

function readSafetensors(bytes: Uint8Array) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerBytes = Number(view.getBigUint64(0, true));
  const dataStart = 8 + headerBytes;
  const text = new TextDecoder().decode(bytes.subarray(8, dataStart));
  expect(text.startsWith("{")).toBe(true);
  expect(text.trimEnd().endsWith("}")).toBe(true);
  expect(/^ *$/.test(text.slice(text.trimEnd().length))).toBe(true);
  const header = JSON.parse(text) as Record<string, unknown>;
  const metadata = header.__metadata__ as Record<string, string>;
  const entries = Object.entries(header).filter(([k]) => k !== "__metadata__") as [string, Entry][];
  // Sorted by data offset, the tensors must tile the data section exactly: no gap, no overlap.
  const byOffset = [...entries].sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0]);
  let end = 0;
  const values: Record<string, { dtype: string; shape: number[]; values: number[] }> = {};
  for (const [name, e] of byOffset) {
    const size = ELEMENT_BYTES[e.dtype]!;
    const [b, f] = e.data_offsets;
    expect(b).toBe(end);
    expect(f - b).toBe(size * e.shape.reduce((p, d) => p * d, 1));
    expect((dataStart + b) % size).toBe(0);
    const read = (i: number): number => {
      const at = dataStart + b + i * size;
      if (e.dtype === "F64") return view.getFloat64(at, true);
      if (e.dtype === "F32") return view.getFloat32(at, true);
      if (e.dtype === "I32") return view.getInt32(at, true);
      return view.getUint8(at);
    };
    values[name] = {
      dtype: e.dtype,
      shape: e.shape,
      values: Array.from({ length: (f - b) / size }, (_, i) => read(i)),
    };
    end = f;
  }
  expect(dataStart + end).toBe(bytes.length);
  return { headerBytes, text, metadata, values };
}

describe("toSafetensors", () => {
  it("writes a Sequential's state dict under PyTorch's names, with every value read back", () => {
    manualSeed(0);
    const model = new nn.Sequential(new nn.Linear(3, 4), new nn.ReLU(), new nn.LayerNorm(4), new nn.Linear(4, 2));
    const { values, metadata, headerBytes } = readSafetensors(toSafetensors(model));
    expect((8 + headerBytes) % 8).toBe(0);
    expect(metadata).toEqual({ format: "pt" });
    expect(Object.keys(values).sort()).toEqual(["0.bias", "0.weight", "2.bias", "2.weight", "3.bias", "3.weight"]);
    for (const [name, t] of Object.entries(model.stateDict())) {
      expect(values[name]!.dtype).toBe("F32");
      expect(values[name]!.shape).toEqual(t.shape);
      expect(values[name]!.values).toEqual(Array.from(t.data));
    }
  });

  it("keeps float64, int32 and bool tensors exact and aligned, keys sorted byte-wise after __metadata__", () => {
    manualSeed(1);
    const state: Record<string, Tensor> = {
      "9.w": randn([3]),
      "10.w": randn([2, 2], { dtype: "float64" }),
      ids: tensor([7, -3, 2147483647], { dtype: "int32" }),
      mask: tensor([1, 0, 1, 1, 0]).gt(0.5),
      "a.f64": randn([5], { dtype: "float64" }),
      empty: randn([0, 3]),
    };
    const { text, values, metadata } = readSafetensors(toSafetensors(state, { metadata: { epoch: "3" } }));
    expect(metadata).toEqual({ format: "pt", epoch: "3" });
    const order = ["__metadata__", "10.w", "9.w", "a.f64", "empty", "ids", "mask"].map((k) => text.indexOf(`"${k}":`));
    expect(order[0]).toBe(1);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    for (const [name, t] of Object.entries(state)) {
      expect(values[name]!.shape).toEqual(t.shape);
      expect(values[name]!.values).toEqual(Array.from(t.data, Number));
    }
    expect(values.mask!.dtype).toBe("BOOL");
    expect(values["10.w"]!.dtype).toBe("F64");
  });

  it("refuses a non-string metadata value and a tensor named __metadata__", () => {
    const model = new nn.Linear(2, 2);
    expect(() => toSafetensors(model, { metadata: { epoch: 3 as unknown as string } })).toThrow(
      "toSafetensors: metadata 'epoch' must be a string, got number",
    );
    expect(() => toSafetensors({ __metadata__: randn([1]) })).toThrow(
      "toSafetensors: '__metadata__' is reserved, not a tensor name",
    );
  });
});

describe("saveSafetensors", () => {
  let dir = "";
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("writes the same bytes as toSafetensors and keeps an existing file unless overwrite is set", () => {
    dir = mkdtempSync(join(tmpdir(), "threadgrad-st-"));
    const path = join(dir, "model.safetensors");
    const model = new nn.Sequential(new nn.Linear(2, 3));
    saveSafetensors(model, path);
    expect(new Uint8Array(readFileSync(path))).toEqual(toSafetensors(model));
    writeFileSync(path, "previous");
    expect(() => saveSafetensors(model, path)).toThrow(
      `saveSafetensors: ${path} already exists; pass overwrite: true to replace it`,
    );
    expect(readFileSync(path, "utf8")).toBe("previous");
    saveSafetensors(model, path, { overwrite: true });
    expect(readSafetensors(new Uint8Array(readFileSync(path))).values["0.weight"]!.shape).toEqual([3, 2]);
    expect(readdirSync(dir)).toEqual(["model.safetensors"]);
  });

  it("names the path when its folder does not exist, and leaves nothing behind", () => {
    dir = mkdtempSync(join(tmpdir(), "threadgrad-st-"));
    const path = join(dir, "missing", "model.safetensors");
    expect(() => saveSafetensors(new nn.Linear(2, 2), path)).toThrow(
      new RegExp(`^saveSafetensors: cannot write ${path.replaceAll("/", "\\/")}: ENOENT`),
    );
    expect(readdirSync(dir)).toEqual([]);
  });
});
