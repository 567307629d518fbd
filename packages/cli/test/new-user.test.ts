// End-to-end: what a new user meets first (issue #13): the printed commands run, --out refuses to
// mix runs but leaves unrelated files alone, --overwrite, too many workers, plural counts.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { availableWorkers } from "@threadgrad/workers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BIN, requireBuilt, run, tempDir } from "./helpers.js";

const tmp = tempDir();
beforeAll(requireBuilt);
afterAll(tmp.cleanup);

const TINY = ["--limit", "128", "--batch-size", "64", "--epochs", "1", "--workers", "1"];

function folder(name: string, files: Record<string, string> = {}): string {
  const dir = join(tmp.path, name);
  mkdirSync(dir);
  for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
  return dir;
}

const startEvents = (dir: string) =>
  readFileSync(join(dir, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .filter((l) => JSON.parse(l).event === "start").length;

describe("--out and --overwrite", () => {
  it(
    "refuses a folder holding a run's files, naming them " + "once, without a resume path that does not exist",
    async () => {
      const dir = folder("half-run", { "metrics.jsonl": "{}\n", "report.html": "<html></html>" });
      const r = await run(["train", ...TINY, "--out", dir]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(
        `threadgrad train: --out ${dir} already holds a run's files (metrics.jsonl, report.html); ` +
          "choose another folder or pass --overwrite to replace them\n",
      );
      expect(r.stderr).not.toContain("threadgrad train: threadgrad train:");
      expect(r.stderr).not.toContain("--resume");
    },
  );

  it("trains in a folder of unrelated files and leaves them alone", async () => {
    const dir = folder("notes", { "notes.txt": "mine" });
    const r = await run(["train", ...TINY, "--out", dir]);
    expect(r.code).toBe(0);
    expect(readFileSync(join(dir, "notes.txt"), "utf8")).toBe("mine");
    expect(existsSync(join(dir, "checkpoint-latest.msgpack"))).toBe(true);
  });

  it("offers --resume for a finished run's folder, and --overwrite replaces that run", async () => {
    const dir = join(tmp.path, "finished");
    expect((await run(["train", ...TINY, "--out", dir])).code).toBe(0);
    const again = await run(["train", ...TINY, "--out", dir]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain(
      `choose another folder, continue that run with --resume ${join(dir, "checkpoint-latest.msgpack")}, ` +
        "or pass --overwrite to replace them",
    );
    const replaced = await run(["train", ...TINY, "--out", dir, "--overwrite"]);
    expect(replaced.code).toBe(0);
    expect(startEvents(dir)).toBe(1); // the old run's metrics went, not appended to
    // the header counts in the singular
    expect(replaced.stdout).toMatch(/, 1 epoch, batch 64, .*, 1 worker\n/);
    // report.html is titled with the model and the data
    const report = readFileSync(join(dir, "report.html"), "utf8");
    expect(report).toContain(`<title>mlp:784,128,10 (relu) on digits: threadgrad run ${dir}</title>`);
    expect(report).toMatch(/<tr><th>test accuracy<\/th><td>\d+\.\d\d%<\/td><\/tr>/);
  });
});

describe("printed commands and warnings", () => {
  it("with more workers than cores, train says it will run slower", async () => {
    const cores = availableWorkers();
    const r = await run(["train", ...TINY, "--workers", String(cores + 1), "--out", join(tmp.path, "crowded")]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(
      `warning: ${cores + 1} workers on ${cores} usable core${cores === 1 ? "" : "s"}: the workers take turns`,
    );
  });

  it("help run through the root threadgrad script shows commands that run from the clone", () => {
    const env = {
      ...process.env,
      npm_lifecycle_event: "threadgrad",
      npm_config_user_agent: "pnpm/12.4.2 npm/? node/?",
    };
    const r = spawnSync(process.execPath, [BIN, "train", "--help"], { env, encoding: "utf8" });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("$ npx -y pnpm@12.4.2 threadgrad train --data fashion-mnist");
    expect(r.stdout).toContain("--overwrite");
    const root = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8"));
    expect(root.scripts.threadgrad).toBe("node packages/cli/dist/bin.js");
  });
});
