import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import {
  IDX_IMAGES_MAGIC,
  IDX_LABELS_MAGIC,
  MAX_IDX_DATA_BYTES,
  encodeIdx,
  loadIdxDir,
  parseIdx,
  readIdxFile,
} from "./idx.js";

const idx = encodeIdx;

// n images of 2x2 pixels: image i has pixels i, 2i, 3i, 255; label i % 3.
const images = (n: number) =>
  idx(IDX_IMAGES_MAGIC, [n, 2, 2], Array.from({ length: n }, (_, i) => [i, 2 * i, 3 * i, 255]).flat());
const labels = (n: number) =>
  idx(
    IDX_LABELS_MAGIC,
    [n],
    Array.from({ length: n }, (_, i) => i % 3),
  );

const tempDirs: string[] = [];
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

function writeSet(files: Record<string, Uint8Array>): string {
  const dir = mkdtempSync(join(tmpdir(), "threadgrad-idx-"));
  tempDirs.push(dir);
  for (const [name, data] of Object.entries(files)) writeFileSync(join(dir, name), data);
  return dir;
}

const validFiles = (gz: boolean): Record<string, Uint8Array> => {
  const pack = (b: Uint8Array) => (gz ? gzipSync(b) : b);
  const ext = gz ? ".gz" : "";
  return {
    [`train-images-idx3-ubyte${ext}`]: pack(images(5)),
    [`train-labels-idx1-ubyte${ext}`]: pack(labels(5)),
    [`t10k-images-idx3-ubyte${ext}`]: pack(images(3)),
    [`t10k-labels-idx1-ubyte${ext}`]: pack(labels(3)),
  };
};

describe("parseIdx", () => {
  it("reads dims and payload of a label file", () => {
    const arr = parseIdx(labels(4), "l");
    expect(arr.magic).toBe(IDX_LABELS_MAGIC);
    expect(arr.dims).toEqual([4]);
    expect(Array.from(arr.data)).toEqual([0, 1, 2, 0]);
  });

  it("gunzips a file that starts with 1f 8b", () => {
    expect(parseIdx(gzipSync(images(2)), "i.gz").dims).toEqual([2, 2, 2]);
  });

  it("rejects a bad magic number, naming the file and both valid ones", () => {
    expect(() => parseIdx(idx(0x00000d03, [1], [0]), "x.idx")).toThrow(
      "idx: x.idx has bad magic number 0x00000d03 (expected 0x00000801 for labels or 0x00000803 for images)",
    );
  });

  it("calls a payload shorter than the header's dims truncated", () => {
    const cut = images(3).subarray(0, 16 + 10);
    expect(() => parseIdx(cut, "cut.idx")).toThrow(
      "idx: cut.idx is truncated: header says 3x2x2 = 12 bytes of data, found 10",
    );
    expect(() => parseIdx(images(3).subarray(0, 9), "h.idx")).toThrow(
      /idx: h.idx is truncated: 9 bytes, header needs 16/,
    );
  });

  it("reports trailing bytes after the payload", () => {
    const long = new Uint8Array([...labels(2), 7, 7]);
    expect(() => parseIdx(long, "long.idx")).toThrow(
      "idx: long.idx has trailing bytes: header says 2 = 2 bytes of data, found 4",
    );
  });

  it("names a corrupt gzip file", () => {
    const gz = gzipSync(labels(100));
    expect(() => parseIdx(gz.subarray(0, gz.length - 12), "bad.gz")).toThrow(/idx: bad.gz is not valid gzip/);
  });
});

// Concatenated gzip members are one valid gzip stream: `copies` members of 16 MiB of zeros each
// inflate to copies x 16 MiB from about copies x 16 KiB of file.
const ZEROS_16M = gzipSync(new Uint8Array(16 << 20), { level: 9 });
const zeroMembers = (copies: number) => Array.from({ length: copies }, () => ZEROS_16M);
const concat = (parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));
const rssMiB = () => process.memoryUsage().rss / 2 ** 20;

