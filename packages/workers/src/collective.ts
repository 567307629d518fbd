import { segmentSum } from "@threadgrad/core";
import type { SharedArena } from "./arena.js";
import { Barrier, type BarrierOptions } from "./barrier.js";
import { segment } from "./shard.js";

/**
 * Collective operations among `size` ranks: all a rank's step needs from the others, so that the
 * same step runs over shared memory in one process or over a network between processes. Every
 * rank calls the same operations in the same order with equally long buffers of the same kind
 * (shared by all ranks, or its own). Segments are `segment(buf.length, size, rank)`.
 * Sum order: every reduced element is `((g0 + g1) + g2) + ...` rounded to float32 after each add,
 * ranks in order 0..size-1, exactly what reduceSlices computes on one thread; results are
 * therefore bit-identical whatever the timing, and tests compare them bit for bit.
 */
export interface Collective {
  readonly rank: number;
  readonly size: number;
  /**
   * Set where several processes hold and update the same segments (training across processes):
   * which copy this rank's process is. A value every copy holds alike (a segment's squared norm) is
   * summed over every rank from copy 0 only. Absent: 0, the only copy.
   */
  readonly replica?: number;
  /** Returns once every rank has called barrier(). */
  barrier(): void;
  /**
   * Sums every rank's `buf`; on return this rank's segment of the returned array holds the sum.
   * The returned array may be `buf` or shared memory: read the result from it. Other ranks may
   * still be reading `buf`, so do not write to it before the next barrier.
   */
  reduceScatter(buf: Float32Array): Float32Array;
  /** Sums every rank's `buf`; on return all of the returned array holds the sum (may be `buf` or shared). */
  allReduce(buf: Float32Array): Float32Array;
  /**
   * Sums a few float64 values over every rank, in place, adding in rank order 0..size-1 so that every
   * rank gets the same bits: a step's loss sums and counts, squared-norm partials, non-finite flags,
   * BatchNorm's per-channel sums.
   */
  allReduceScalars(values: Float64Array): void;
  /**
   * Each rank fills its own segment of `buf`; on return every rank's `buf` holds all segments. Where
   * `buf` is memory every rank shares (the parameters, in shared memory) there is nothing to copy:
   * it returns once every rank has written its segment.
   */
  allGather(buf: Float32Array): void;
  /** On return every rank's `buf` holds what rank `root` had in its `buf`. */
  broadcast(buf: Float32Array, root: number): void;
}

/**
 * Single-thread reference sum over [start, end): `out[i] = ((slices[0][i] + slices[1][i]) + ...)`
 * in float32, adding slices in index order. `out` may be `slices[0]`.
 * @example reduceSlices([a, b, c], a, 0, a.length) // a now holds a + b + c
 */
export function reduceSlices(slices: readonly Float32Array[], out: Float32Array, start: number, end: number): void {
  if (slices[0] === undefined) throw new RangeError("reduceSlices: needs at least one slice");
  if (start < 0 || end < start || slices.some((s) => s.length < end) || out.length < end) {
    throw new RangeError(`reduceSlices: range [${start}, ${end}) exceeds a slice or out`);
  }
  segmentSum(slices, out, start, end, null); // core's JavaScript loop
}

/**
 * Sums elements [start, end) of every gradient slice into slice 0, in slice order (ranks in order 0..N-1),
 * with the same bits as `reduceSlices` (a WebAssembly kernel can stand in for the JavaScript loop).
 */
export type SegmentSum = (start: number, end: number) => void;

export interface CollectiveOptions extends BarrierOptions {
  segmentSum?: SegmentSum;
  /**
   * Shared memory for allReduceScalars (SharedSmallAllReduce.bytes(size, capacity) bytes), needed
   * with more than one rank: up to `capacity` values per call.
   */
  scalars?: { block: SharedArrayBuffer; capacity: number };
}

/**
 * Collective over an arena's gradient slices. A `buf` that is this rank's slice (or a prefix of
 * it) is used in place; any other `buf` must be private to this rank and is staged through the
 * slice with extra copies and barriers. The arena's parameters are shared by every rank already:
 * allGather of them only waits for every rank's segment.
 * Reductions land in slice 0: rank r sums segment r of every slice, in rank order, into slice 0's
 * segment r. Where each rank owns several slices (`planArena`'s gradSlices: virtual shards), a
 * reduction of a rank's first slice in place adds every slice, in slice order, so the sum is the
 * same whatever the number of ranks that wrote them; a staged buffer is each rank's one
 * contribution. That needs no extra P floats and is free for one rank; the price is that slice 0
 * holds the sum afterwards, so rank 0 must not clear it until every rank has used its segment
 * (the barrier that ends the step).
 * @example
 * const collective = new SharedMemoryCollective(arena, rank);
 * const sum = collective.reduceScatter(arena.grads(rank)); // own segment final; barrier before rewriting grads
 */
