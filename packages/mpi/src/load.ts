import { createRequire } from "node:module";

/** Message of the error thrown by every call when the addon cannot be loaded. */
export const NOT_AVAILABLE =
  "MPI is not available: install Debian's openmpi-bin and libopenmpi-dev, then run pnpm --filter @threadgrad/mpi build";

/** The addon's functions, as native/mpi_addon.cc exports them. */
export interface Binding {
  init(): { rank: number; size: number; localRank: number; localSize: number };
  info(): { rank: number; size: number; localRank: number; localSize: number };
  commInfo(comm: number): { rank: number; size: number };
  commSplit(comm: number, color: number, key: number, timeoutMs: number): number;
  commDup(comm: number, timeoutMs: number): number;
  commFree(comm: number): void;
  commCount(): number;
  allReduce(comm: number, data: Float32Array | Float64Array | Int32Array, op: string, timeoutMs: number): void;
  broadcast(comm: number, data: NodeJS.TypedArray, root: number, timeoutMs: number): void;
  barrier(comm: number, timeoutMs: number): void;
  allReduceAsync(
    comm: number,
    data: Float32Array | Float64Array | Int32Array,
    op: string,
    timeoutMs: number,
  ): Promise<void>;
  broadcastAsync(comm: number, data: NodeJS.TypedArray, root: number, timeoutMs: number): Promise<void>;
  barrierAsync(comm: number, timeoutMs: number): Promise<void>;
  abort(errorCode: number): void;
  finalize(): void;
  libraryVersion(): string;
}

/** The built addon, relative to src/ and dist/ alike (both sit one level below the package root). */
export const ADDON_PATH = "../native/build/Release/threadgrad_mpi.node";

/** Loads the addon at `path` (relative to this module), or returns why it could not be loaded. */
export function loadBinding(path: string = ADDON_PATH): { binding: Binding } | { error: Error } {
  try {
    return { binding: createRequire(import.meta.url)(path) as Binding };
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message.split("\n")[0] : String(cause);
    return { error: new Error(`${NOT_AVAILABLE} (${reason})`, { cause }) };
  }
}
