// threadgrad's float32 kernel backend switch (core's kernels/backend.ts), found at run time so the
// suites still build and run against a core that does not export it yet.
import * as core from "@threadgrad/core";

export type KernelBackend = "js" | "wasm";

export interface KernelBackends {
  current(): KernelBackend;
  set(name: KernelBackend): void;
  /** the backends this runtime can use */
  available(): KernelBackend[];
}

export async function kernelBackends(): Promise<KernelBackends | null> {
  const c = core as unknown as Record<string, unknown>;
  const set = c.setKernelBackend,
    get = c.getKernelBackend;
  if (typeof set !== "function" || typeof get !== "function") return null;
  const current = () => (get as () => KernelBackend)();
  const setter = (name: KernelBackend) => (set as (n: KernelBackend) => void)(name);
  return {
    current,
    set: setter,
    available() {
      const before = current();
      const ok: KernelBackend[] = ["js"];
      try {
        setter("wasm");
        ok.push("wasm");
      } catch {
        // no SIMD or no kernels.wasm: js only
      }
      setter(before);
      return ok;
    },
  };
}

/**
 * Runs `fn` once per available backend (or once, as "js", when core has no switch), restoring
 * the previous backend afterwards. Where a native BLAS serves, 'wasm' runs twice: "threadgrad
 * wasm" with every product in WebAssembly (setNativeBlas(false)), then "threadgrad blas" with
 * the products on the BLAS (the default), so one run shows both.
 */
export async function forEachBackend<T>(fn: (backend: KernelBackend, label: string) => Promise<T>): Promise<T[]> {
  const kb = await kernelBackends();
  if (kb === null) return [await fn("js", "threadgrad")];
  const before = kb.current();
  const blas = core.nativeBlasStatus().info !== null;
  const out: T[] = [];
  try {
    for (const b of kb.available()) {
      kb.set(b);
      if (b === "wasm" && blas) {
        core.setNativeBlas(false);
        try {
          out.push(await fn(b, "threadgrad wasm"));
        } finally {
          core.setNativeBlas(true);
        }
        out.push(await fn(b, "threadgrad blas"));
      } else out.push(await fn(b, `threadgrad ${b}`));
    }
  } finally {
    kb.set(before);
  }
  return out;
}