export class SharedMemoryCollective implements Collective {
  readonly size: number;
  /** every gradient slice, in slice order */
  private readonly slices: Float32Array[];
  /** each rank's first slice, in rank order */
  private readonly rankSlices: Float32Array[];
  private readonly sync: Barrier;
  private readonly segmentSum: SegmentSum | null;
  private readonly params: Float32Array;
  private readonly small: SharedSmallAllReduce | null;

  constructor(
    arena: SharedArena,
    readonly rank: number,
    options: CollectiveOptions = {},
  ) {
    this.size = arena.layout.ranks;
    this.slices = Array.from({ length: arena.layout.gradSlices }, (_, i) => arena.grads(i));
    this.rankSlices = Array.from({ length: this.size }, (_, r) => arena.grads(arena.firstSlice(r)));
    this.sync = new Barrier(arena.control, this.size, rank, { name: "collective", ...options });
    this.segmentSum = options.segmentSum ?? null;
    this.params = arena.params;
    const { scalars, ...barrier } = options;
    this.small =
      scalars && this.size > 1
        ? new SharedSmallAllReduce(scalars.block, arena.control, this.size, rank, scalars.capacity, {
            ...barrier,
            name: `${barrier.name ?? "collective"} (scalars)`,
          })
        : null;
  }

  allReduceScalars(values: Float64Array): void {
    if (this.size === 1) return;
    if (this.small === null) {
      throw new Error(
        "SharedMemoryCollective.allReduceScalars: no shared memory for scalars was given (options.scalars)",
      );
    }
    this.small.allReduce(values);
  }

  barrier(): void {
    this.sync.wait();
  }

  reduceScatter(buf: Float32Array): Float32Array {
    const n = this.checkLength("reduceScatter", buf);
    const inPlace = this.isOwnSlice(buf);
    if (!inPlace) this.own.set(buf);
    this.sync.wait(); // every rank's contribution is written
    const [start, end] = segment(n, this.size, this.rank);
    this.sum(n, start, end, inPlace);
    if (inPlace) return this.slices[0]!.subarray(0, n);
    buf.set(this.slices[0]!.subarray(start, end), start);
    this.sync.wait(); // peers are done reading our slice before we stage into it again
    return buf;
  }

  allReduce(buf: Float32Array): Float32Array {
    const n = this.checkLength("allReduce", buf);
    if (this.size === 1) return buf;
    const inPlace = this.isOwnSlice(buf);
    if (!inPlace) this.own.set(buf);
    this.sync.wait(); // every rank's contribution is written
    const [start, end] = segment(n, this.size, this.rank);
    this.sum(n, start, end, inPlace);
    this.sync.wait(); // every segment of slice 0 is reduced
    if (inPlace) return this.slices[0]!.subarray(0, n);
    buf.set(this.slices[0]!.subarray(0, n));
    this.sync.wait(); // everyone copied slice 0 out before rank 0 stages into it again
    return buf;
  }

  allGather(buf: Float32Array): void {
    if (this.isParams(buf)) {
      if (this.size > 1) this.sync.wait(); // every rank has written its segment
      return;
    }
    const n = this.checkLength("allGather", buf);
    const [start, end] = segment(n, this.size, this.rank);
    if (!this.isOwnSlice(buf)) this.own.set(buf.subarray(start, end), start);
    this.sync.wait(); // every rank's segment is in its slice
    for (let s = 0; s < this.size; s++) {
      if (s === this.rank) continue;
      const [from, to] = segment(n, this.size, s);
      buf.set(this.rankSlices[s]!.subarray(from, to), from);
    }
    this.sync.wait(); // no rank rewrites its segment while a peer still copies it
  }

