import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { sharedFloat32, sharedInt32, type DataSplit, type Dataset } from "./types.js";

// IDX header: two zero bytes, a type byte (0x08 = uint8), the number of dimensions, then one
// big-endian uint32 per dimension; the payload follows, row-major.
export const IDX_LABELS_MAGIC = 0x00000801;
export const IDX_IMAGES_MAGIC = 0x00000803;

export interface IdxArray {
  magic: number;
  dims: number[];
  data: Uint8Array;
}

const hex = (n: number) => `0x${n.toString(16).padStart(8, "0")}`;

/**
 * Parses one IDX file (gunzipping it first when it starts with the gzip bytes 1f 8b).
 * @example parseIdx(readFileSync(f), f).dims // [60000, 28, 28]
 */
export function parseIdx(buf: Uint8Array, file: string): IdxArray {
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      buf = gunzipSync(buf);
    } catch (err) {
      throw new Error(`idx: ${file} is not valid gzip (${(err as Error).message})`);
    }
  }
  if (buf.length < 4) throw new Error(`idx: ${file} is truncated: ${buf.length} bytes, too short for a header`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const magic = view.getUint32(0);
  if (magic !== IDX_LABELS_MAGIC && magic !== IDX_IMAGES_MAGIC) {
    throw new Error(
      `idx: ${file} has bad magic number ${hex(magic)} ` +
        `(expected ${hex(IDX_LABELS_MAGIC)} for labels or ${hex(IDX_IMAGES_MAGIC)} for images)`,
    );
  }
  const numDims = magic & 0xff;
  const headerBytes = 4 + 4 * numDims;
  if (buf.length < headerBytes) {
    throw new Error(`idx: ${file} is truncated: ${buf.length} bytes, header needs ${headerBytes}`);
  }
  const dims = Array.from({ length: numDims }, (_, d) => view.getUint32(4 + 4 * d));
  const expected = dims.reduce((a, b) => a * b, 1);
  const found = buf.length - headerBytes;
  if (found !== expected) {
    const problem = found < expected ? "is truncated" : "has trailing bytes";
    throw new Error(
      `idx: ${file} ${problem}: header says ${dims.join("x")} = ${expected} bytes of data, found ${found}`,
    );
  }
  return { magic, dims, data: buf.subarray(headerBytes) };
}

function findFile(dir: string, base: string): string {
  for (const candidate of [base, `${base}.gz`]) {
    const path = join(dir, candidate);
    if (existsSync(path)) return path;
  }
  throw new Error(`idx: ${dir} has neither ${base} nor ${base}.gz`);
}

function readIdx(path: string, magic: number, kind: string): IdxArray {
  const arr = parseIdx(readFileSync(path), path);
  if (arr.magic !== magic) {
    throw new Error(`idx: ${path} should hold ${kind} (magic ${hex(magic)}) but has magic ${hex(arr.magic)}`);
  }
  if (arr.dims[0] === 0) throw new Error(`idx: ${path} holds no ${kind}`);
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
