import { Writable } from "node:stream";
import { stripVTControlCharacters } from "node:util";
import { describe, expect, it } from "vitest";
import { Reporter, plural } from "./progress.js";

/** A terminal stand-in: everything written to it, and to the reporter's stderr sink, in one log. */
function fakeTerminal(log: string[]): NodeJS.WritableStream {
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      log.push(chunk.toString());
      done();
    },
  });
  return Object.assign(stream, { isTTY: true, columns: 100 });
}

// Escape sequences (cursor moves, line clears) stripped: what a reader sees, in order.
const visible = (log: string[]) => stripVTControlCharacters(log.join(""));

describe("Reporter on a terminal", () => {
  it("issue #13: the header and run folder lines printed before the bar starts are shown, above it", () => {
    const log: string[] = [];
    const r = new Reporter(
      "tty",
      () => log.push("<stdout>"),
      (l) => log.push(`${l}\n`),
      fakeTerminal(log),
    );
    r.info("training mlp:4,3 on digits, 1 epoch");
    r.info("run folder: runs/x");
    r.start(4, 0, 1, 1);
    r.step({ step: 2, totalSteps: 4, epoch: 1, epochs: 1, loss: 0.5, samplesPerSec: 1000, etaSeconds: 1 });
    r.info("epoch 1/1  train loss 0.5000  1.2s");
    r.stop();
    const text = visible(log);
    const header = text.indexOf("training mlp:4,3 on digits");
    const folder = text.indexOf("run folder: runs/x");
    const bar = text.indexOf("epoch 1/1 ");
    expect(header).toBeGreaterThanOrEqual(0);
    expect(folder).toBeGreaterThan(header);
    expect(bar).toBeGreaterThan(folder);
    expect(text).toContain("epoch 1/1  train loss 0.5000  1.2s");
  });

  it("--json and --quiet drop human lines", () => {
    for (const mode of ["json", "quiet"] as const) {
      const lines: string[] = [];
      const r = new Reporter(
        mode,
        (l) => lines.push(l),
        (l) => lines.push(l),
      );
      r.info("training ...");
      expect(lines).toEqual([]);
    }
  });
});

describe("plural", () => {
  it("uses the singular for exactly one", () => {
    expect([plural(1, "epoch"), plural(0, "epoch"), plural(2, "worker")]).toEqual(["1 epoch", "0 epochs", "2 workers"]);
  });
});
