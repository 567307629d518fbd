// images:DIR on small folders this test writes with the same libraries the loader decodes with.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import jpeg from "jpeg-js";
import { PNG } from "pngjs";
import { afterAll, describe, expect, it } from "vitest";
import { loadImageFolder, resizeInto } from "./images.js";
import { loadDataset } from "./index.js";

const root = mkdtempSync(join(tmpdir(), "threadgrad-images-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let folders = 0;

type Pixel = (x: number, y: number) => [number, number, number, number];

function png(width: number, height: number, pixel: Pixel, colorType: 0 | 2 | 6 = 6): Buffer {
  const img = new PNG({ width, height, colorType, inputColorType: 6 } as never);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) img.data.set(pixel(x, y), (y * width + x) * 4);
  return PNG.sync.write(img, { colorType, inputColorType: 6 } as never);
}

function jpg(width: number, height: number, pixel: Pixel): Buffer {
  const data = Buffer.alloc(width * height * 4);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set(pixel(x, y), (y * width + x) * 4);
  return jpeg.encode({ width, height, data }, 100).data;
}

/** A folder with one subfolder per class name holding the given files. */
function folder(classes: Record<string, Record<string, Buffer | string>>): string {
  const dir = join(root, `set-${folders++}`);
  for (const [name, files] of Object.entries(classes)) {
    mkdirSync(join(dir, name), { recursive: true });
    for (const [file, bytes] of Object.entries(files)) writeFileSync(join(dir, name, file), bytes);
  }
  return dir;
}

const gray =
  (v: number): Pixel =>
  () => [v, v, v, 255];

describe("images:DIR", () => {
  it("reads a folder per class, sorted, gray PNG and JPEG as one channel, pixels / 255", () => {
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 5; i++) files[`${i}.png`] = png(4, 3, gray(10 * i), 0);
    files["5.jpg"] = jpg(4, 3, gray(128));
    const dir = folder({ zebra: files, ant: { "a.png": png(4, 3, gray(255), 0), "b.PNG": png(4, 3, gray(0), 0) } });
    writeFileSync(join(dir, "zebra", "notes.txt"), "not an image");
    const { train, test } = loadImageFolder(dir, { testSplit: 0.25, seed: 0 });
    expect(train.classNames).toEqual(["ant", "zebra"]);
    expect([train.length, test.length]).toEqual([6, 2]); // 8 images, round(8 · 0.25) held out
    expect([train.sampleShape, train.features, train.numClasses]).toEqual([[1, 3, 4], 12, 2]);
    // Every row is one gray level: the value of its file (a JPEG of flat 128 decodes to 128 exactly).
    const levels = [...train.x, ...test.x].map((v) => Math.round(v * 255));
    expect(new Set(levels)).toEqual(new Set([0, 10, 20, 30, 40, 128, 255]));
    expect(train.x.buffer).toBeInstanceOf(SharedArrayBuffer);
  });

  it("keeps three channels, channel-major, when any image has colour; alpha is dropped", () => {
    const red: Pixel = (x) => [x === 0 ? 255 : 0, 51, 102, 7];
    const dir = folder({ a: { "1.png": png(2, 2, red, 6) }, b: { "2.png": png(2, 2, gray(255), 0) } });
    const { train } = loadImageFolder(dir, { testSplit: 0 });
    expect(train.sampleShape).toEqual([3, 2, 2]);
    const row = Array.from(train.y).indexOf(0);
    const x = Array.from(train.x.subarray(row * 12, row * 12 + 12)).map((v) => Math.round(v * 255));
    // R plane (x = 0 is red), then G, then B: 2×2 each.
    expect(x).toEqual([255, 0, 255, 0, 51, 51, 51, 51, 102, 102, 102, 102]);
  });

  it("resizes to --image-size, and the same split follows the same seed", () => {
    const files = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`${i}.png`, png(6 + i, 5, gray(i), 0)]));
    const dir = folder({ one: files, two: { "x.jpg": jpg(9, 9, gray(200)) } });
    const a = loadDataset(`images:${dir}`, { imageSize: [4, 8], seed: 3 });
    const b = loadDataset(`images:${dir}`, { imageSize: [4, 8], seed: 3 });
    expect(a.train.sampleShape).toEqual([1, 4, 8]);
    expect([a.train.length, a.test.length]).toEqual([9, 2]); // the default test split, 0.2 of 11
    expect(Array.from(a.test.y)).toEqual(Array.from(b.test.y));
    expect(Array.from(a.test.x)).toEqual(Array.from(b.test.x));
    expect(() => loadDataset("digits", { imageSize: [4, 4] })).toThrow(
      "data: --image-size only applies to images:DIR, not digits",
    );
  });

  it("resizeInto is bilinear with half-pixel centres", () => {
    // A 2×1 image (0, 255) widened to 4: source x = (x + 0.5)/2 − 0.5 = −0.25, 0.25, 0.75, 1.25, clamped to [0, 1].
    const img = { width: 2, height: 1, rgb: new Uint8Array([0, 0, 0, 255, 255, 255]), isGray: true };
    const out = new Float32Array(3 * 4);
    resizeInto(img, 1, 4, out, 0);
    expect(Array.from(out.subarray(0, 4))).toEqual([0, 0.25, 0.75, 1].map(Math.fround));
    // Halving 4 → 2 samples at source 0.5 and 2.5: the means of pixel pairs.
    const wide = {
      width: 4,
      height: 1,
      rgb: new Uint8Array([0, 0, 0, 100, 100, 100, 200, 200, 200, 50, 50, 50]),
      isGray: true,
    };
    const half = new Float32Array(3 * 2);
    resizeInto(wide, 1, 2, half, 0);
    expect(Array.from(half.subarray(0, 2))).toEqual([50 / 255, 125 / 255].map(Math.fround));
  });

  it("names the problem: no class folders, an empty class, a file that does not decode, a huge header", () => {
    const empty = folder({});
    mkdirSync(empty, { recursive: true });
    expect(() => loadImageFolder(empty)).toThrow(`images: ${empty} has no class folders`);
    const noImages = folder({ cats: { "readme.txt": "x" }, dogs: { "1.png": png(2, 2, gray(1), 0) } });
    expect(() => loadImageFolder(noImages)).toThrow(
      `images: class folder ${join(noImages, "cats")} holds no .png, .jpg or .jpeg files`,
    );
    const broken = folder({ a: { "1.jpg": "not a jpeg at all" }, b: { "2.png": png(2, 2, gray(1), 0) } });
    expect(() => loadImageFolder(broken)).toThrow(`images: ${join(broken, "a", "1.jpg")}: cannot decode it as JPEG`);
    const header = png(2, 2, gray(1), 0);
    header.writeUInt32BE(100_000, 16); // IHDR: 100000 × 1000 pixels, refused before decoding
    header.writeUInt32BE(1000, 20);
    const huge = folder({ a: { "1.png": header } });
    expect(() => loadImageFolder(huge)).toThrow(
      `images: ${join(huge, "a", "1.png")} is 100000×1000 pixels; at most 16777216 pixels are read`,
    );
    expect(() => loadDataset("images:")).toThrow('data: "images:" needs a dir, as in images:DIR');
  });
});
