// A run folder: config.json (the resolved settings), metrics.jsonl (one JSON object per line, one
// line per step and per evaluation), checkpoint-latest.msgpack, checkpoint-best.msgpack and
// report.html. A resumed run appends to the same metrics.jsonl. Across processes (--distributed
// mpi) process 0 alone has one; the others hold one that is not theirs (isWriter false): they
// never create, read or write anything in it.
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  rmdirSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";

const pad = (n: number) => String(n).padStart(2, "0");

/** `runs/2025-01-31T14-05-09` in local time; `-2`, `-3`... when that folder exists already. */
export function defaultRunDir(now = new Date(), root = "runs"): string {
  const day = `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
  const stamp = `${day}T${pad(now.getHours())}-${pad(now.getMinutes())}-${pad(now.getSeconds())}`;
  let dir = join(root, stamp);
  for (let i = 2; existsSync(dir); i++) dir = join(root, `${stamp}-${i}`);
  return dir;
}

export class RunDir {
  private metricsFd: number | null = null;
  /** whether this run made the folder (it did not exist before) */
  private readonly made: boolean;

  constructor(
    readonly path: string,
    /** false: another process's folder, which this one leaves alone */
    readonly isWriter = true,
  ) {
    this.made = isWriter && !existsSync(path);
    if (isWriter) mkdirSync(path, { recursive: true });
  }

  /** Removes the folder if this run made it and nothing was written there (a run refused at the start). */
  discardIfEmpty(): void {
    if (this.made && existsSync(this.path) && readdirSync(this.path).length === 0) rmdirSync(this.path);
  }

  get latestCheckpoint(): string {
    return join(this.path, "checkpoint-latest.msgpack");
  }

  get bestCheckpoint(): string {
    return join(this.path, "checkpoint-best.msgpack");
  }

  get metricsFile(): string {
    return join(this.path, "metrics.jsonl");
  }

  get reportFile(): string {
    return join(this.path, "report.html");
  }

  writeConfig(config: Record<string, unknown>): void {
    if (!this.isWriter) return;
    writeFileSync(join(this.path, "config.json"), `${JSON.stringify(config, null, 2)}\n`);
  }

  /** Appends one line to metrics.jsonl (synchronously: a crash loses nothing already reported). */
  appendMetrics(record: Record<string, unknown>): void {
    if (!this.isWriter) return;
    this.metricsFd ??= openSync(this.metricsFile, "a");
    writeSync(this.metricsFd, `${JSON.stringify(record)}\n`);
  }

  /** Every record in metrics.jsonl, skipping a torn last line. */
  readMetrics(): Record<string, unknown>[] {
    if (!this.isWriter || !existsSync(this.metricsFile)) return [];
    const records: Record<string, unknown>[] = [];
    for (const line of readFileSync(this.metricsFile, "utf8").split("\n")) {
      if (line.trim() === "") continue;
      try {
        records.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // a line cut short by a kill mid-write; the rest is still good
      }
    }
    return records;
  }

  close(): void {
    if (this.metricsFd !== null) closeSync(this.metricsFd);
    this.metricsFd = null;
  }
}
