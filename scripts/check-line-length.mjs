#!/usr/bin/env node
// Reports every source line longer than 140 columns. Biome wraps code at 120 columns but cannot
// break string literals, template strings, regular expressions or comments: those may run a little
// past 120, and this check holds them to 140 (run by `pnpm lint`).
//
//   node scripts/check-line-length.mjs                 the tracked sources (git ls-files)
//   node scripts/check-line-length.mjs --files a b c   only the given files, whatever their names
//
// Tracked sources are the *.ts, *.mts, *.mjs, *.js, *.cc and *.h files, without benchmarks/results
// (recorded output) and generated files (a `.generated.` name, or "do not edit" in the first two
// lines). A column is a Unicode code point, so "×" counts one. Prints `file:line: N columns (limit
// 140)` for each long line and exits 1 if there is any, 0 if none, 2 on bad arguments or a file
// that cannot be read.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const LIMIT = 140;
const SOURCE = /\.(ts|mts|mjs|js|cc|h)$/;
const EXCLUDED_DIRS = ["benchmarks/results/"];
const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

function usage(problem) {
  console.error(`check-line-length: ${problem}\nusage: node scripts/check-line-length.mjs [--files file...]`);
  process.exit(2);
}

function isGenerated(path, text) {
  if (path.includes(".generated.")) return true;
  const head = text.split("\n", 2).join("\n");
  return /do not edit/i.test(head);
}

function trackedSources() {
  const out = execFileSync("git", ["ls-files", "-z"], { cwd: root, encoding: "utf8", maxBuffer: 64 << 20 });
  return out
    .split("\0")
    .filter((p) => p !== "" && SOURCE.test(p) && !EXCLUDED_DIRS.some((d) => p.startsWith(d)))
    .map((p) => ({ shown: p, path: resolve(root, p), skipGenerated: true }));
}

function readText(file) {
  try {
    return readFileSync(file.path, "utf8");
  } catch (err) {
    // A tracked file deleted in the working tree has nothing to check.
    if (file.skipGenerated && err.code === "ENOENT") return null;
    console.error(`check-line-length: cannot read ${file.shown}: ${err.message}`);
    process.exit(2);
  }
}

const args = process.argv.slice(2);
let files;
if (args.length === 0) {
  files = trackedSources();
} else if (args[0] === "--files") {
  if (args.length === 1) usage("--files needs at least one file");
  files = args.slice(1).map((p) => ({ shown: p, path: resolve(p), skipGenerated: false }));
} else {
  usage(`unknown argument ${JSON.stringify(args[0])}`);
}

const count = (n, noun) => `${n} ${noun}${n === 1 ? "" : "s"}`;
let long = 0;
const longFiles = new Set();
for (const file of files) {
  const text = readText(file);
  if (text === null || (file.skipGenerated && isGenerated(file.shown, text))) continue;
  text.split("\n").forEach((raw, i) => {
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    // Code points, not UTF-16 units: a character outside the Basic Multilingual Plane counts once.
    const columns = line.length > LIMIT ? [...line].length : line.length;
    if (columns > LIMIT) {
      console.log(`${file.shown}:${i + 1}: ${columns} columns (limit ${LIMIT})`);
      long++;
      longFiles.add(file.shown);
    }
  });
}
if (long > 0) {
  console.error(`${count(long, "line")} over ${LIMIT} columns in ${count(longFiles.size, "file")}`);
  process.exit(1);
}
console.error(`no line over ${LIMIT} columns in ${count(files.length, "file")}`);
