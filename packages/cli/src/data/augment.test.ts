import { describe, expect, it } from "vitest";
import { AUGMENT_PADDING, augmentChoice, augmentInto } from "./augment.js";
import type { Dataset } from "./types.js";

// Three 2-channel 5×6 images whose pixels are all distinct and non-zero: a pixel's value tells where it came from.
const C = 2,
  H = 5,
  W = 6;
const ds: Dataset = {
  name: "toy",
  x: Float32Array.from({ length: 3 * C * H * W }, (_, i) => i + 1),
  y: new Int32Array(3),
  length: 3,
  features: C * H * W,
  sampleShape: [C, H, W],
  task: "classification",
  numClasses: 1,
};

/** The image `i` shifted by (dy, dx) after an optional flip, written out pixel by pixel from the definition. */
function expected(i: number, dy: number, dx: number, flip: boolean): number[] {
  const out: number[] = [];
  for (let c = 0; c < C; c++)
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) {
        // Pad by 4, crop at (4 + dy, 4 + dx), then mirror the crop left to right.
        const cx = flip ? W - 1 - x : x;
        const py = y + AUGMENT_PADDING + dy,
          px = cx + AUGMENT_PADDING + dx;
        const inside =
          py >= AUGMENT_PADDING && py < H + AUGMENT_PADDING && px >= AUGMENT_PADDING && px < W + AUGMENT_PADDING;
        out.push(inside ? ds.x[i * C * H * W + (c * H + py - AUGMENT_PADDING) * W + (px - AUGMENT_PADDING)]! : 0);
      }
  return out;
}

describe("--augment", () => {
  it("each image is its padded crop at the drawn shift, flipped when drawn", () => {
    for (const epoch of [0, 1, 7]) {
      const out = new Float32Array(ds.x.length);
      augmentInto(ds, out, 5, epoch);
      for (let i = 0; i < ds.length; i++) {
        const { dy, dx, flip } = augmentChoice(5, epoch, i);
        expect(Array.from(out.subarray(i * 60, (i + 1) * 60))).toEqual(expected(i, dy, dx, flip));
      }
    }
  });

  it("draws from (seed, epoch, index) alone: the same for the same key, shifts -4..4, flips about half", () => {
    expect(augmentChoice(3, 2, 10)).toEqual(augmentChoice(3, 2, 10));
    const draws = Array.from({ length: 4000 }, (_, i) => augmentChoice(3, i % 4, i));
    expect(new Set(draws.map((d) => d.dx))).toEqual(new Set([-4, -3, -2, -1, 0, 1, 2, 3, 4]));
    expect(new Set(draws.map((d) => d.dy))).toEqual(new Set([-4, -3, -2, -1, 0, 1, 2, 3, 4]));
    const flips = draws.filter((d) => d.flip).length;
    expect(flips).toBeGreaterThan(1800);
    expect(flips).toBeLessThan(2200);
    // Another epoch or seed redraws: over 100 samples some choice differs.
    const key = (seed: number, epoch: number) =>
      JSON.stringify(Array.from({ length: 100 }, (_, i) => augmentChoice(seed, epoch, i)));
    expect(key(3, 0)).not.toBe(key(3, 1));
    expect(key(3, 0)).not.toBe(key(4, 0));
  });

  it("refuses data without images", () => {
    const { sampleShape: _, ...flat } = ds;
    expect(() => augmentInto({ ...flat, name: "csv:d.csv" }, new Float32Array(180), 0, 0)).toThrow(
      "augment: csv:d.csv holds no images (channels × height × width per sample)",
    );
  });
});
