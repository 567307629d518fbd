import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import { Packr } from "msgpackr";

// File layout: MAGIC (8 bytes) | payload length (uint32 LE) | crc32 of payload (uint32 LE) | payload.
// The payload is msgpack. Tensors go in as raw little-endian bytes with dtype and shape (never as
// msgpack floats), so a resumed run is bit-exact. Written to a temporary file, flushed, then renamed
// over the target: a crash mid-write never leaves a half-written checkpoint under the real name.
const MAGIC = Buffer.from("TGCKPT\u0000\u0001", "latin1");
export const CHECKPOINT_FORMAT = 1;
const HEADER_BYTES = MAGIC.length + 8;

export interface StoredTensor {
  dtype: "float32" | "float64" | "int32";
  shape: number[];
  bytes: Uint8Array;
}

const packr = new Packr({ useRecords: false, moreTypes: false });

let crcTable: Uint32Array | null = null;
function crc32(data: Uint8Array): number {
  if (crcTable === null) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = crcTable[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

export function storeTensor(data: Float32Array | Float64Array | Int32Array, shape: readonly number[]): StoredTensor {
  const dtype = data instanceof Float64Array ? "float64" : data instanceof Int32Array ? "int32" : "float32";
  return {
    dtype,
    shape: [...shape],
    bytes: new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)),
  };
}

export function loadTensor(t: StoredTensor, where: string): Float32Array | Float64Array | Int32Array {
  const n = t.shape.reduce((a, b) => a * b, 1);
  const Ctor = t.dtype === "float64" ? Float64Array : t.dtype === "int32" ? Int32Array : Float32Array;
  if (t.bytes.byteLength !== n * Ctor.BYTES_PER_ELEMENT) {
    throw new Error(
      `checkpoint: ${where} holds ${t.bytes.byteLength} bytes, shape [${t.shape.join(", ")}] of ${t.dtype} needs ${n * Ctor.BYTES_PER_ELEMENT}`,
    );
  }
  const copy = new Uint8Array(t.bytes.byteLength);
  copy.set(t.bytes);
  return new Ctor(copy.buffer);
}

/** Writes `payload` atomically (temporary file + fsync + rename). */
export function writeCheckpoint(path: string, payload: Record<string, unknown>): void {
  const body = packr.pack({ format: CHECKPOINT_FORMAT, ...payload });
  const header = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(header, 0);
  header.writeUInt32LE(body.length, MAGIC.length);
  header.writeUInt32LE(crc32(body), MAGIC.length + 4);
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  const fd = openSync(tmp, "w");
  try {
    writeSync(fd, header);
    writeSync(fd, body);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, path);
}

/** Reads and verifies a checkpoint; a foreign, truncated or corrupt file gets a clear error. */
export function readCheckpoint(path: string): Record<string, unknown> {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (err) {
    throw new Error(`checkpoint: cannot read ${path}: ${(err as Error).message}`);
  }
  if (buf.length < HEADER_BYTES || !buf.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new Error(`checkpoint: ${path} is not a threadgrad checkpoint (wrong magic bytes)`);
  }
  const length = buf.readUInt32LE(MAGIC.length);
  const body = buf.subarray(HEADER_BYTES);
  if (body.length < length)
    throw new Error(`checkpoint: ${path} is truncated (${body.length} of ${length} payload bytes)`);
  if (body.length > length)
    throw new Error(`checkpoint: ${path} has ${body.length - length} unexpected trailing bytes`);
  if (crc32(body) !== buf.readUInt32LE(MAGIC.length + 4))
    throw new Error(`checkpoint: ${path} is corrupt (checksum mismatch)`);
  const payload = packr.unpack(body) as Record<string, unknown>;
  if (payload.format !== CHECKPOINT_FORMAT) {
    throw new Error(
      `checkpoint: ${path} has format version ${String(payload.format)}, this threadgrad reads version ${CHECKPOINT_FORMAT}`,
    );
  }
  return payload;
}
