import { setFlagsFromString } from "node:v8";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { KernelExports } from "./kernel-exports.generated.js";

// Where kernels.wasm is looked for, relative to this file: from dist/kernels/wasm/loader.js it is
// dist/kernels.wasm; from src/kernels/wasm/loader.ts (vitest runs the sources) the built file is
// in ../../../dist/. scripts/build-wasm.mjs writes it before `tsc -b`.
const CANDIDATES = ["../../kernels.wasm", "../../../dist/kernels.wasm"];
const RELAXED_NAME = "kernels-relaxed.wasm";

// Node has WebAssembly, but the ES2023 lib we compile against does not declare it: these are the
// few parts used here, typed structurally so that a real WebAssembly.Memory fits.
/** A WebAssembly.Memory (shared: its buffer is a SharedArrayBuffer). */
export interface WasmMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
  grow(deltaPages: number): number;
}
export interface WasmModule {
  readonly __brand?: "WebAssembly.Module";
}
interface WasmApi {
  Memory: new (descriptor: { initial: number; maximum?: number; shared?: boolean }) => WasmMemory;
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: object) => { readonly exports: object };
  validate(bytes: Uint8Array): boolean;
}
const WebAssembly = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** A new shared memory of `pages` 64 KiB pages that never grows (initial = maximum). */
export function newSharedMemory(pages: number): WasmMemory {
  return new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
}

// The exports' types are generated from the AssemblyScript sources (scripts/gen-kernel-types.mjs).
export type { KernelExports };

// A () -> v128 function doing i8x16.splat and i8x16.popcnt: valid only where SIMD is.
const SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11,
]);

let simdSupported: boolean | undefined;

/**
 * True when this runtime has WebAssembly SIMD and shared WebAssembly memories.
 * @example if (isWasmSimdSupported()) setKernelBackend("wasm");
 */
export function isWasmSimdSupported(): boolean {
  if (simdSupported === undefined) {
    try {
      newSharedMemory(1);
      simdSupported = WebAssembly.validate(SIMD_PROBE);
    } catch {
      simdSupported = false;
    }
  }
  return simdSupported;
}

/** Path of the built kernels.wasm, or undefined when it has not been built. */
export function findKernelsWasm(): string | undefined {
  for (const rel of CANDIDATES) {
    const path = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(path)) return path;
  }
  return undefined;
}

let compiled: WasmModule | undefined;
let relaxedInUse = false;

/**
 * The relaxed-SIMD build when this engine takes it, else null. Node 20 ships relaxed SIMD behind
 * --experimental-wasm-relaxed-simd, which NODE_OPTIONS refuses but v8.setFlagsFromString accepts
 * before a compile (in any thread); validating the build itself is the probe. THREADGRAD_RELAXED_SIMD=0
 * turns it off.
 */
function relaxedBytes(plainPath: string): Uint8Array | null {
  if (process.env.THREADGRAD_RELAXED_SIMD === "0") return null;
  const path = plainPath.replace(/kernels\.wasm$/, RELAXED_NAME);
  if (!existsSync(path)) return null;
  const bytes = readFileSync(path);
  if (!WebAssembly.validate(bytes)) {
    try {
      setFlagsFromString("--experimental-wasm-relaxed-simd");
    } catch {
      return null;
    }
    if (!WebAssembly.validate(bytes)) return null;
  }
  return bytes;
}

/** True when the kernels in use are the relaxed-SIMD build (fused multiply-add in the matmul). */
export function usesRelaxedSimd(): boolean {
  kernelsModule();
  return relaxedInUse;
}

/**
 * The compiled kernels module (read and compiled synchronously once per thread).
 * @example const module = kernelsModule(); // then new WebAssembly.Instance(module, { env: { memory } })
 */
export function kernelsModule(): WasmModule {
  if (compiled === undefined) {
    const path = findKernelsWasm();
    if (path === undefined) {
      const tried = CANDIDATES.map((rel) => fileURLToPath(new URL(rel, import.meta.url))).join(", ");
      throw new Error(
        `wasm kernels: kernels.wasm not found (tried ${tried}); run \`node packages/core/scripts/build-wasm.mjs\``,
      );
    }
    const relaxed = relaxedBytes(path);
    relaxedInUse = relaxed !== null;
    compiled = new WebAssembly.Module(relaxed ?? readFileSync(path));
  }
  return compiled;
}

/**
 * Instantiates the kernels on a shared memory. Cheap (the module owns no data and no start
 * function), so every thread makes its own instance on the same memory.
 * @example const exports = instantiateKernels(newSharedMemory(16));
 */
export function instantiateKernels(memory: WasmMemory): KernelExports {
  if (!(memory.buffer instanceof SharedArrayBuffer)) {
    throw new TypeError("wasm kernels: the memory must be shared (new WebAssembly.Memory({ ..., shared: true }))");
  }
  const instance = new WebAssembly.Instance(kernelsModule(), { env: { memory } });
  return instance.exports as unknown as KernelExports;
}