  broadcast(buf: Float32Array, root: number): void {
    const n = this.checkLength("broadcast", buf);
    if (!Number.isInteger(root) || root < 0 || root >= this.size) {
      throw new RangeError(`SharedMemoryCollective.broadcast: root must be in [0, ${this.size}), got ${root}`);
    }
    if (this.rank === root && !this.isOwnSlice(buf)) this.own.set(buf);
    this.sync.wait(); // root's data is in its slice
    if (this.rank !== root) buf.set(this.rankSlices[root]!.subarray(0, n));
    this.sync.wait(); // root does not rewrite its slice while a peer still copies it
  }

  /** Sums [start, end) into slice 0: every slice when the ranks reduce their slices in place, else each rank's first. */
  private sum(n: number, start: number, end: number, everySlice: boolean): void {
    const slices = everySlice ? this.slices : this.rankSlices;
    if (this.segmentSum !== null && everySlice) this.segmentSum(start, end);
    else if (slices.length > 1)
      reduceSlices(
        slices.map((slice) => slice.subarray(0, n)),
        this.slices[0]!,
        start,
        end,
      );
  }

  private get own(): Float32Array {
    return this.rankSlices[this.rank]!;
  }

  /** Whether `buf` lies in the parameters (an empty view at their end, where slice 0 starts, does not). */
  private isParams(buf: Float32Array): boolean {
    const { params } = this;
    const end = params.byteOffset + params.byteLength;
    return (
      buf.buffer === params.buffer &&
      buf.byteOffset >= params.byteOffset &&
      buf.byteOffset < end &&
      buf.byteOffset + buf.byteLength <= end
    );
  }

  private isOwnSlice(buf: Float32Array): boolean {
    return buf.buffer === this.own.buffer && buf.byteOffset === this.own.byteOffset;
  }

  private checkLength(where: string, buf: Float32Array): number {
    if (buf.length > this.own.length) {
      throw new RangeError(
        `SharedMemoryCollective.${where}: buffer has ${buf.length} elements, the slices hold ${this.own.length}`,
      );
    }
    return buf.length;
  }
}

/**
 * All-reduce of a few float64 values (BatchNorm's per-channel sums, a step's norm partials and
 * flags) through a block of shared memory of its own: the gradient slices are busy then.
 * SharedMemoryCollective.allReduceScalars runs on one. Every rank writes its values to
 * its row, waits at a barrier, and sums the rows itself in rank order 0..N-1, so every rank gets the
 * same bits. Calls alternate between two halves of the block: a rank can only overwrite a half
 * after every rank passed the next call's barrier, that is, after all finished reading it, so one
 * barrier per call is enough. The barrier watches the error word: a failing rank releases the rest.
 * @example const r = new SharedSmallAllReduce(new SharedArrayBuffer(SharedSmallAllReduce.bytes(2, 8)), control, 2, rank, 8);
 */
export class SharedSmallAllReduce {
  private readonly rows: Float64Array;
  private readonly sync: Barrier;
  private calls = 0;

  /** Bytes of shared memory for `size` ranks reducing up to `capacity` values at a time. */
  static bytes(size: number, capacity: number): number {
    return 2 * size * capacity * Float64Array.BYTES_PER_ELEMENT;
  }

  constructor(
    block: SharedArrayBuffer,
    control: Int32Array,
    readonly size: number,
    readonly rank: number,
    readonly capacity: number,
    options: BarrierOptions = {},
  ) {
    if (block.byteLength < SharedSmallAllReduce.bytes(size, capacity))
      throw new RangeError(
        `SharedSmallAllReduce: block has ${block.byteLength} bytes, needs ${SharedSmallAllReduce.bytes(size, capacity)}`,
      );
    this.rows = new Float64Array(block, 0, 2 * size * capacity);
    this.sync = new Barrier(control, size, rank, { name: "batch-norm statistics", ...options });
  }

  /** Sums `values` over every rank, in place. */
  allReduce(values: Float64Array): void {
    const { size, capacity, rows } = this;
    if (values.length > capacity) {
      throw new RangeError(
        `SharedSmallAllReduce: ${values.length} values to reduce, room for ${capacity} (its capacity)`,
      );
    }
    if (size === 1) return;
    const half = (this.calls++ % 2) * size * capacity;
    rows.set(values, half + this.rank * capacity);
    this.sync.wait(); // every rank's values are written
    for (let i = 0; i < values.length; i++) {
      let s = rows[half + i]!;
      for (let r = 1; r < size; r++) s += rows[half + r * capacity + i]!;
      values[i] = s;
    }
  }
}
