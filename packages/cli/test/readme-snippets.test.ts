// Every TypeScript or JavaScript block in every README runs as written: each one is transpiled and
// run with node in a folder of its README's own (whose node_modules links the built workspace
// packages), in the order a reader meets them, so a block may use a file an earlier block of the
// same README wrote. A block may be left out only with an HTML comment right above it that says
// why: `<!-- not run: reason -->`. Blocks that import @threadgrad/mpi need its addon: where Open
// MPI is not installed they are skipped, except in CI, which installs it.
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { requireBuilt } from "./helpers.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const PACKAGES = readdirSync(join(ROOT, "packages"));

export interface Snippet {
  file: string;
  line: number;
  lang: string;
  code: string;
  /** the reason given in `<!-- not run: reason -->`, or null when the block is run */
  skipReason: string | null;
}

/** The fenced code blocks of a Markdown text in ts, typescript, js, javascript or mjs. */
export function snippetsOf(markdown: string, file: string): Snippet[] {
  const lines = markdown.split("\n");
  const snippets: Snippet[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w+)\s*$/.exec(lines[i] ?? "");
    if (open === null) continue;
    const end = lines.findIndex((l, j) => j > i && l.startsWith("```"));
    if (end < 0) throw new Error(`${file}:${i + 1}: a code block is never closed`);
    const lang = open[1] ?? "";
    if (["ts", "typescript", "js", "javascript", "mjs"].includes(lang)) {
      let above = i - 1;
      while (above >= 0 && lines[above]?.trim() === "") above--;
      const marker = /^<!-- not run: (.+?) -->$/.exec(lines[above]?.trim() ?? "");
      snippets.push({
        file,
        line: i + 1,
        lang,
        code: lines.slice(i + 1, end).join("\n"),
        skipReason: marker?.[1] ?? null,
      });
    }
    i = end;
  }
  return snippets;
}

function readmes(): string[] {
  const found = ["README.md", "SECURITY.md", "benchmarks/README.md"];
  for (const p of PACKAGES) found.push(`packages/${p}/README.md`);
  for (const f of readdirSync(join(ROOT, "docs"))) if (f.endsWith(".md")) found.push(`docs/${f}`);
  return found.filter((f) => {
    try {
      readFileSync(join(ROOT, f));
      return true;
    } catch {
      return false;
    }
  });
}

const all = readmes().flatMap((f) => snippetsOf(readFileSync(join(ROOT, f), "utf8"), f));
const work = mkdtempSync(join(tmpdir(), "threadgrad-readme-"));
const hasMpi = existsSync(join(ROOT, "packages/mpi/native/build/Release/threadgrad_mpi.node"));
/** One folder per README, made on first use. */
const folderOf = (file: string): string => {
  const dir = join(work, file.replace(/[^\w.-]+/g, "_"));
  mkdirSync(dir, { recursive: true });
  return dir;
};

beforeAll(() => {
  requireBuilt();
  mkdirSync(join(work, "node_modules", "@threadgrad"), { recursive: true });
  for (const p of PACKAGES) symlinkSync(join(ROOT, "packages", p), join(work, "node_modules", "@threadgrad", p), "dir");
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("snippetsOf", () => {
  it("finds ts and js blocks with their lines and skip reasons, and nothing else", () => {
    const md = [
      "# t",
      "```sh",
      "echo no",
      "```",
      "```ts",
      "const a = 1;",
      "```",
      "<!-- not run: needs two hosts -->",
      "",
      "```js",
      "b();",
      "```",
    ].join("\n");
    expect(snippetsOf(md, "x.md")).toEqual([
      { file: "x.md", line: 5, lang: "ts", code: "const a = 1;", skipReason: null },
      { file: "x.md", line: 10, lang: "js", code: "b();", skipReason: "needs two hosts" },
    ]);
    expect(() => snippetsOf("```ts\nopen", "y.md")).toThrow("y.md:1: a code block is never closed");
  });
});

describe("README snippets", () => {
  it("there are snippets to run in the root, core and workers READMEs", () => {
    const files = new Set(all.filter((s) => s.skipReason === null).map((s) => s.file));
    for (const f of ["README.md", "packages/core/README.md", "packages/workers/README.md"]) expect(files).toContain(f);
  });

  for (const s of all) {
    const name = `${s.file}:${s.line}`;
    if (s.skipReason !== null) {
      it.skip(`${name} (not run: ${s.skipReason})`, () => {});
      continue;
    }
    if (s.code.includes('"@threadgrad/mpi"') && !hasMpi && !process.env.CI) {
      it.skip(`${name} (Open MPI is not installed here: pnpm --filter @threadgrad/mpi build)`, () => {});
      continue;
    }
    it(`${name} runs as written`, () => {
      const js = ts.transpileModule(s.code, {
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
        reportDiagnostics: true,
      });
      const dir = folderOf(s.file);
      const file = join(dir, `snippet-${s.line}.mjs`);
      writeFileSync(file, js.outputText);
      const r = spawnSync(process.execPath, [file], { cwd: dir, encoding: "utf8", timeout: 300_000 });
      expect(r.status, `${name} (${relative(ROOT, file)}) failed:\n${r.stderr}`).toBe(0);
    });
  }
});
