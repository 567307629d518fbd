import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SEGMENT_ALIGN, segment, shardRange } from "./shard.js";

const split = fc.record({ total: fc.integer({ min: 0, max: 100_000 }), ranks: fc.integer({ min: 1, max: 64 }) });
const parts = (f: typeof segment, total: number, ranks: number) =>
  Array.from({ length: ranks }, (_, rank) => f(total, ranks, rank));

describe("segment", () => {
  it("covers [0, total) exactly, in rank order, without gaps or overlap", () => {
    fc.assert(
      fc.property(split, ({ total, ranks }) => {
        let next = 0;
        for (const [start, end] of parts(segment, total, ranks)) {
          expect(start).toBe(next);
          expect(end).toBeGreaterThanOrEqual(start);
          next = end;
        }
        expect(next).toBe(total);
      }),
    );
  });

  it("starts every non-empty segment on a cache line and balances lengths within one line", () => {
    fc.assert(
      fc.property(split, ({ total, ranks }) => {
        const segments = parts(segment, total, ranks);
        for (const [start, end] of segments) if (end > start) expect(start % SEGMENT_ALIGN).toBe(0);
        // Only the last non-empty segment may be cut short by the end of the vector.
        const lengths = segments.map(([start, end]) => end - start).filter((_, r) => segments[r]![1] < total);
        if (lengths.length > 0) expect(Math.max(...lengths) - Math.min(...lengths)).toBeLessThanOrEqual(SEGMENT_ALIGN);
      }),
    );
  });

  it("gives trailing ranks empty segments when there are fewer lines than ranks", () => {
    expect(parts(segment, 17, 3)).toEqual([
      [0, 16],
      [16, 17],
      [17, 17],
    ]);
    expect(parts(segment, 0, 2)).toEqual([
      [0, 0],
      [0, 0],
    ]);
  });

  it("names the bad argument", () => {
    expect(() => segment(10, 2, 2)).toThrow(/segment: rank must be in \[0, 2\), got 2/);
    expect(() => segment(-1, 2, 0)).toThrow(/segment: total must be an integer >= 0, got -1/);
    expect(() => segment(10, 0, 0)).toThrow(/segment: ranks must be an integer >= 1, got 0/);
  });
});

describe("shardRange", () => {
  it("splits a batch contiguously, the first batch % ranks ranks taking one extra", () => {
    fc.assert(
      fc.property(split, ({ total: batchSize, ranks }) => {
        let next = 0;
        parts(shardRange, batchSize, ranks).forEach(([start, end], rank) => {
          expect(start).toBe(next);
          expect(end - start).toBe(Math.floor(batchSize / ranks) + (rank < batchSize % ranks ? 1 : 0));
          next = end;
        });
        expect(next).toBe(batchSize);
      }),
    );
  });

  it("matches a worked example", () => {
    expect(parts(shardRange, 10, 3)).toEqual([
      [0, 4],
      [4, 7],
      [7, 10],
    ]);
    expect(parts(shardRange, 2, 3)).toEqual([
      [0, 1],
      [1, 2],
      [2, 2],
    ]);
  });
});
