import { isMainThread } from "node:worker_threads";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { SharedArena, planArena } from "./arena.js";
import { Barrier } from "./barrier.js";
import { BARRIER_COUNT, ERROR, ErrorCode, signalError, waitForValue } from "./control.js";
import { assertBuilt, liveWorkerCount, outcome, spawnRank, terminateAll } from "./fixtures/harness.mjs";

type Mode = "loop" | "park" | "throw";
interface ParkReport {
  released?: boolean;
  name?: string;
  message?: string;
  code?: number;
}

function newArena(ranks: number): SharedArena {
  return SharedArena.create(planArena({ paramSizes: [], ranks, stateBuffers: 0 }));
}

function spawn(arena: SharedArena, size: number, modes: Mode[], extra: object = {}) {
  return modes.map((mode, rank) =>
    spawnRank("./barrier-rank.mjs", { handle: arena.handle(), rank, size, mode, ...extra }),
  );
}

beforeAll(assertBuilt);

afterEach(async () => {
  await terminateAll();
  expect(liveWorkerCount()).toBe(0);
});

describe("Barrier", () => {
  it.each([1, 2, 3])("with %i ranks, no rank passes before every rank arrived (500 rounds)", async (size) => {
    const arena = newArena(size);
    // 3 ranks on a 2-core machine: spinning only wastes time slices, so fall back to waiting.
    const modes = Array<Mode>(size).fill("loop");
    const outcomes = await Promise.all(spawn(arena, size, modes, { rounds: 500, spinIterations: 50 }).map(outcome));
    for (const { error, messages } of outcomes) {
      expect(error).toBeUndefined();
      expect(messages).toEqual([{ violations: 0 }]);
    }
  });

  it("an error signalled by main releases every parked rank with BarrierAborted, not its own time-out", async () => {
    const arena = newArena(4);
    const workers = spawn(arena, 4, ["park", "park", "park"]); // rank 3 never comes
    const outcomes = workers.map(outcome);
    await waitForValue(arena.control, BARRIER_COUNT, 3, { timeoutMs: 20_000 });
    signalError(arena.control, ErrorCode.ABORTED);
    // Parked ranks time out on their own after 20 s (the fixture's default) with BarrierTimeout: the
    // name and code below show the signal released them. How fast is the benchmarks' question.
    for (const { messages } of await Promise.all(outcomes)) {
      const [report] = messages as ParkReport[];
      expect(report?.name).toBe("BarrierAborted");
      expect(report?.code).toBe(ErrorCode.ABORTED);
      expect(report?.message).toMatch(/^Barrier "step": rank \d of 4 aborted, error word is ABORTED$/);
    }
  });

  it("a worker that throws surfaces its error and releases the others with BarrierAborted", async () => {
    const arena = newArena(3);
    const workers = spawn(arena, 3, ["park", "park", "throw"]);
    const outcomes = workers.map(outcome);
    // What the trainer does on a worker's `error` event.
    workers[2]!.once("error", () => signalError(arena.control, ErrorCode.WORKER_FAILED));
    const [first, second, thrower] = await Promise.all(outcomes);
    expect(thrower!.error?.message).toBe("rank 2 exploded");
    for (const { messages } of [first!, second!]) {
      expect(messages).toEqual([expect.objectContaining({ name: "BarrierAborted", code: ErrorCode.WORKER_FAILED })]);
    }
  });

  it("a rank that times out names itself and the barrier, and sets the error word", async () => {
    const arena = newArena(2);
    const [parked] = await Promise.all(spawn(arena, 2, ["park"], { timeoutMs: 200 }).map(outcome));
    const { messages } = parked!;
    expect(messages).toEqual([
      {
        name: "BarrierTimeout",
        message: 'Barrier "step": rank 0 of 2 timed out after 200 ms (1 of 2 ranks arrived)',
        code: undefined,
      },
    ]);
    expect(Atomics.load(arena.control, ERROR)).toBe(ErrorCode.TIMEOUT);
  });

  it("rejects a rank outside [0, size)", () => {
    expect(() => new Barrier(newArena(1).control, 1, 1, { name: "step" })).toThrow(
      /Barrier "step": rank must be in \[0, 1\), got 1/,
    );
  });

  it.runIf(isMainThread)("refuses to block the main thread", () => {
    expect(() => new Barrier(newArena(2).control, 2, 0)).toThrow(/main thread must not block/);
  });
});
