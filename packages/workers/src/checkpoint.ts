import * as fs from "node:fs";
import { basename, dirname, join } from "node:path";
import { Packr } from "msgpackr";
import { show } from "./checkpoint-schema.js";
import { checkPlainMsgpack } from "./plain-msgpack.js";

// File layout: MAGIC (8 bytes) | payload length (uint32 LE) | crc32 of payload (uint32 LE) | payload.
// The payload is msgpack. Tensors go in as raw little-endian bytes with dtype and shape (never as
// msgpack floats), so a resumed run is bit-exact. Written to a temporary file, flushed, then renamed
// over the target: a crash mid-write never leaves a half-written checkpoint under the real name.
// Reading checks the header, the length and the CRC, then that the payload is plain data
// (plain-msgpack.ts) before decoding it; what the fields mean is checked by the caller (persist.ts).
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
      `checkpoint: ${where} holds ${t.bytes.byteLength} bytes, ` +
        `shape [${t.shape.join(", ")}] of ${t.dtype} needs ${n * Ctor.BYTES_PER_ELEMENT}`,
    );
  }
  const copy = new Uint8Array(t.bytes.byteLength);
  copy.set(t.bytes);
  return new Ctor(copy.buffer);
}

/** The header that frames a msgpack payload as a checkpoint file: magic, length, CRC-32. */
export function checkpointHeader(body: Uint8Array): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(header, 0);
  header.writeUInt32LE(body.length, MAGIC.length);
  header.writeUInt32LE(crc32(body), MAGIC.length + 4);
  return header;
}

/** The one fs call a test may replace, to simulate a short write or a full disk. */
export interface CheckpointIo {
  writeSync(fd: number, buffer: Uint8Array, offset: number, length: number): number;
}

/**
 * Writes `payload` atomically: a temporary file beside `path`, written in full (or the write fails),
 * fsynced and renamed over `path`, then the folder fsynced so the rename survives a crash. On any
 * error the temporary file is removed, the previous checkpoint under `path` is untouched, and the
 * error names `path` and the cause (ENOSPC, say). Temporary files of `path` left by a process that
 * no longer runs (a crash, a kill -9) are removed first, which also frees their space.
 */
export function writeCheckpoint(path: string, payload: Record<string, unknown>, io: CheckpointIo = fs): void {
  const body = packr.pack({ format: CHECKPOINT_FORMAT, ...payload });
  const header = checkpointHeader(body);
  removeStaleTemporaries(path);
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  let fd: number | null = null;
  try {
    fd = fs.openSync(tmp, "wx");
    writeFully(io, fd, header);
    writeFully(io, fd, body);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = null;
    fs.renameSync(tmp, path);
  } catch (err) {
    if (fd !== null) closeQuietly(fd);
    fs.rmSync(tmp, { force: true });
    throw new Error(
      `checkpoint: cannot write ${path}: ${(err as Error).message}; ` +
        "the previous checkpoint there (if any) is unchanged",
      { cause: err },
    );
  }
  syncFolder(dirname(path), path);
}

function writeFully(io: CheckpointIo, fd: number, data: Uint8Array): void {
  // write(2) may write less than asked (a disk filling up): go on from there; the call after a short
  // one reports the cause (ENOSPC). A call that makes no progress is a failure, never a success.
  for (let done = 0; done < data.length; ) {
    const n = io.writeSync(fd, data, done, data.length - done);
    if (!(n > 0)) throw new Error(`short write: ${done} of ${data.length} bytes written, then ${n}`);
    done += n;
  }
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // the write's own error is the one to report
  }
}

/**
 * Removes `path.tmp-PID-TIME` files whose process is gone (or is this one: writes are synchronous, so
 * none of ours is in flight). A live process's temporary file is left alone: it may be mid-write.
 * Only files of this exact `path` are considered; a pid reused by a new process keeps its file.
 * Processes are looked up on this host: a writer in another PID namespace sharing the folder (two
 * containers saving to one path) may look gone; its rename then fails and it reports the error,
 * its previous checkpoint intact.
 */
function removeStaleTemporaries(path: string): void {
  const dir = dirname(path),
    prefix = `${basename(path)}.tmp-`;
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return; // the write below reports a missing folder
  }
  for (const name of names) {
    const m = name.startsWith(prefix) ? /^(\d+)-\d+$/.exec(name.slice(prefix.length)) : null;
    if (m === null) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || !isRunning(pid)) fs.rmSync(join(dir, name), { force: true });
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM"; // exists, owned by another user
  }
}

/** fsyncs a folder so a rename in it is durable; skipped where folders cannot be opened (Windows). */
function syncFolder(dir: string, path: string): void {
  if (process.platform === "win32") return;
  let fd: number;
  try {
    fd = fs.openSync(dir, "r");
  } catch (err) {
    throw new Error(`checkpoint: wrote ${path} but cannot open its folder to sync it: ${(err as Error).message}`);
  }
  try {
    fs.fsyncSync(fd);
  } catch (err) {
    throw new Error(`checkpoint: wrote ${path} but syncing its folder failed: ${(err as Error).message}`);
  } finally {
    closeQuietly(fd);
  }
}

/** Reads and verifies a checkpoint; a foreign, truncated or corrupt file gets a clear error. */
export function readCheckpoint(path: string): Record<string, unknown> {
  let buf: Buffer;
  try {
    // Not a device or a pipe (/dev/zero never ends), nor more than the header's 32-bit length allows.
    const stat = fs.statSync(path);
    if (!stat.isFile()) throw new Error("not a regular file");
    if (stat.size > HEADER_BYTES + 0xffffffff) throw new Error(`${stat.size} bytes, more than a checkpoint can hold`);
    buf = fs.readFileSync(path);
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
  if (body.length === 0 || !((body[0]! >= 0x80 && body[0]! <= 0x8f) || body[0] === 0xde || body[0] === 0xdf))
    throw new Error(`checkpoint: ${path}: the payload is not a map of fields`);
  try {
    checkPlainMsgpack(body);
  } catch (err) {
    throw new Error(`checkpoint: ${path}: malformed payload: ${(err as Error).message}`);
  }
  let payload: Record<string, unknown>;
  try {
    payload = packr.unpack(body) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`checkpoint: ${path}: malformed payload: ${(err as Error).message}`);
  }
  if (payload.format !== CHECKPOINT_FORMAT) {
    throw new Error(
      `checkpoint: ${path} has format version ${show(payload.format)}, ` +
        `this threadgrad reads version ${CHECKPOINT_FORMAT}`,
    );
  }
  return payload;
}
