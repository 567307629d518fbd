#!/usr/bin/env node
// Compiles packages/core/assembly/kernels.ts (AssemblyScript, with the files it imports) into
// packages/core/dist/kernels.wasm.
// Runs before `tsc -b` in every build, so it skips the compile when the output is newer than its
// sources; `--force` rebuilds anyway, `--wat` also writes dist/kernels.wat for reading. First it
// brings the exports' TypeScript interface and README table up to date (gen-kernel-types.mjs).
//
// Flags, and why:
//   --enable simd                 the kernels are written with v128 (f32x4, f64x2)
//   --enable threads              needed to declare a shared memory
//   --importMemory --sharedMemory one WebAssembly.Memory shared by every thread's instance
//   --initialMemory 1 --maximumMemory 65536
//                                 the smallest and largest memories an import may have: the JS side
//                                 picks the real size (an import's limits must lie inside these)
//   --runtime stub                no GC; the kernels allocate nothing anyway
//   -O3 --noAssert                speed; assertions would need abort messages, i.e. static data
//   --use abort=                  no abort import, no message strings
//   --enable relaxed-simd         second build only (kernels-relaxed.wasm): fused multiply-add
// The module must hold no data segments and no start function: instantiating it on a memory that
// other threads already use would re-run them. The check below fails the build if either appears.
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { generateKernelFiles } from "./gen-kernel-types.mjs";

const root = new URL("../", import.meta.url);
const assemblyDir = fileURLToPath(new URL("assembly/", root));
const source = fileURLToPath(new URL("assembly/kernels.ts", root));
const outDir = fileURLToPath(new URL("dist/", root));
const outFile = fileURLToPath(new URL("dist/kernels.wasm", root));
// The same source with relaxed SIMD enabled (fused multiply-add in the matmul); the loader picks it
// where the engine accepts relaxed SIMD, and falls back to kernels.wasm elsewhere.
const relaxedFile = fileURLToPath(new URL("dist/kernels-relaxed.wasm", root));
const textFile = fileURLToPath(new URL("dist/kernels.wat", root));
const args = new Set(process.argv.slice(2));

// The TypeScript interface and README table of the exports come from the same sources (cheap: it
// only reads them). Under CI the committed files must already be up to date: fail instead of
// writing, so a stale commit cannot pass.
const isCi = ["1", "true"].includes((process.env.CI ?? "").toLowerCase());
const stale = generateKernelFiles({ check: isCi });
if (stale.length > 0) {
  const files = stale.map((f) => `packages/core/${f}`).join(", ");
  if (isCi) {
    console.error(
      `build-wasm: ${files} out of date with packages/core/assembly; ` +
        "run `node packages/core/scripts/gen-kernel-types.mjs` and commit the result",
    );
    process.exit(1);
  }
  console.log(`build-wasm: regenerated ${files}`);
}

const mtime = (path) => {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return -1;
  }
};
const inputs = [
  ...readdirSync(assemblyDir)
    .filter((f) => f.endsWith(".ts"))
    .map((f) => assemblyDir + f),
  fileURLToPath(import.meta.url),
];
if (
  !args.has("--force") &&
  !args.has("--wat") &&
  inputs.every((p) => mtime(p) < Math.min(mtime(outFile), mtime(relaxedFile)))
) {
  process.exit(0);
}

const started = performance.now();
mkdirSync(outDir, { recursive: true });
const { default: asc } = await import("assemblyscript/dist/asc.js"); // loaded only when compiling
for (const [file, extra] of [
  [outFile, []],
  [relaxedFile, ["--enable", "relaxed-simd"]],
]) {
  const { error, stderr } = await asc.main([
    source,
    "--outFile",
    file,
    ...(args.has("--wat") && file === outFile ? ["--textFile", textFile] : []),
    "--enable",
    "simd",
    "--enable",
    "threads",
    ...extra,
    "--importMemory",
    "--sharedMemory",
    "--initialMemory",
    "1",
    "--maximumMemory",
    "65536",
    "--runtime",
    "stub",
    "--optimizeLevel",
    "3",
    "--shrinkLevel",
    "0",
    "--noAssert",
    "--use",
    "abort=",
  ]);
  if (error) {
    process.stderr.write(stderr.toString());
    console.error(`build-wasm: asc failed: ${error.message}`);
    process.exit(1);
  }
  checkNoStaticState(readFileSync(file), file);
}

const ms = Math.round(performance.now() - started);
console.log(`build-wasm: wrote ${outFile} and ${relaxedFile} in ${ms} ms`);

// Walks the module's sections: data (11), data count (12) and start (8) must be absent.
function checkNoStaticState(bytes, file) {
  let pos = 8;
  const uleb = () => {
    let result = 0,
      shift = 0,
      byte;
    do {
      byte = bytes[pos++];
      result += (byte & 0x7f) * 2 ** shift;
      shift += 7;
    } while (byte & 0x80);
    return result;
  };
  const names = { 8: "a start function", 11: "data segments", 12: "a data count section" };
  while (pos < bytes.length) {
    const id = bytes[pos++];
    const size = uleb();
    if (id in names) {
      writeFileSync(file, new Uint8Array(0));
      console.error(
        `build-wasm: ${file} has ${names[id]}; the module must own no static data (see assembly/kernels.ts)`,
      );
      process.exit(1);
    }
    pos += size;
  }
}
