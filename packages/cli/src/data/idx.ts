import { closeSync, existsSync, fstatSync, openSync, readSync } from "node:fs";
import { join } from "node:path";
import { constants as zlibConstants, gunzipSync } from "node:zlib";
import { sharedFloat32, sharedInt32, type DataSplit, type Dataset } from "./types.js";

// IDX header: two zero bytes, a type byte (0x08 = uint8), the number of dimensions, then one
// big-endian uint32 per dimension; the payload follows, row-major.
export const IDX_LABELS_MAGIC = 0x00000801;
export const IDX_IMAGES_MAGIC = 0x00000803;
/** The most payload bytes one IDX file may hold (512 MiB of uint8, 2 GiB once scaled to float32). */
export const MAX_IDX_DATA_BYTES = 2 ** 29;
// 255 dimensions at most: the dimension count is one byte.
const MAX_HEADER_BYTES = 4 + 4 * 255;
// A gzip prefix inflated to find the header may give at most this much; deflate expands a byte of
// input to at most about 1 KiB of output, so a short prefix always stays far below it.
const HEADER_PROBE_BYTES = 1 << 20;

export interface IdxArray {
  magic: number;
  dims: number[];
  data: Uint8Array;
}

interface IdxHeader {
  magic: number;
  dims: number[];
  headerBytes: number;
  dataBytes: number;
}

const hex = (n: number) => `0x${n.toString(16).padStart(8, "0")}`;
const isGzip = (buf: Uint8Array) => buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b;

/**
 * Reads the header from the first bytes of an IDX file (`isWhole`: they are the whole file, so a
 * short header is a truncated file) and checks the dims' product against MAX_IDX_DATA_BYTES before
 * anything is allocated for the payload. Only a magic that starts with the two zero bytes is shown:
 * anything else is some other file, whose bytes are not echoed.
 */
function readHeader(head: Uint8Array, file: string, isWhole: boolean): IdxHeader {
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (head.length < 4) throw new Error(`idx: ${file} is truncated: ${head.length} bytes, too short for a header`);
  const magic = view.getUint32(0);
  if (magic !== IDX_LABELS_MAGIC && magic !== IDX_IMAGES_MAGIC) {
    const found = magic >>> 16 === 0 ? `has bad magic number ${hex(magic)}` : "is not an IDX file: bad magic number";
    throw new Error(
      `idx: ${file} ${found} (expected ${hex(IDX_LABELS_MAGIC)} for labels or ${hex(IDX_IMAGES_MAGIC)} for images)`,
    );
  }
  const numDims = magic & 0xff;
  const headerBytes = 4 + 4 * numDims;
  if (head.length < headerBytes) {
    if (!isWhole) throw new Error(`idx: ${file}: the header was not found in the first ${head.length} bytes`);
    throw new Error(`idx: ${file} is truncated: ${head.length} bytes, header needs ${headerBytes}`);
  }
  const dims = Array.from({ length: numDims }, (_, d) => view.getUint32(4 + 4 * d));
  let dataBytes = 1;
  for (const d of dims) {
    dataBytes *= d;
    if (dataBytes > MAX_IDX_DATA_BYTES) {
      throw new Error(
        `idx: ${file} header says ${dims.join("x")}, more than the ${MAX_IDX_DATA_BYTES} bytes of data ` +
          `an IDX file may hold`,
      );
    }
  }
  return { magic, dims, headerBytes, dataBytes };
}

function checkSize(header: IdxHeader, totalBytes: number, file: string): void {
  const found = totalBytes - header.headerBytes;
  if (found !== header.dataBytes) {
    const problem = found < header.dataBytes ? "is truncated" : "has trailing bytes";
    throw new Error(
      `idx: ${file} ${problem}: header says ${header.dims.join("x")} = ${header.dataBytes} bytes of data, ` +
        `found ${found}`,
    );
  }
}

