import { findKernelsWasm, isWasmSimdSupported } from "./wasm/loader.js";

/** Which implementation serves the float32 kernels; float64 always runs in JavaScript (gradcheck). */
export type KernelBackend = "js" | "wasm";

let backend: KernelBackend | undefined;

/**
 * Selects the float32 kernel backend for this thread. 'wasm' throws when WebAssembly SIMD or
 * dist/kernels.wasm is missing. Workers choose their own (the THREADGRAD_KERNELS default applies
 * in every thread).
 * @example setKernelBackend("js"); // e.g. to compare against the WebAssembly kernels
 */
export function setKernelBackend(name: KernelBackend): void {
  if (name !== "js" && name !== "wasm") {
    throw new TypeError(`setKernelBackend: expected 'js' or 'wasm', got ${String(name)}`);
  }
  if (name === "wasm") requireWasm("setKernelBackend('wasm')");
  backend = name;
}

/**
 * The float32 kernel backend: the last setKernelBackend, else THREADGRAD_KERNELS=js|wasm, else
 * 'wasm' when SIMD is supported and kernels.wasm is built, else 'js'.
 * @example if (getKernelBackend() === "wasm") console.log("SIMD kernels");
 */
export function getKernelBackend(): KernelBackend {
  backend ??= defaultBackend();
  return backend;
}

function defaultBackend(): KernelBackend {
  const env = globalThis.process?.env?.THREADGRAD_KERNELS;
  if (env === "js") return "js";
  if (env === "wasm") {
    requireWasm("THREADGRAD_KERNELS=wasm");
    return "wasm";
  }
  if (env !== undefined && env !== "") {
    throw new Error(`THREADGRAD_KERNELS: expected 'js' or 'wasm', got '${env}'`);
  }
  return isWasmSimdSupported() && findKernelsWasm() !== undefined ? "wasm" : "js";
}

function requireWasm(where: string): void {
  if (!isWasmSimdSupported()) throw new Error(`${where}: this runtime lacks WebAssembly SIMD or shared memory`);
  if (findKernelsWasm() === undefined) {
    throw new Error(`${where}: kernels.wasm is not built; run \`node packages/core/scripts/build-wasm.mjs\``);
  }
}
