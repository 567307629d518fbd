// `images:DIR`: a folder with one subfolder per class, each holding PNG or JPEG files, as people
// keep image sets. Every image is decoded (pngjs, jpeg-js: pure JavaScript), resized bilinearly to
// one size, and stored as a flat channel-major row of pixels / 255; the set is then split into
// train and test like a csv. Images are data: only decoded, with their size bounded before decoding.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { extname, join } from "node:path";
import jpeg from "jpeg-js";
import { PNG } from "pngjs";
import { splitDataset } from "./shuffle.js";
import { type DataSplit, type Dataset, sharedFloat32, sharedInt32 } from "./types.js";

/** Default fraction of the images held out for testing, as for csv. */
export const IMAGES_TEST_FRACTION = 0.2;
/** Most pixels one image may have (a side of 4096 at most): a larger header is refused before decoding. */
export const MAX_IMAGE_PIXELS = 4096 * 4096;
/** Most values the whole set may hold once resized (1 GiB of float32). */
export const MAX_IMAGE_VALUES = 2 ** 28;
const EXTENSIONS = [".png", ".jpg", ".jpeg"];

export interface ImageFolderOptions {
  /** [height, width] every image is resized to; default: the first image's size (first class, first file). */
  imageSize?: number[];
  testSplit?: number;
  /** Seed of the train/test shuffle. */
  seed?: number;
}

/** A decoded image: RGB bytes, row-major, and whether it holds one gray channel. */
interface Decoded {
  width: number;
  height: number;
  rgb: Uint8Array;
  isGray: boolean;
}

function decode(file: string): Decoded {
  const bytes = readFileSync(file);
  const isPng = extname(file).toLowerCase() === ".png";
  let width: number, height: number, rgba: Uint8Array, isGray: boolean | null;
  try {
    if (isPng) {
      // IHDR: width and height are the two big-endian words after the 8-byte signature and chunk header.
      if (bytes.length >= 24) checkPixels(file, bytes.readUInt32BE(16), bytes.readUInt32BE(20));
      const png = PNG.sync.read(bytes);
      ({ width, height } = png);
      rgba = png.data;
      isGray = !png.color;
    } else {
      const img = jpeg.decode(bytes, {
        useTArray: true,
        formatAsRGBA: true,
        maxResolutionInMP: MAX_IMAGE_PIXELS / 1e6,
      });
      ({ width, height } = img);
      rgba = img.data;
      isGray = null; // jpeg-js expands one gray component to RGB: told by the pixels below
    }
  } catch (err) {
    const message = (err as Error).message;
    if (message.startsWith("images:")) throw err;
    throw new Error(`images: ${file}: cannot decode it as ${isPng ? "PNG" : "JPEG"}: ${message}`);
  }
  checkPixels(file, width, height);
  const rgb = new Uint8Array(width * height * 3);
  let allGray = true;
  for (let p = 0; p < width * height; p++) {
    const r = rgba[4 * p]!,
      g = rgba[4 * p + 1]!,
      b = rgba[4 * p + 2]!; // alpha is dropped
    rgb[3 * p] = r;
    rgb[3 * p + 1] = g;
    rgb[3 * p + 2] = b;
    if (r !== g || g !== b) allGray = false;
  }
  return { width, height, rgb, isGray: isGray ?? allGray };
}

function checkPixels(file: string, width: number, height: number): void {
  if (!(width >= 1 && height >= 1 && width * height <= MAX_IMAGE_PIXELS))
    throw new Error(`images: ${file} is ${width}×${height} pixels; at most ${MAX_IMAGE_PIXELS} pixels are read`);
}

/**
 * Bilinear resize with half-pixel centres (source x = (x + 0.5)·w/W − 0.5, clamped at the edges),
 * as OpenCV's INTER_LINEAR and PyTorch's interpolate(align_corners=False); no antialiasing, so a
 * large reduction skips pixels. Writes channel c of pixel (y, x) to out[offset + (c·H + y)·W + x] / 255.
 */
