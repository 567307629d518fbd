import { describe, expect, it } from "vitest";
import { availableWorkers, resolveWorkers } from "./threads.js";

describe("resolveWorkers", () => {
  it("auto shares the cores among the processes on the host, at least one worker each", () => {
    expect(resolveWorkers("auto")).toBe(availableWorkers());
    expect(resolveWorkers("auto", 1000)).toBe(1);
    expect(resolveWorkers(undefined, 2)).toBe(Math.max(1, Math.floor(availableWorkers() / 2)));
  });

  it("a number is kept whatever the processes, and a bad one is refused by value", () => {
    expect(resolveWorkers(3, 2)).toBe(3);
    expect(() => resolveWorkers(0)).toThrow("workers: must be 'auto' or an integer from 1 to 256, got 0");
  });
});
