// The checkpoint file: written fully or not at all (short writes, a full disk), stale temporary
// files cleaned, and a payload that is not plain msgpack refused with a message naming the file.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { checkpointHeader, readCheckpoint, writeCheckpoint } from "./checkpoint.js";
import { checkPlainMsgpack } from "./plain-msgpack.js";

const root = fs.mkdtempSync(join(tmpdir(), "threadgrad-ckpt-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const freshDir = (): string => fs.mkdtempSync(join(root, `d${dirs++}-`));

const payload = (fill: number, bytes = 4000) => ({ kind: "test", data: new Uint8Array(bytes).fill(fill), n: fill });
const leftovers = (dir: string) => fs.readdirSync(dir).filter((n) => n.includes(".tmp-"));

/** An io that lets `budget` bytes through (in pieces of at most `piece`), then fails as a full disk does. */
function fillingDisk(budget: number, piece = 1 << 30) {
  let left = budget;
  return {
    writeSync(fd: number, buffer: Uint8Array, offset: number, length: number): number {
      if (left === 0) throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
      const n = fs.writeSync(fd, buffer, offset, Math.min(length, left, piece));
      left -= n;
      return n;
    },
  };
}

describe("writeCheckpoint", () => {
  it("writes the whole payload through writes shorter than asked", () => {
    const file = join(freshDir(), "c.msgpack");
    writeCheckpoint(file, payload(7), fillingDisk(Infinity, 5));
    const back = readCheckpoint(file);
    expect(back).toMatchObject({ kind: "test", n: 7 });
    expect(new Uint8Array(back.data as Uint8Array)).toEqual(new Uint8Array(4000).fill(7));
  });

  it("a short write then ENOSPC keeps the previous checkpoint, removes the temporary file and names the path", () => {
    const dir = freshDir(),
      file = join(dir, "c.msgpack");
    writeCheckpoint(file, payload(1));
    const before = fs.readFileSync(file);
    expect(() => writeCheckpoint(file, payload(2), fillingDisk(1000, 300))).toThrow(
      `checkpoint: cannot write ${file}: ENOSPC: no space left on device, write; ` +
        "the previous checkpoint there (if any) is unchanged",
    );
    expect(fs.readFileSync(file).equals(before)).toBe(true);
    expect(leftovers(dir)).toEqual([]);
  });

  it("a write that makes no progress is a failure, not a truncated success", () => {
    const dir = freshDir(),
      file = join(dir, "c.msgpack");
    writeCheckpoint(file, payload(1));
    const stuck = { writeSync: () => 0 };
    expect(() => writeCheckpoint(file, payload(2), stuck)).toThrow(
      /cannot write .*c\.msgpack: short write: 0 of 16 bytes/,
    );
    expect(readCheckpoint(file)).toMatchObject({ n: 1 });
    expect(leftovers(dir)).toEqual([]);
  });

  it("removes this path's temporary files left by processes that are gone, and no one else's", () => {
    const dir = freshDir(),
      file = join(dir, "c.msgpack");
    const gone = 2 ** 31 - 2; // above any pid_max: no such process
    const names = {
      gone: `c.msgpack.tmp-${gone}-1`,
      mine: `c.msgpack.tmp-${process.pid}-1`,
      live: `c.msgpack.tmp-${process.ppid}-1`, // the parent runs while we do
      other: `d.msgpack.tmp-${gone}-1`,
      odd: "c.msgpack.tmp-notes",
    };
    for (const n of Object.values(names)) fs.writeFileSync(join(dir, n), "partial");
    writeCheckpoint(file, payload(3));
    expect(fs.readdirSync(dir).sort()).toEqual(["c.msgpack", names.live, names.odd, names.other].sort());
  });
});

describe("a full disk (tmpfs)", () => {
  // Needs root (CI runs as root); elsewhere the injected short write above covers the same path.
  const mnt = join(root, "tmpfs");
  fs.mkdirSync(mnt);
  let mountError: string | null = null;
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt], { stdio: "pipe" });
  } catch (err) {
    mountError = String((err as { stderr?: Buffer }).stderr ?? err).trim();
  }
  afterAll(() => {
    if (mountError === null) execFileSync("umount", [mnt]);
  });

  it("keeps the previous checkpoint, leaves no temporary file and names the path and ENOSPC", (ctx) => {
    if (mountError !== null) ctx.skip(`cannot mount a tmpfs here (needs root): ${mountError}`);
    const file = join(mnt, "c.msgpack");
    writeCheckpoint(file, payload(1, 20_000));
    const before = fs.readFileSync(file);
    // Fill what is left, so the next checkpoint's temporary file cannot be written in full.
    const fd = fs.openSync(join(mnt, "filler"), "w");
    try {
      for (;;) fs.writeSync(fd, new Uint8Array(4096));
    } catch (err) {
      expect((err as NodeJS.ErrnoException).code).toBe("ENOSPC");
    } finally {
      fs.closeSync(fd);
    }
    expect(() => writeCheckpoint(file, payload(2, 20_000))).toThrow(
      new RegExp(`checkpoint: cannot write ${file}: ENOSPC: no space left on device`),
    );
    expect(fs.readFileSync(file).equals(before)).toBe(true);
    expect(leftovers(mnt)).toEqual([]);
    fs.rmSync(join(mnt, "filler"));
    writeCheckpoint(file, payload(2, 20_000)); // room again: the write goes through
    expect(readCheckpoint(file)).toMatchObject({ n: 2 });
  });
});

