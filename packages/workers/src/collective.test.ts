import fc from "fast-check";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { SharedArena, planArena } from "./arena.js";
import { SharedMemoryCollective, SharedSmallAllReduce, reduceSlices } from "./collective.js";
import { ERROR, USER_BASE } from "./control.js";
import { segment } from "./shard.js";
import {
  assertBuilt,
  liveWorkerCount,
  outcome,
  seededValues,
  spawnRank,
  terminateAll,
  type Outcome,
} from "./fixtures/harness.mjs";

interface Round {
  op: "allReduce" | "reduceScatter" | "allGather" | "broadcast";
  n: number;
  seed: number;
  isShared: boolean;
  root?: number;
}
interface RoundReport {
  contributed: Float32Array;
  result: Float32Array;
}

/** Index of the first element whose bits differ, or -1: `===` would equate 0 and -0 and miss NaN. */
function firstBitDifference(actual: Float32Array, expected: Float32Array): number {
  if (actual.length !== expected.length) return Math.min(actual.length, expected.length);
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const b = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  return a.findIndex((bits, i) => bits !== b[i]);
}

function sumOf(slices: Float32Array[]): Float32Array {
  const out = new Float32Array(slices[0]!.length);
  reduceSlices(slices, out, 0, out.length);
  return out;
}

async function runRanks(
  ranks: number,
  rounds: Round[],
  extra: object = {},
): Promise<{ arena: SharedArena; outcomes: Outcome[] }> {
  const maxLength = Math.max(16, ...rounds.map((round) => round.n));
  const arena = SharedArena.create(planArena({ paramSizes: [maxLength], ranks, stateBuffers: 0 }));
  const workers = Array.from({ length: ranks }, (_, rank) =>
    spawnRank("./collective-rank.mjs", { handle: arena.handle(), rank, rounds, spinIterations: 100, ...extra }),
  );
  const outcomes = await Promise.all(workers.map(outcome));
  for (const { error, exitCode } of outcomes) {
    expect(error).toBeUndefined();
    expect(exitCode).toBe(0);
  }
  expect(Atomics.load(arena.control, ERROR)).toBe(0);
  return { arena, outcomes };
}

// Sizes around the segment alignment, below the rank count, and random ones.
const sizes = [0, 1, 2, 15, 16, 17, 33, 100, ...fc.sample(fc.integer({ min: 0, max: 5000 }), { numRuns: 6, seed: 7 })];

beforeAll(assertBuilt);

afterEach(async () => {
  await terminateAll();
  expect(liveWorkerCount()).toBe(0);
});

describe("reduceSlices", () => {
  it("adds slices left to right in float32, so order is visible", () => {
    const slices = [[1e8], [-1e8], [1]].map((v) => Float32Array.from(v));
    expect(sumOf(slices)[0]).toBe(1); // (1e8 - 1e8) + 1
    expect(sumOf([slices[1]!, slices[2]!, slices[0]!])[0]).toBe(0); // -1e8 + 1 rounds back to -1e8
  });

  it("sums into the first slice in place over a sub-range only", () => {
    const a = Float32Array.from([1, 2, 3, 4]);
    reduceSlices([a, Float32Array.from([10, 20, 30, 40])], a, 1, 3);
    expect([...a]).toEqual([1, 22, 33, 4]);
  });
});