export function resizeInto(img: Decoded, height: number, width: number, out: Float32Array, offset: number): void {
  const sx = img.width / width,
    sy = img.height / height;
  for (let y = 0; y < height; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), img.height - 1);
    const y0 = Math.floor(fy),
      y1 = Math.min(y0 + 1, img.height - 1),
      wy = fy - y0;
    for (let x = 0; x < width; x++) {
      const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), img.width - 1);
      const x0 = Math.floor(fx),
        x1 = Math.min(x0 + 1, img.width - 1),
        wx = fx - x0;
      for (let c = 0; c < 3; c++) {
        const at = (yy: number, xx: number) => img.rgb[(yy * img.width + xx) * 3 + c]!;
        const top = at(y0, x0) * (1 - wx) + at(y0, x1) * wx;
        const bottom = at(y1, x0) * (1 - wx) + at(y1, x1) * wx;
        out[offset + (c * height + y) * width + x] = (top * (1 - wy) + bottom * wy) / 255;
      }
    }
  }
}

const isDir = (p: string) => statSync(p).isDirectory();
const byCodePoint = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The class folders (sorted by name) and their image files (sorted), hidden entries skipped. */
function listImages(dir: string): { classNames: string[]; files: string[][] } {
  let entries: string[];
  try {
    entries = readdirSync(dir).filter((e) => !e.startsWith("."));
  } catch (err) {
    throw new Error(`images: cannot read folder ${dir}: ${(err as Error).message}`);
  }
  const classNames = entries.filter((e) => isDir(join(dir, e))).sort(byCodePoint);
  if (classNames.length === 0)
    throw new Error(`images: ${dir} has no class folders; put each class's images in a subfolder named after it`);
  const files = classNames.map((name) => {
    const folder = join(dir, name);
    const images = readdirSync(folder)
      .filter((f) => !f.startsWith(".") && EXTENSIONS.includes(extname(f).toLowerCase()))
      .sort(byCodePoint)
      .map((f) => join(folder, f))
      .filter((f) => statSync(f).isFile());
    if (images.length === 0) throw new Error(`images: class folder ${folder} holds no .png, .jpg or .jpeg files`);
    return images;
  });
  return { classNames, files };
}

/** Reads an image folder into one data set: [N, C, H, W] rows, C = 1 when every image is gray, else 3. */
export function loadImageFolder(dir: string, opts: ImageFolderOptions = {}): DataSplit {
  const { classNames, files } = listImages(dir);
  const total = files.reduce((n, f) => n + f.length, 0);
  let size = opts.imageSize;
  let rgb: Float32Array | null = null;
  let allGray = true;
  const y = sharedInt32(total);
  let i = 0;
  files.forEach((list, label) => {
    for (const file of list) {
      const img = decode(file);
      if (size === undefined) size = [img.height, img.width];
      const [height, width] = size as [number, number];
      if (rgb === null) {
        if (total * 3 * height * width > MAX_IMAGE_VALUES)
          throw new Error(
            `images: ${total} images of 3×${height}×${width} make more than ${MAX_IMAGE_VALUES} values; ` +
              "pass a smaller --image-size",
          );
        rgb = new Float32Array(total * 3 * height * width);
      }
      resizeInto(img, height, width, rgb, i * 3 * height * width);
      allGray &&= img.isGray;
      y[i++] = label;
    }
  });
  const [height, width] = size as [number, number];
  const channels = allGray ? 1 : 3;
  const features = channels * height * width;
  // Gray images were expanded to three equal channels: keep the first.
  const x = sharedFloat32(total * features);
  const source = rgb as unknown as Float32Array;
  for (let n = 0; n < total; n++)
    x.set(source.subarray(n * 3 * height * width, n * 3 * height * width + features), n * features);
  const all: Dataset = {
    name: `images:${dir}`,
    x,
    y,
    length: total,
    features,
    sampleShape: [channels, height, width],
    task: "classification",
    numClasses: classNames.length,
    classNames,
  };
  return splitDataset(all, opts.testSplit ?? IMAGES_TEST_FRACTION, opts.seed ?? 0);
}
