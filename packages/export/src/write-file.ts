import { randomBytes } from "node:crypto";
import { closeSync, existsSync, fsyncSync, linkSync, openSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";

export interface WriteOptions {
  /** Replace a file already at the path; without it an existing file is an error and stays as it was. */
  overwrite?: boolean;
}

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));
const codeOf = (e: unknown): unknown => (e as { code?: unknown } | null)?.code;

/**
 * Writes `bytes` to `path` in full or not at all: a temporary file in the same folder, fsync, then
 * rename (overwrite) or a hard link (keep), so a reader never sees half a file and a failed write
 * (full disk, missing folder) leaves whatever was at `path` untouched. `who` starts error messages.
 */
export function writeFileAtomic(who: string, path: string, bytes: Uint8Array, opts: WriteOptions = {}): void {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  let fd: number;
  try {
    fd = openSync(tmp, "wx");
  } catch (e) {
    throw new Error(`${who}: cannot write ${path}: ${message(e)}`);
  }
  try {
    try {
      for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    if (opts.overwrite) renameSync(tmp, path);
    else publishNew(who, tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      // Already moved into place or never created: nothing to remove.
    }
    if (e instanceof Error && e.message.startsWith(`${who}:`)) throw e;
    throw new Error(`${who}: cannot write ${path}: ${message(e)}`);
  }
  syncFolder(dir);
}

// link(2) fails with EEXIST instead of replacing, so two writers cannot both think they created the
// file. Some file systems have no hard links; there a check followed by rename is the best we have.
function publishNew(who: string, tmp: string, path: string): void {
  const exists = () => new Error(`${who}: ${path} already exists; pass overwrite: true to replace it`);
  try {
    linkSync(tmp, path);
  } catch (e) {
    if (codeOf(e) === "EEXIST") throw exists();
    if (!["EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS"].includes(String(codeOf(e)))) throw e;
    if (existsSync(path)) throw exists();
    renameSync(tmp, path);
    return;
  }
  unlinkSync(tmp);
}

// Makes the new directory entry durable; some platforms cannot open a folder for fsync, which only
// weakens durability after a power cut, never correctness, so a failure here is not an error.
function syncFolder(dir: string): void {
  try {
    const fd = openSync(dir, "r");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // See above.
  }
}