describe("a payload that is not plain data is refused before decoding", () => {
  const nested = (depth: number) => {
    const b = new Uint8Array(depth + 1).fill(0x91); // [[[...]]]
    b[depth] = 0xc0;
    return b;
  };
  it.each([
    ["100000 nested arrays", nested(100_000), /nesting deeper than 64 levels at byte 64/],
    ["an array declaring 2^32-1 items", Uint8Array.of(0xdd, 0xff, 0xff, 0xff, 0xff), /declares 4294967295 items/],
    ["a map declaring 2^32-1 entries", Uint8Array.of(0xdf, 0xff, 0xff, 0xff, 0xff), /declares 8589934590 items/],
    ["a 4 GiB binary", Uint8Array.of(0xc6, 0xff, 0xff, 0xff, 0xff), /needs 4294967295 bytes, only 0 remain/],
    ["a 4 GiB string", Uint8Array.of(0xdb, 0xff, 0xff, 0xff, 0xff), /needs 4294967295 bytes/],
    [
      "a RegExp (extension 0x78)",
      Uint8Array.of(0xc7, 3, 0x78, 0x92, 0xa1, 0x61, 0xa0),
      /extension value \(type byte 0xc7\)/,
    ],
    ["a Date (timestamp extension)", Uint8Array.of(0xd6, 0xff, 0, 0, 0, 0), /extension value/],
    ["a map with a number key", Uint8Array.of(0x81, 0x01, 0xc0), /map key at byte 1 is not a string/],
    ["trailing bytes", Uint8Array.of(0xc0, 0xc0), /1 bytes follow the payload's value/],
    ["the unused type 0xc1", Uint8Array.of(0x91, 0xc1), /byte 1 holds 0xc1/],
  ])("%s", (_name, bytes, message) => {
    expect(() => checkPlainMsgpack(bytes)).toThrow(message);
  });

  it("readCheckpoint names the file, for a deep nesting that would overflow msgpackr's stack", () => {
    const file = join(freshDir(), "deep.msgpack");
    const body = new Uint8Array(100_004);
    body.set([0x81, 0xa1, 0x78]); // { x: [[[...]]] }
    body.set(nested(100_000), 3);
    fs.writeFileSync(file, Buffer.concat([checkpointHeader(body), body]));
    expect(() => readCheckpoint(file)).toThrow(
      `checkpoint: ${file}: malformed payload: nesting deeper than 64 levels at byte 66`,
    );
  });

  it("refuses a device or a pipe instead of reading it forever", (ctx) => {
    if (!fs.existsSync("/dev/zero")) ctx.skip("no /dev/zero on this system");
    expect(() => readCheckpoint("/dev/zero")).toThrow("checkpoint: cannot read /dev/zero: not a regular file");
  });

  it("accepts everything a checkpoint writes, undefined included", () => {
    const file = join(freshDir(), "ok.msgpack");
    writeCheckpoint(file, { a: undefined, b: [1.5, -3, 2 ** 40, "s", null, true], c: { d: new Uint8Array(300) } });
    expect(readCheckpoint(file)).toMatchObject({ b: [1.5, -3, 2 ** 40, "s", null, true] });
  });
});
