import { type DType, type Tensor, nn } from "@threadgrad/core";
import { type WriteOptions, writeFileAtomic } from "./write-file.js";

// safetensors layout: an unsigned 64-bit little-endian header length N, N bytes of JSON (a
// `__metadata__` object of strings, then one entry per tensor: dtype, shape and data_offsets
// [begin, end) relative to the end of the header), then the tensors' raw little-endian bytes with
// no gaps. The JSON is padded with spaces so the data starts at a multiple of 8 bytes.

const SAFETENSORS_DTYPE: Record<DType, { name: string; byteSize: number }> = {
  float64: { name: "F64", byteSize: 8 },
  float32: { name: "F32", byteSize: 4 },
  int32: { name: "I32", byteSize: 4 },
  bool: { name: "BOOL", byteSize: 1 },
};

export interface SafetensorsOptions {
  /** String pairs stored under `__metadata__`; `format: "pt"` is added unless given. */
  metadata?: Record<string, string>;
}

/** Code-unit order, the same as byte order for the ASCII names modules produce. */
const byName = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function stateOf(source: nn.Module | Record<string, Tensor>): Record<string, Tensor> {
  return nn.isModule(source) ? source.stateDict() : source;
}

/**
 * Serialises a module's state dict (or a name → tensor record) as safetensors bytes. Names are the
 * state dict's: `0.weight` for the first layer of a Sequential, `fc.bias` for a field `fc`, as PyTorch
 * names the same modules.
 * ```ts
 * const bytes = toSafetensors(new nn.Sequential(new nn.Linear(4, 2)));
 * ```
 */
export function toSafetensors(source: nn.Module | Record<string, Tensor>, opts: SafetensorsOptions = {}): Uint8Array {
  const state = stateOf(source);
  const metadata: Record<string, string> = { format: "pt", ...opts.metadata };
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== "string") throw new Error(`toSafetensors: metadata '${k}' must be a string, got ${typeof v}`);
  }
  const names = Object.keys(state).sort(byName);
  if (names.includes("__metadata__")) throw new Error("toSafetensors: '__metadata__' is reserved, not a tensor name");
  // Widest element first, then by name: every tensor then starts at a multiple of its element size
  // (the data section starts at a multiple of 8), so a reader may view it in place.
  const widthOf = (n: string) => SAFETENSORS_DTYPE[state[n]!.dtype].byteSize;
  const layout = [...names].sort((a, b) => widthOf(b) - widthOf(a) || byName(a, b));
  const offsets = new Map<string, [number, number]>();
  let dataBytes = 0;
  for (const n of layout) {
    const t = state[n]!;
    offsets.set(n, [dataBytes, dataBytes + t.numel * widthOf(n)]);
    dataBytes += t.numel * widthOf(n);
  }
  // Built by hand rather than from one object: JavaScript would move integer-like keys ("0") first.
  const entries = [`"__metadata__":${JSON.stringify(metadata)}`];
  for (const n of names) {
    const t = state[n]!;
    const entry = { dtype: SAFETENSORS_DTYPE[t.dtype].name, shape: t.shape, data_offsets: offsets.get(n) };
    entries.push(`${JSON.stringify(n)}:${JSON.stringify(entry)}`);
  }
  const json = new TextEncoder().encode(`{${entries.join(",")}}`);
  const headerBytes = Math.ceil((8 + json.length) / 8) * 8 - 8;
  const out = new Uint8Array(8 + headerBytes + dataBytes);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerBytes), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerBytes);
  for (const n of layout) writeLittleEndian(view, 8 + headerBytes + offsets.get(n)![0], state[n]!);
  return out;
}

/** Writes {@link toSafetensors}'s bytes to `path` atomically; an existing file is kept unless `overwrite`. */
export function saveSafetensors(
  source: nn.Module | Record<string, Tensor>,
  path: string,
  opts: SafetensorsOptions & WriteOptions = {},
): void {
  writeFileAtomic("saveSafetensors", path, toSafetensors(source, opts), opts);
}

// Explicitly little-endian, whatever the platform's byte order.
function writeLittleEndian(view: DataView, at: number, t: Tensor): void {
  const d = t.data;
  switch (t.dtype) {
    case "float64":
      for (let i = 0; i < d.length; i++) view.setFloat64(at + 8 * i, d[i]!, true);
      return;
    case "float32":
      for (let i = 0; i < d.length; i++) view.setFloat32(at + 4 * i, d[i]!, true);
      return;
    case "int32":
      for (let i = 0; i < d.length; i++) view.setInt32(at + 4 * i, d[i]!, true);
      return;
    case "bool":
      for (let i = 0; i < d.length; i++) view.setUint8(at + i, d[i] ? 1 : 0);
      return;
  }
}
