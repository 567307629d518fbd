#!/usr/bin/env node
// Builds core's optional native matmul (native/build/threadgrad_blas.node) from native/blas.c with
// the system C compiler and the running Node's own headers: nothing is downloaded and nothing is
// linked (the addon opens the BLAS at run time). Without a compiler or headers it prints why and
// exits 0: core then runs every product on its WebAssembly kernels. `--force` rebuilds.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const nativeDir = fileURLToPath(new URL("../native/", import.meta.url));
const source = join(nativeDir, "blas.c");
const output = join(nativeDir, "build", "threadgrad_blas.node");
const headers = join(dirname(dirname(process.execPath)), "include", "node");
const say = (line) => console.log(`@threadgrad/core: ${line}`);

if (!process.argv.includes("--force") && existsSync(output) && statSync(output).mtimeMs > statSync(source).mtimeMs) {
  process.exit(0);
}
if (!existsSync(join(headers, "node_api.h"))) {
  say(`no Node headers in ${headers}; skipping the native matmul (the WebAssembly one serves)`);
  process.exit(0);
}
const compiler = process.env.CC || "cc";
mkdirSync(dirname(output), { recursive: true });
const args = [
  "-O2",
  "-std=gnu11",
  "-shared",
  "-fPIC",
  "-Wall",
  "-Wextra",
  "-I",
  headers,
  source,
  "-o",
  output,
  "-ldl",
  "-lpthread",
];
const result = spawnSync(compiler, args, { stdio: ["ignore", "inherit", "inherit"] });
if (result.error !== undefined) {
  say(`no C compiler (${compiler}: ${result.error.message}); skipping the native matmul (the WebAssembly one serves)`);
  process.exit(0);
}
if (result.status !== 0) {
  console.error(`@threadgrad/core: ${compiler} failed to build ${source} (exit ${result.status})`);
  process.exit(1);
}
say(`built ${output}`);
