/** Segment boundaries fall on multiples of this many float32 elements: one 64-byte cache line. */
export const SEGMENT_ALIGN = 16;

/**
 * Rank `rank`'s part [start, end) of a flat vector of `total` elements split over `ranks`:
 * contiguous, starting on a multiple of SEGMENT_ALIGN (so no two ranks write one cache line),
 * covering every element once; lengths differ by at most SEGMENT_ALIGN, and trailing ranks get
 * empty segments when there are fewer cache lines than ranks.
 * @example segment(100, 3, 1) // [48, 80]; rank 2: [80, 100]
 */
export function segment(total: number, ranks: number, rank: number): [number, number] {
  checkSplit("segment", total, ranks, rank);
  const lines = Math.ceil(total / SEGMENT_ALIGN);
  const [first, last] = balanced(lines, ranks, rank);
  return [Math.min(total, first * SEGMENT_ALIGN), Math.min(total, last * SEGMENT_ALIGN)];
}

/**
 * Rank `rank`'s sample indices [start, end) of a batch of `batchSize` split over `ranks`:
 * contiguous, and the first `batchSize % ranks` ranks take one extra sample.
 * @example shardRange(10, 3, 0) // [0, 4]; rank 1: [4, 7]; rank 2: [7, 10]
 */
export function shardRange(batchSize: number, ranks: number, rank: number): [number, number] {
  checkSplit("shardRange", batchSize, ranks, rank);
  return balanced(batchSize, ranks, rank);
}

function balanced(count: number, ranks: number, rank: number): [number, number] {
  const base = Math.floor(count / ranks);
  const extra = count % ranks;
  const start = rank * base + Math.min(rank, extra);
  return [start, start + base + (rank < extra ? 1 : 0)];
}

function checkSplit(where: string, total: number, ranks: number, rank: number): void {
  if (!Number.isSafeInteger(total) || total < 0) {
    throw new RangeError(`${where}: total must be an integer >= 0, got ${total}`);
  }
  if (!Number.isSafeInteger(ranks) || ranks < 1) {
    throw new RangeError(`${where}: ranks must be an integer >= 1, got ${ranks}`);
  }
  if (!Number.isInteger(rank) || rank < 0 || rank >= ranks) {
    throw new RangeError(`${where}: rank must be in [0, ${ranks}), got ${rank}`);
  }
}
