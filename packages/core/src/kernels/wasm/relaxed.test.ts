import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { mulberry32 } from "../../tensor/random.js";
import { findKernelsWasm, kernelsModule, newSharedMemory, usesRelaxedSimd, type KernelExports } from "./loader.js";

// The relaxed-SIMD build fuses the matmul's multiply-add (one rounding instead of two); it must
// agree with the plain SIMD build within float32 tolerance on every shape.
const W = globalThis as unknown as {
  WebAssembly: {
    Module: new (b: Uint8Array) => object;
    Instance: new (m: object, i: object) => { exports: KernelExports };
  };
};

function instantiate(file: string, memory: object): KernelExports {
  return new W.WebAssembly.Instance(new W.WebAssembly.Module(readFileSync(file)), { env: { memory } }).exports;
}

describe("relaxed-SIMD kernels", () => {
  kernelsModule(); // sets the engine flag where it is needed
  const plainFile = findKernelsWasm()!;
  const relaxedFile = plainFile.replace(/kernels\.wasm$/, "kernels-relaxed.wasm");

  // Elsewhere the comparison below is skipped where the engine refuses relaxed SIMD; in CI
  // (Node 20, flag set from inside the process) a skip would hide a broken build, so it fails.
  it.runIf(process.env.CI && process.env.THREADGRAD_RELAXED_SIMD !== "0")("are in use in CI", () => {
    expect(
      usesRelaxedSimd(),
      `CI: the relaxed-SIMD kernels are not in use (${relaxedFile} missing or refused by the engine)`,
    ).toBe(true);
  });

  it.runIf(usesRelaxedSimd())(
    "match the plain SIMD build's matmul within float32 rounding, all shapes and transposes",
    () => {
      const memory = newSharedMemory(256);
      const plain = instantiate(plainFile, memory),
        relaxed = instantiate(relaxedFile, memory);
      const f32 = new Float32Array(memory.buffer);
      const uniform = mulberry32(7);
      const rand = () => uniform() - 0.5;
      for (const [m, k, n] of [
        [1, 1, 1],
        [3, 5, 7],
        [4, 8, 8],
        [17, 33, 9],
        [64, 100, 33],
        [128, 256, 10],
      ] as const) {
        for (const ta of [0, 1])
          for (const tb of [0, 1]) {
            const a = 64,
              b = a + m * k * 4 + 64,
              c1 = b + k * n * 4 + 64,
              c2 = c1 + m * n * 4 + 64,
              pack = c2 + m * n * 4 + 64;
            for (let i = 0; i < m * k; i++) f32[(a >> 2) + i] = rand();
            for (let i = 0; i < k * n; i++) f32[(b >> 2) + i] = rand();
            plain.matmul(a, b, c1, m, k, n, ta, tb, pack);
            relaxed.matmul(a, b, c2, m, k, n, ta, tb, pack);
            for (let i = 0; i < m * n; i++) {
              // entries are sums of k products of values in [-0.5, 0.5): bound the rounding by k·2⁻²²
              expect(Math.abs(f32[(c1 >> 2) + i]! - f32[(c2 >> 2) + i]!)).toBeLessThanOrEqual(k * 2 ** -22 + 1e-7);
            }
          }
      }
    },
  );

  it("are skipped with THREADGRAD_RELAXED_SIMD=0 and used by default where the engine takes them", () => {
    const dist = new URL("../../../dist/index.js", import.meta.url).href;
    const probe = (env: Record<string, string>) =>
      spawnSync(
        process.execPath,
        [
          "--input-type=module",
          "-e",
          `const m = await import(${JSON.stringify(dist)}); console.log(m.usesRelaxedSimd())`,
        ],
        {
          env: { ...process.env, ...env },
          encoding: "utf8",
        },
      ).stdout.trim();
    expect(probe({ THREADGRAD_RELAXED_SIMD: "0" })).toBe("false");
    expect(probe({})).toBe(String(usesRelaxedSimd()));
  });
});
