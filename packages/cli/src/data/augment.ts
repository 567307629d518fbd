// `--augment`: a random crop with zero padding 4 and a horizontal flip per training image, redrawn
// every epoch. Each choice is a pure function of (seed, epoch, sample index), drawn from the
// counter-based generator, so a run sees the same images whatever its worker count, and a resumed
// run redraws the epoch it stopped in exactly.
import { CounterGenerator } from "@threadgrad/core";
import type { Dataset } from "./types.js";

/** Zero padding around each image before the crop: shifts of -4..4 pixels each way. */
export const AUGMENT_PADDING = 4;
/** The generator stream augmentation draws from (dropout and others use other streams). */
const AUGMENT_STREAM = 0x61756721;

/** The shift (dy, dx in -4..4) and flip of sample `index` in `epoch`. */
export function augmentChoice(seed: number, epoch: number, index: number): { dy: number; dx: number; flip: boolean } {
  const g = new CounterGenerator(seed);
  const span = 2 * AUGMENT_PADDING + 1;
  return {
    dy: Math.floor(g.uniform(epoch, index, AUGMENT_STREAM, 0) * span) - AUGMENT_PADDING,
    dx: Math.floor(g.uniform(epoch, index, AUGMENT_STREAM, 1) * span) - AUGMENT_PADDING,
    flip: g.uniform(epoch, index, AUGMENT_STREAM, 2) < 0.5,
  };
}

/**
 * Writes epoch `epoch`'s augmented copy of `ds` into `out` (same length as ds.x): output pixel
 * (c, y, x) is source pixel (c, y + dy, x' + dx) with x' = W - 1 - x when flipped, else x, and 0
 * outside the image (the padded crop, then the flip).
 */
export function augmentInto(ds: Dataset, out: Float32Array, seed: number, epoch: number): void {
  const shape = ds.sampleShape;
  if (shape === undefined || shape.length !== 3)
    throw new Error(`augment: ${ds.name} holds no images (channels × height × width per sample)`);
  const [channels, height, width] = shape as [number, number, number];
  const size = channels * height * width;
  for (let i = 0; i < ds.length; i++) {
    const { dy, dx, flip } = augmentChoice(seed, epoch, i);
    const base = i * size;
    for (let c = 0; c < channels; c++) {
      for (let y = 0; y < height; y++) {
        const sy = y + dy;
        const row = base + (c * height + y) * width;
        const source = base + (c * height + sy) * width;
        const isRowInside = sy >= 0 && sy < height;
        for (let x = 0; x < width; x++) {
          const sx = (flip ? width - 1 - x : x) + dx;
          out[row + x] = isRowInside && sx >= 0 && sx < width ? ds.x[source + sx]! : 0;
        }
      }
    }
  }
}