describe("gzip bombs", () => {
  it("stops inflating at the size the header gives: 1 GiB of zeros after a 10-label header", () => {
    const bomb = concat([gzipSync(labels(10)), ...zeroMembers(64)]);
    expect(bomb.length).toBeLessThan(2 << 20);
    const before = rssMiB();
    expect(() => parseIdx(bomb, "bomb.gz")).toThrow(
      "idx: bomb.gz has trailing bytes: it inflates to more than the 18 bytes its header allows " +
        "(8 of header, 10 = 10 of data)",
    );
    expect(rssMiB() - before).toBeLessThan(200);
  });

  it("finds the header behind padding that inflates to nothing, then stops at the header's size", () => {
    // 300 empty members (6000 bytes) push the header past the first prefixes tried (up to 4096 bytes);
    // the next one (8192) reaches deep into the bomb, past the probe's limit, so the header is found by bisecting.
    const empty = Array.from({ length: 300 }, () => gzipSync(new Uint8Array(0)));
    const bomb = concat([...empty, gzipSync(labels(10)), ...zeroMembers(8)]);
    const before = rssMiB();
    expect(() => parseIdx(bomb, "padded.gz")).toThrow(/idx: padded.gz has trailing bytes: .* more than the 18 bytes/);
    expect(rssMiB() - before).toBeLessThan(200);
    expect(parseIdx(concat([...empty, gzipSync(labels(3))]), "p.gz").dims).toEqual([3]);
  });

  it("refuses a header whose dims exceed the size limit before inflating the rest", () => {
    const header = idx(IDX_IMAGES_MAGIC, [60000, 60000, 60000], []);
    const bomb = concat([gzipSync(header), ...zeroMembers(8)]);
    const before = rssMiB();
    const message = `idx: huge.gz header says 60000x60000x60000, more than the ${MAX_IDX_DATA_BYTES} bytes`;
    expect(() => parseIdx(bomb, "huge.gz")).toThrow(message);
    expect(() => parseIdx(header, "huge.idx")).toThrow(/idx: huge.idx header says 60000x60000x60000, more than/);
    expect(rssMiB() - before).toBeLessThan(200);
  });

  it("reports a gzipped file shorter than its header says, with both sizes", () => {
    const short = gzipSync(idx(IDX_IMAGES_MAGIC, [1000, 28, 28], new Uint8Array(100)));
    expect(() => parseIdx(short, "short.gz")).toThrow(
      "idx: short.gz is truncated: header says 1000x28x28 = 784000 bytes of data, found 100",
    );
  });
});

describe("readIdxFile", () => {
  it("checks a plain file's size against its header before reading the payload", () => {
    const dir = writeSet({ "a.idx": idx(IDX_LABELS_MAGIC, [500], new Uint8Array(20)), "b.idx": labels(4) });
    expect(() => readIdxFile(join(dir, "a.idx"))).toThrow(
      `idx: ${join(dir, "a.idx")} is truncated: header says 500 = 500 bytes of data, found 20`,
    );
    expect(Array.from(readIdxFile(join(dir, "b.idx")).data)).toEqual([0, 1, 2, 0]);
  });

  it("does not show the bytes of a file that is not IDX", () => {
    const dir = writeSet({ passwd: new TextEncoder().encode("root:x:0:0:root:/root:/bin/bash\n") });
    const file = join(dir, "passwd");
    let message = "";
    try {
      readIdxFile(file);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toBe(
      `idx: ${file} is not an IDX file: bad magic number (expected 0x00000801 for labels or 0x00000803 for images)`,
    );
    expect(message).not.toMatch(/726f6f74|root:x/);
  });

  it("names a file it cannot open", () => {
    expect(() => readIdxFile("/nonexistent/t.idx")).toThrow(/idx: cannot read \/nonexistent\/t.idx \(ENOENT/);
  });
});

describe("loadIdxDir", () => {
  for (const gz of [false, true]) {
    it(`loads ${gz ? "gzipped" : "plain"} train and t10k files, pixels scaled to 0..1`, () => {
      const { train, test } = loadIdxDir(writeSet(validFiles(gz)), "toy");
      expect([train.length, test.length, train.features, train.numClasses]).toEqual([5, 3, 4, 3]);
      expect(train.name).toBe("toy (train)");
      expect(train.task).toBe("classification");
      expect([train.sampleShape, test.sampleShape]).toEqual([
        [1, 2, 2],
        [1, 2, 2],
      ]); // one gray channel of 2×2
      expect(Array.from(train.x.subarray(8, 12))).toEqual([2 / 255, 4 / 255, 6 / 255, 1].map(Math.fround));
      expect(Array.from(test.y)).toEqual([0, 1, 2]);
      expect(train.x.buffer).toBeInstanceOf(SharedArrayBuffer);
      expect(train.y.buffer).toBeInstanceOf(SharedArrayBuffer);
    });
  }

  it("reports an images/labels count mismatch with both files", () => {
    const dir = writeSet({ ...validFiles(false), "t10k-labels-idx1-ubyte": labels(2) });
    expect(() => loadIdxDir(dir, "toy")).toThrow(
      `idx: images/labels count mismatch: ${join(dir, "t10k-images-idx3-ubyte")} has 3 images ` +
        `but ${join(dir, "t10k-labels-idx1-ubyte")} has 2 labels`,
    );
  });

  it("rejects a labels file where images belong", () => {
    const dir = writeSet({ ...validFiles(false), "train-images-idx3-ubyte": labels(5) });
    expect(() => loadIdxDir(dir, "toy")).toThrow(
      /train-images-idx3-ubyte should hold images \(magic 0x00000803\) but has magic 0x00000801/,
    );
  });

  it("names the missing file", () => {
    const files = validFiles(true);
    delete files["t10k-images-idx3-ubyte.gz"];
    const dir = writeSet(files);
    expect(() => loadIdxDir(dir, "toy")).toThrow(
      `idx: ${dir} has neither t10k-images-idx3-ubyte nor t10k-images-idx3-ubyte.gz`,
    );
  });

  it("rejects a label beyond the named classes", () => {
    const dir = writeSet(validFiles(false));
    expect(() => loadIdxDir(dir, "two", ["a", "b"])).toThrow(
      /train-labels-idx1-ubyte has label 2, but two has only 2 classes/,
    );
  });
});
