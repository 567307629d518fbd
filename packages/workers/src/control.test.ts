import { describe, expect, it } from "vitest";
import {
  ControlAborted,
  ERROR,
  ErrorCode,
  USER_BASE,
  WaitTimeout,
  errorCodeName,
  signalError,
  waitForValue,
  waitUntil,
} from "./control.js";

// These run on the test's own thread: the helpers are for main, which must never block.
const newControl = () => new Int32Array(new SharedArrayBuffer(4 * (USER_BASE + 8)));
const WORD = USER_BASE + 1;

function storeLater(control: Int32Array, index: number, value: number, delayMs: number): void {
  setTimeout(() => {
    Atomics.store(control, index, value);
    Atomics.notify(control, index);
  }, delayMs);
}

describe("waitForValue / waitUntil", () => {
  it("resolves once another party stores the expected value and notifies", async () => {
    const control = newControl();
    storeLater(control, WORD, 1, 10);
    storeLater(control, WORD, 3, 30);
    await expect(waitForValue(control, WORD, 3, { timeoutMs: 5000 })).resolves.toBe(3);
  });

  it("resolves with the first value the predicate accepts", async () => {
    const control = newControl();
    storeLater(control, WORD, 5, 10);
    await expect(waitUntil(control, WORD, (v) => v >= 4, { timeoutMs: 5000 })).resolves.toBe(5);
  });

  it("rejects with ControlAborted when the error word is set", async () => {
    const control = newControl();
    setTimeout(() => signalError(control, ErrorCode.WORKER_FAILED), 10);
    const waiting = waitForValue(control, WORD, 1, { timeoutMs: 5000 });
    await expect(waiting).rejects.toThrow(ControlAborted);
    await expect(waiting).rejects.toThrow(/control word 49 abandoned, error word is WORKER_FAILED/);
  });

  it("rejects with the AbortSignal's reason", async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("stopped by user")), 10);
    await expect(waitForValue(newControl(), WORD, 1, { signal: controller.signal })).rejects.toThrow("stopped by user");
  });

  it("rejects with WaitTimeout naming the word and its value", async () => {
    const waiting = waitForValue(newControl(), WORD, 1, { timeoutMs: 50 });
    await expect(waiting).rejects.toThrow(WaitTimeout);
    await expect(waiting).rejects.toThrow(/control word 49 still 0 after 50 ms/);
  });
});

describe("signalError", () => {
  it("keeps the first error and returns the code in effect", () => {
    const control = newControl();
    expect(signalError(control, ErrorCode.TIMEOUT)).toBe(ErrorCode.TIMEOUT);
    expect(signalError(control, ErrorCode.ABORTED)).toBe(ErrorCode.TIMEOUT);
    expect(Atomics.load(control, ERROR)).toBe(ErrorCode.TIMEOUT);
    expect(errorCodeName(ErrorCode.TIMEOUT)).toBe("TIMEOUT");
  });

  it("refuses code 0, which means healthy", () => {
    expect(() => signalError(newControl(), 0)).toThrow(/signalError: code must be a nonzero integer, got 0/);
  });
});
