// Every TypeScript or JavaScript block in every README runs as written: each one is transpiled,
// written into an empty folder whose node_modules links the built workspace packages, and run with
// node there (so files a snippet writes land in that folder). A block may be left out only with an
// HTML comment right above it that says why: `<!-- not run: reason -->`.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
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
    it(`${name} runs as written`, () => {
      const js = ts.transpileModule(s.code, {
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
        reportDiagnostics: true,
      });
      const dir = mkdtempSync(join(work, "snippet-"));
      const file = join(dir, "snippet.mjs");
      writeFileSync(file, js.outputText);
      const r = spawnSync(process.execPath, [file], { cwd: dir, encoding: "utf8", timeout: 300_000 });
      expect(r.status, `${name} (${relative(ROOT, file)}) failed:\n${r.stderr}`).toBe(0);
    });
  }
});
