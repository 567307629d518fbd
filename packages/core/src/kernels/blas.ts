import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { getKernelBackend } from "./backend.js";

/** The BLAS behind the native matmul, as the library reports itself. */
export interface BlasInfo {
  /** the file name or path it was opened by */
  readonly library: string;
  /** openblas_get_config(), or "" for another CBLAS */
  readonly config: string;
  /** openblas_get_corename(): the kernels OpenBLAS chose for this CPU, or "" */
  readonly core: string;
}

/** native/blas.c's exports: sgemm(transA, transB, m, n, k, a, aOff, lda, b, bOff, ldb, c, cOff, ldc). */
export interface BlasAddon {
  load(library: string): BlasInfo;
  sgemm(
    transA: boolean,
    transB: boolean,
    m: number,
    n: number,
    k: number,
    a: Float32Array,
    aOff: number,
    lda: number,
    b: Float32Array,
    bOff: number,
    ldb: number,
    c: Float32Array,
    cOff: number,
    ldc: number,
  ): void;
}

// From dist/kernels/blas.js and from src/kernels/blas.ts (vitest) alike, the package root is ../../.
const ADDON = fileURLToPath(new URL("../../native/build/threadgrad_blas.node", import.meta.url));
const DEFAULT_LIBRARIES = ["libopenblas.so.0", "libopenblas.so", "libopenblas.dylib"];

interface State {
  addon: BlasAddon | null;
  info: BlasInfo | null;
  /** why there is no native matmul, when there is none */
  reason: string;
}

let state: State | undefined;
let enabled = true;

/**
 * Opens the native matmul as THREADGRAD_BLAS says: unset, '' or 'auto' tries OpenBLAS under its
 * usual names and quietly goes without; 'off' (or '0') never loads it; anything else is the BLAS
 * library to open (a file name or a path), and failing to open it throws.
 */
function init(): State {
  const env = globalThis.process?.env?.THREADGRAD_BLAS ?? "";
  if (env === "off" || env === "0") return { addon: null, info: null, reason: `THREADGRAD_BLAS=${env}` };
  const explicit = env !== "" && env !== "auto";
  if (!existsSync(ADDON)) {
    const reason = `the native addon is not built (${ADDON}; run \`node packages/core/scripts/build-native.mjs\`)`;
    if (explicit) throw new Error(`THREADGRAD_BLAS=${env}: ${reason}`);
    return { addon: null, info: null, reason };
  }
  const addon = createRequire(import.meta.url)(ADDON) as BlasAddon;
  const reasons: string[] = [];
  for (const library of explicit ? [env] : DEFAULT_LIBRARIES) {
    try {
      return { addon, info: addon.load(library), reason: "" };
    } catch (e) {
      if (explicit) throw new Error(`THREADGRAD_BLAS=${env}: ${(e as Error).message}`);
      reasons.push((e as Error).message);
    }
  }
  return { addon: null, info: null, reason: `no BLAS found: ${reasons.join("; ")}` };
}

/**
 * The native matmul when it serves this thread, else null: the addon is built, a BLAS opened, and
 * setNativeBlas(false) was not called here.
 */
export function nativeBlas(): BlasAddon | null {
  state ??= init();
  return enabled ? state.addon : null;
}

/**
 * The BLAS that serves float32 matrix products under the 'wasm' backend, or null with the reason
 * (THREADGRAD_BLAS=off, the addon not built, no OpenBLAS found, or setNativeBlas(false)).
 * @example const { info, reason } = nativeBlasStatus(); console.log(info?.core ?? reason);
 */
export function nativeBlasStatus(): { info: BlasInfo | null; reason: string } {
  state ??= init();
  if (!enabled && state.info !== null) return { info: null, reason: "setNativeBlas(false) in this thread" };
  return { info: state.info, reason: state.reason };
}

/**
 * Turns the native matmul on or off for this thread (each worker decides for itself; the
 * THREADGRAD_BLAS default applies in every thread). Turning it on throws, with the reason, where
 * it is not available.
 * @example setNativeBlas(false); // e.g. to compare against the WebAssembly matmul
 */
export function setNativeBlas(on: boolean): void {
  if (typeof on !== "boolean") throw new TypeError(`setNativeBlas: expected a boolean, got ${String(on)}`);
  state ??= init();
  if (on && state.addon === null) throw new Error(`setNativeBlas(true): no native matmul: ${state.reason}`);
  enabled = on;
}

/**
 * What runs this thread's float32 matrix products, in words: the BLAS with its version and kernels,
 * or the WebAssembly (or JavaScript) matmul and why no BLAS serves. Worker threads choose as this
 * thread does unless code in them calls setNativeBlas or setKernelBackend.
 * @example console.log(`matmul: ${describeMatmul()}`); // matmul: OpenBLAS 0.3.21 (SkylakeX kernels), ...
 */
export function describeMatmul(): string {
  if (getKernelBackend() === "js") return "JavaScript (the 'js' kernel backend)";
  const { info, reason } = nativeBlasStatus();
  if (info === null) return `WebAssembly SIMD (no native BLAS: ${reason})`;
  const name = /^OpenBLAS \S+/.exec(info.config)?.[0] ?? info.library;
  return `${name}${info.core ? ` (${info.core} kernels)` : ""}, one thread per worker`;
}