describe.each([1, 2, 3])("SharedMemoryCollective with %i worker threads", (ranks) => {
  it("allReduce and reduceScatter equal the single-thread sum bit for bit, in place or staged", async () => {
    const rounds: Round[] = sizes.flatMap((n, i) => [
      { op: "allReduce", n, seed: i, isShared: true },
      { op: "allReduce", n, seed: i + 100, isShared: false },
      { op: "reduceScatter", n, seed: i + 200, isShared: i % 2 === 0 },
    ]);
    const { outcomes } = await runRanks(ranks, rounds);
    rounds.forEach((round, i) => {
      const reports = outcomes.map(({ messages }) => messages[i] as RoundReport);
      const sum = sumOf(reports.map((report) => report.contributed));
      reports.forEach(({ result }, rank) => {
        const [start, end] = round.op === "reduceScatter" ? segment(round.n, ranks, rank) : [0, round.n];
        expect(firstBitDifference(result, sum.slice(start, end)), `${round.op} n=${round.n} rank ${rank}`).toBe(-1);
      });
    });
  });

  it("allGather assembles every rank's segment and broadcast copies the root's buffer", async () => {
    const rounds: Round[] = sizes.flatMap((n, i) => [
      { op: "allGather", n, seed: i, isShared: i % 2 === 0 },
      { op: "broadcast", n, seed: i + 100, isShared: i % 2 === 1, root: i % ranks },
    ]);
    const { outcomes } = await runRanks(ranks, rounds);
    rounds.forEach((round, i) => {
      const reports = outcomes.map(({ messages }) => messages[i] as RoundReport);
      const expected = new Float32Array(round.n);
      if (round.op === "broadcast") expected.set(reports[round.root!]!.contributed);
      for (let rank = 0; rank < ranks && round.op === "allGather"; rank++) {
        const [start, end] = segment(round.n, ranks, rank);
        expected.set(reports[rank]!.contributed.subarray(start, end), start);
      }
      reports.forEach(({ result }, rank) => {
        expect(firstBitDifference(result, expected), `${round.op} n=${round.n} rank ${rank}`).toBe(-1);
      });
    });
  });

  it("allReduce over a planned arena leaves each parameter's sum in slice 0 and padding at zero", async () => {
    const paramSizes = [5, 37, 1, 300];
    const layout = planArena({ paramSizes, ranks, stateBuffers: 2 });
    const arena = SharedArena.create(layout);
    const workers = Array.from({ length: ranks }, (_, rank) =>
      spawnRank("./collective-rank.mjs", { handle: arena.handle(), rank, rounds: [], paramRound: true }),
    );
    for (const { error } of await Promise.all(workers.map(outcome))) expect(error).toBeUndefined();
    const reduced = arena.grads(0);
    paramSizes.forEach((size, i) => {
      const contributions = Array.from({ length: ranks }, (_, rank) => seededValues(size, 1000 * i + rank));
      expect(firstBitDifference(arena.paramIn(reduced, i), sumOf(contributions)), `parameter ${i}`).toBe(-1);
      const paddingEnd = layout.paramOffsets[i + 1] ?? layout.paddedLength;
      expect(reduced.subarray(layout.paramOffsets[i]! + size, paddingEnd).every((v) => v === 0)).toBe(true);
    });
  });
});

describe("SharedSmallAllReduce (BatchNorm's in-step sums)", () => {
  beforeAll(() => assertBuilt());
  afterEach(terminateAll);

  async function run(size: number, lengths: number[], failAt?: { rank: number; call: number }) {
    const capacity = Math.max(...lengths);
    const block = new SharedArrayBuffer(SharedSmallAllReduce.bytes(size, capacity));
    const control = new Int32Array(new SharedArrayBuffer(USER_BASE * 4));
    const workers = Array.from({ length: size }, (_, rank) =>
      spawnRank("./small-allreduce-rank.mjs", { block, control, size, rank, capacity, lengths, failAt }),
    );
    return { outcomes: await Promise.all(workers.map(outcome)), control };
  }

  it("gives every rank the rank-order float64 sum, bit for bit, over many calls back to back", async () => {
    // 40 calls of varying length with one barrier each: the two halves of the block must never be
    // overwritten while a peer still reads them.
    const lengths = Array.from({ length: 40 }, (_, i) => 1 + ((i * 7) % 9));
    const size = 3;
    const { outcomes, control } = await run(size, lengths);
    expect(Atomics.load(control, ERROR)).toBe(0);
    lengths.forEach((n, call) => {
      const expected = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        let s = seededValues(n, 31 * call)[i]!;
        for (let r = 1; r < size; r++) s += seededValues(n, 31 * call + r)[i]!;
        expected[i] = s;
      }
      for (const { messages, error } of outcomes) {
        expect(error).toBeUndefined();
        expect(Array.from(messages[call] as Float64Array)).toEqual(Array.from(expected));
      }
    });
  });

  it("a rank that fails releases the others waiting at the reduction (no hang)", async () => {
    const { outcomes, control } = await run(3, [4, 4, 4, 4], { rank: 1, call: 2 });
    expect(Atomics.load(control, ERROR)).not.toBe(0);
    expect(outcomes[1]!.error?.message).toBe("rank 1 failed on purpose at call 2");
    for (const r of [0, 2]) {
      expect(outcomes[r]!.messages).toHaveLength(2);
      expect(outcomes[r]!.error?.message).toMatch(/Barrier "batch-norm statistics": rank \d of 3 aborted/);
    }
  });

  it("refuses more values than it has room for, naming both counts", () => {
    const reducer = new SharedSmallAllReduce(
      new SharedArrayBuffer(SharedSmallAllReduce.bytes(1, 4)),
      new Int32Array(new SharedArrayBuffer(USER_BASE * 4)),
      1,
      0,
      4,
    );
    const one = new Float64Array([1, 2, 3]);
    reducer.allReduce(one);
    expect(Array.from(one)).toEqual([1, 2, 3]);
    expect(() => reducer.allReduce(new Float64Array(5))).toThrow("5 values to reduce, room for 4");
  });
});