function gunzip(gz: Uint8Array, file: string, opts: { maxOutputLength: number; isPrefix?: boolean }): Buffer {
  try {
    return gunzipSync(gz, {
      maxOutputLength: opts.maxOutputLength,
      // Z_SYNC_FLUSH returns what a cut-off prefix inflates to instead of failing on its missing end.
      finishFlush: opts.isPrefix ? zlibConstants.Z_SYNC_FLUSH : zlibConstants.Z_FINISH,
    });
  } catch (err) {
    if ((err as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") throw err;
    throw new Error(`idx: ${file} is not valid gzip (${(err as Error).message})`);
  }
}

const isTooLarge = (err: unknown) => (err as { code?: string }).code === "ERR_BUFFER_TOO_LARGE";

/**
 * The first bytes `gz` inflates to: at least MAX_HEADER_BYTES unless the whole content is shorter,
 * at most HEADER_PROBE_BYTES. Inflates ever longer prefixes of `gz`; should one overshoot the probe
 * limit (a long run of padding followed by a bomb), bisects between the last two prefix lengths.
 */
function inflateHead(gz: Uint8Array, file: string): { head: Uint8Array; isWhole: boolean } {
  let short = 0;
  let long = gz.length + 1;
  for (let len = Math.min(256, gz.length); ; len = Math.min(short * 2, gz.length)) {
    try {
      const head = gunzip(gz.subarray(0, len), file, { maxOutputLength: HEADER_PROBE_BYTES, isPrefix: true });
      if (head.length >= MAX_HEADER_BYTES || len === gz.length) return { head, isWhole: len === gz.length };
      short = len;
    } catch (err) {
      if (!isTooLarge(err)) throw err;
      long = len;
      break;
    }
  }
  while (long - short > 1) {
    const len = Math.floor((short + long) / 2);
    try {
      const head = gunzip(gz.subarray(0, len), file, { maxOutputLength: HEADER_PROBE_BYTES, isPrefix: true });
      if (head.length >= MAX_HEADER_BYTES) return { head, isWhole: false };
      short = len;
    } catch (err) {
      if (!isTooLarge(err)) throw err;
      long = len;
    }
  }
  throw new Error(`idx: ${file}: the gzip data could not be inflated in steps of at most ${HEADER_PROBE_BYTES} bytes`);
}

/**
 * Inflates a gzipped IDX file no further than its header allows: the header comes from a prefix,
 * then the whole file is inflated with the header's size as the output limit, so a small file that
 * inflates to gigabytes stops at that size.
 */
function inflateIdx(gz: Uint8Array, file: string): { header: IdxHeader; content: Uint8Array } {
  const { head, isWhole } = inflateHead(gz, file);
  const header = readHeader(head, file, isWhole);
  const expected = header.headerBytes + header.dataBytes;
  let content: Uint8Array;
  try {
    content = gunzip(gz, file, { maxOutputLength: expected });
  } catch (err) {
    if (!isTooLarge(err)) throw err;
    throw new Error(
      `idx: ${file} has trailing bytes: it inflates to more than the ${expected} bytes its header allows ` +
        `(${header.headerBytes} of header, ${header.dims.join("x")} = ${header.dataBytes} of data)`,
    );
  }
  return { header, content };
}

/**
 * Parses one IDX file (gunzipping it first when it starts with the gzip bytes 1f 8b, never past the
 * size its header gives).
 * @example parseIdx(readFileSync(f), f).dims // [60000, 28, 28]
 */
export function parseIdx(buf: Uint8Array, file: string): IdxArray {
  let header: IdxHeader;
  if (isGzip(buf)) {
    ({ header, content: buf } = inflateIdx(buf, file));
  } else {
    header = readHeader(buf.subarray(0, MAX_HEADER_BYTES), file, buf.length <= MAX_HEADER_BYTES);
  }
  checkSize(header, buf.length, file);
  return { magic: header.magic, dims: header.dims, data: buf.subarray(header.headerBytes) };
}

/**
 * Reads an IDX file from disk. A plain file's size is checked against its header before the payload
 * is read; a gzipped one may be at most as large as the largest content it could hold.
 */
export function readIdxFile(path: string): IdxArray {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (err) {
    throw new Error(`idx: cannot read ${path} (${(err as Error).message})`);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new Error(`idx: ${path} is not a regular file`);
    const size = stat.size;
    const head = new Uint8Array(Math.min(size, MAX_HEADER_BYTES));
    readFully(fd, head, path);
    if (!isGzip(head)) checkSize(readHeader(head, path, size === head.length), size, path);
    else if (size > MAX_HEADER_BYTES + MAX_IDX_DATA_BYTES * 1.01 + (1 << 20)) {
      throw new Error(
        `idx: ${path} is ${size} bytes, larger than any gzipped IDX file ` +
          `of at most ${MAX_IDX_DATA_BYTES} bytes of data`,
      );
    }
    const buf = new Uint8Array(size);
    readFully(fd, buf, path);
    return parseIdx(buf, path);
  } finally {
    closeSync(fd);
  }
}

function readFully(fd: number, buf: Uint8Array, path: string): void {
  let done = 0;
  while (done < buf.length) {
    const n = readSync(fd, buf, done, buf.length - done, done);
    if (n === 0) throw new Error(`idx: ${path} shrank while being read`);
    done += n;
  }
}

function findFile(dir: string, base: string): string {
  for (const candidate of [base, `${base}.gz`]) {
    const path = join(dir, candidate);
    if (existsSync(path)) return path;
  }
  throw new Error(`idx: ${dir} has neither ${base} nor ${base}.gz`);
}

function readIdx(path: string, magic: number, kind: string): IdxArray {
  const arr = readIdxFile(path);
  if (arr.magic !== magic) {
    throw new Error(`idx: ${path} should hold ${kind} (magic ${hex(magic)}) but has magic ${hex(arr.magic)}`);
  }
  if (arr.dims[0] === 0) throw new Error(`idx: ${path} holds no ${kind}`);
  if (arr.data.length === 0)
    throw new Error(`idx: ${path} holds ${kind} of size ${arr.dims.slice(1).join("x")}: no pixels`);
  return arr;
}

interface LoadedPart {
  images: IdxArray;
  labels: IdxArray;
  imagesFile: string;
  labelsFile: string;
}

function loadPart(dir: string, prefix: "train" | "t10k"): LoadedPart {
  const imagesFile = findFile(dir, `${prefix}-images-idx3-ubyte`);
  const labelsFile = findFile(dir, `${prefix}-labels-idx1-ubyte`);
  const images = readIdx(imagesFile, IDX_IMAGES_MAGIC, "images");
  const labels = readIdx(labelsFile, IDX_LABELS_MAGIC, "labels");
  if (images.dims[0] !== labels.dims[0]) {
    throw new Error(
      `idx: images/labels count mismatch: ${imagesFile} has ${images.dims[0]} images ` +
        `but ${labelsFile} has ${labels.dims[0]} labels`,
    );
  }
  return { images, labels, imagesFile, labelsFile };
}

function toDataset(part: LoadedPart, name: string, numClasses: number, classNames?: string[]): Dataset {
  const { images, labels } = part;
  const length = images.dims[0]!; // the magic readIdx checked says three dimensions
  const features = images.data.length / length;
  const x = sharedFloat32(images.data.length);
  for (let i = 0; i < x.length; i++) x[i] = images.data[i]! / 255;
  const y = sharedInt32(length);
  y.set(labels.data);
  const ds: Dataset = { name, x, y, length, features, task: "classification", numClasses };
  // One gray channel of height × width pixels: [N, 1, H, W] with the rows kept flat.
  ds.sampleShape = [1, ...images.dims.slice(1)];
  if (classNames) ds.classNames = classNames;
  return ds;
}

function maxLabel(part: LoadedPart): number {
  return part.labels.data.reduce((a, b) => Math.max(a, b), 0);
}

/**
 * Loads train-* and t10k-* images and labels (each plain or .gz) from `dir`, pixels scaled to 0..1.
 * numClasses is classNames.length when given, else the largest label + 1.
 * @example loadIdxDir("/data/mnist", "mnist").train.features // 784
 */
export function loadIdxDir(dir: string, name: string, classNames?: string[]): DataSplit {
  const train = loadPart(dir, "train");
  const test = loadPart(dir, "t10k");
  const [trainSize, testSize] = [train.images.dims.slice(1), test.images.dims.slice(1)];
  if (trainSize.join("x") !== testSize.join("x")) {
    throw new Error(
      `idx: image sizes differ: ${train.imagesFile} has ${trainSize.join("x")} images, ` +
        `${test.imagesFile} has ${testSize.join("x")}`,
    );
  }
  const largest = Math.max(maxLabel(train), maxLabel(test));
  if (classNames && largest >= classNames.length) {
    const file = maxLabel(train) === largest ? train.labelsFile : test.labelsFile;
    throw new Error(`idx: ${file} has label ${largest}, but ${name} has only ${classNames.length} classes`);
  }
  const numClasses = classNames ? classNames.length : largest + 1;
  return {
    train: toDataset(train, `${name} (train)`, numClasses, classNames),
    test: toDataset(test, `${name} (test)`, numClasses, classNames),
  };
}

/** The IDX bytes of `payload` (uint8) with big-endian `magic` and `dims`: what parseIdx reads. */
export function encodeIdx(magic: number, dims: number[], payload: ArrayLike<number>): Uint8Array {
  const buf = new Uint8Array(4 + 4 * dims.length + payload.length);
  const view = new DataView(buf.buffer);
  view.setUint32(0, magic);
  dims.forEach((d, i) => {
    view.setUint32(4 + 4 * i, d);
  });
  buf.set(payload, 4 + 4 * dims.length);
  return buf;
}
