#!/usr/bin/env node
// Packs every published package the way `pnpm publish` would (workspace:* rewritten to versions),
// installs the tarballs with npm into an empty project, and uses them as a user would: the README's
// code example type-checked against the shipped .d.ts files and run, then the installed `threadgrad`
// command trains one short epoch and evaluates its checkpoint. Run after a build (`.ci/run` calls it
// after the tests); it needs the npm registry for the third-party dependencies.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const root = resolve(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "..");
// mpi: workers depends on it (its addon is built by its own script, never at install).
const PACKAGES = ["core", "optim", "mpi", "workers", "export", "cli"];
const PNPM = ["-y", "pnpm@12.4.2"];
// Files a package cannot run without: a tarball missing one installs fine and fails on first use.
const REQUIRED = {
  core: ["LICENSE", "README.md", "dist/index.js", "dist/index.d.ts", "dist/kernels.wasm", "dist/kernels-relaxed.wasm"],
  optim: ["LICENSE", "README.md", "dist/index.js", "dist/index.d.ts"],
  mpi: ["LICENSE", "README.md", "dist/index.js", "dist/index.d.ts", "native/binding.gyp", "scripts/build.mjs"],
  workers: ["LICENSE", "README.md", "dist/index.js", "dist/index.d.ts", "dist/worker-entry.js"],
  export: ["LICENSE", "README.md", "dist/index.js", "dist/index.d.ts"],
  cli: ["LICENSE", "README.md", "dist/index.js", "dist/index.d.ts", "dist/bin.js"],
};

const fail = (message) => {
  console.error(`check-packs: ${message}`);
  process.exit(1);
};
const run = (cmd, args, cwd) => {
  try {
    return execFileSync(cmd, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    fail(`${cmd} ${args.join(" ")} (in ${cwd}) exited with ${e.status}:\n${e.stdout}${e.stderr}`);
  }
};

const work = mkdtempSync(join(tmpdir(), "threadgrad-packs-"));
try {
  const packs = join(work, "packs");
  mkdirSync(packs);
  for (const name of PACKAGES) {
    const dir = join(root, "packages", name);
    if (!existsSync(join(dir, "dist", "index.js"))) fail(`packages/${name}/dist is missing: build first (pnpm build)`);
    run("npx", [...PNPM, "pack", "--pack-destination", packs], dir);
  }
  const tarballs = readdirSync(packs).map((f) => join(packs, f));
  for (const name of PACKAGES) {
    const tarball = tarballs.find((t) => new RegExp(`threadgrad-${name}-\\d[^/]*\\.tgz$`).test(t));
    if (!tarball) fail(`no tarball for @threadgrad/${name} in ${packs}: ${readdirSync(packs).join(", ")}`);
    const files = run("tar", ["-tzf", tarball], packs)
      .split("\n")
      .filter(Boolean)
      .map((f) => f.replace(/^package\//, ""));
    for (const want of REQUIRED[name]) if (!files.includes(want)) fail(`@threadgrad/${name}: ${want} is not packed`);
    const stray = files.filter((f) => /\.test\.|(^|\/)fixtures\//.test(f));
    if (stray.length > 0) fail(`@threadgrad/${name}: tests or fixtures are packed: ${stray.join(", ")}`);
    const manifest = run("tar", ["-xzOf", tarball, "package/package.json"], packs);
    if (manifest.includes("workspace:")) fail(`@threadgrad/${name}: package.json still says workspace:`);
    console.log(`check-packs: @threadgrad/${name}: ${files.length} files`);
  }

  const project = join(work, "project");
  mkdirSync(project);
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "pack-check", private: true, type: "module" }));
  run("npm", ["install", "--no-audit", "--no-fund", ...tarballs], project);

  // The README's code example, as written, plus one line that prints what it computed.
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const example = /```ts\n(import [^\n]*"@threadgrad\/core";\n[\s\S]*?)```/.exec(readme)?.[1];
  if (!example) fail("README.md: no ```ts block importing @threadgrad/core");
  const check = [
    'import { createRequire } from "node:module";',
    "const require = createRequire(import.meta.url);",
    ...PACKAGES.map((p) => `require("@threadgrad/${p}/package.json");`),
    "console.log(JSON.stringify({ loss: loss.item(), penalty: penalty.item(), backend: getKernelBackend() }));",
  ].join("\n");
  const source = `${example}\nimport { getKernelBackend } from "@threadgrad/core";\n${check}\n`;
  writeFileSync(join(project, "example.ts"), source);
  const tsconfig = {
    compilerOptions: {
      target: "ES2022",
      module: "NodeNext",
      moduleResolution: "NodeNext",
      strict: true,
      outDir: "out",
      types: ["node"],
      typeRoots: [join(root, "node_modules", "@types")],
    },
    files: ["example.ts"],
  };
  writeFileSync(join(project, "tsconfig.json"), JSON.stringify(tsconfig));
  // Type-checks against the packed declarations with the repository's TypeScript (5.7 or later).
  run(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", project], project);
  const printed = JSON.parse(run(process.execPath, [join(project, "out", "example.js")], project).trim());
  if (!Number.isFinite(printed.loss) || !Number.isFinite(printed.penalty) || printed.backend !== "wasm")
    fail(`README example printed ${JSON.stringify(printed)}: want finite loss and penalty on the wasm backend`);
  console.log(`check-packs: README example: loss ${printed.loss.toFixed(4)}, backend ${printed.backend}`);

  const bin = join(project, "node_modules", ".bin", "threadgrad");
  const help = run(bin, ["--help"], project);
  for (const command of ["train", "eval", "bench"])
    if (!help.includes(command)) fail(`threadgrad --help does not list ${command}:\n${help}`);
  const out = join(project, "run");
  const args = ["train", "--limit", "200", "--epochs", "1", "--workers", "2", "--out", out, "--json"];
  const events = run(bin, args, project)
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l));
  const summary = events.find((e) => e.event === "summary");
  // 200 digits, 4 steps: well above chance (10%), far from trained.
  if (!summary || !(summary.testAccuracy > 0.2)) fail(`threadgrad train: summary ${JSON.stringify(summary)}`);
  const evalArgs = ["eval", "--checkpoint", join(out, "checkpoint-best.msgpack"), "--json"];
  const evaluated = JSON.parse(run(bin, evalArgs, project).trim().split("\n").at(-1));
  if (evaluated.accuracy !== summary.testAccuracy)
    fail(`threadgrad eval: accuracy ${evaluated.accuracy}, the run's test accuracy was ${summary.testAccuracy}`);
  console.log(`check-packs: installed threadgrad trained 1 epoch: test accuracy ${summary.testAccuracy.toFixed(4)}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