describe.each([1, 2, 3])("the Collective a step uses besides the gradient reduction, %i worker threads", (ranks) => {
  async function runInterface(rounds: { op: string; n: number; seed: number }[], capacity = 8) {
    const arena = SharedArena.create(planArena({ paramSizes: [37, 100], ranks, stateBuffers: 0 }));
    const scalars = { block: new SharedArrayBuffer(SharedSmallAllReduce.bytes(ranks, capacity)), capacity };
    const marks = new SharedArrayBuffer(4 * ranks);
    const workers = Array.from({ length: ranks }, (_, rank) =>
      spawnRank("./collective-interface-rank.mjs", { handle: arena.handle(), rank, rounds, scalars, marks }),
    );
    const outcomes = await Promise.all(workers.map(outcome));
    for (const { error, exitCode } of outcomes) {
      expect(error).toBeUndefined();
      expect(exitCode).toBe(0);
    }
    expect(Atomics.load(arena.control, ERROR)).toBe(0);
    return { arena, outcomes };
  }

  it("allReduceScalars gives every rank the rank-order float64 sum, between gradient reductions", async () => {
    const rounds = Array.from({ length: 12 }, (_, i) => ({
      op: i % 3 === 2 ? "reduceScatter" : "allReduceScalars",
      n: 1 + ((i * 5) % 8),
      seed: i,
    }));
    const { outcomes } = await runInterface(rounds);
    rounds.forEach((round, i) => {
      if (round.op !== "allReduceScalars") return;
      const reports = outcomes.map(
        ({ messages }) => messages[i] as { contributed: Float64Array; result: Float64Array },
      );
      const expected = reports[0]!.contributed.slice();
      for (let r = 1; r < ranks; r++) for (let k = 0; k < round.n; k++) expected[k]! += reports[r]!.contributed[k]!;
      for (const { result } of reports) expect(Array.from(result), `round ${i}`).toEqual(Array.from(expected));
    });
  });

  it("allGather of the shared parameters leaves every segment in place for every rank, gradients untouched", async () => {
    const rounds = [0, 1, 2].map((seed) => ({ op: "allGather", n: 0, seed: 100 * seed }));
    const { arena, outcomes } = await runInterface(rounds);
    const length = arena.layout.paddedLength;
    rounds.forEach((round, i) => {
      const expected = new Float32Array(length);
      for (let r = 0; r < ranks; r++) {
        const [start, end] = segment(length, ranks, r);
        expected.set(seededValues(end - start, round.seed + r), start);
      }
      for (const { messages } of outcomes) {
        const report = messages[i] as { result: Float32Array; gradsUnchanged: boolean };
        expect(firstBitDifference(report.result, expected), `round ${i}`).toBe(-1);
        expect(report.gradsUnchanged).toBe(true);
      }
    });
  });

  it("no rank passes a barrier before every rank has reached it", async () => {
    const rounds = Array.from({ length: 20 }, (_, i) => ({ op: "barrier", n: 0, seed: i }));
    const { outcomes } = await runInterface(rounds);
    for (const { messages } of outcomes) {
      expect(messages.map((m) => (m as { least: number }).least)).toEqual(rounds.map((_, round) => round + 1));
    }
  });
});

describe("SharedMemoryCollective.allReduceScalars without its shared memory", () => {
  it("is the identity for one rank and names the missing option for several", async () => {
    const one = new SharedMemoryCollective(
      SharedArena.create(planArena({ paramSizes: [4], ranks: 1, stateBuffers: 0 })),
      0,
    );
    const values = Float64Array.of(1.5, -2);
    one.allReduceScalars(values);
    expect(Array.from(values)).toEqual([1.5, -2]);
    const arena = SharedArena.create(planArena({ paramSizes: [4], ranks: 2, stateBuffers: 0 }));
    const worker = spawnRank("./collective-interface-rank.mjs", {
      handle: arena.handle(),
      rank: 0,
      rounds: [{ op: "allReduceScalars", n: 2, seed: 1 }],
      marks: new SharedArrayBuffer(8),
    });
    const { error } = await outcome(worker);
    expect(error?.message).toBe(
      "SharedMemoryCollective.allReduceScalars: no shared memory for scalars was given (options.scalars)",
    );
  });
});
