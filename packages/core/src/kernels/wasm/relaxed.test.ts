import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { mulberry32 } from "../../tensor/random.js";
import { findKernelsWasm, kernelsModule, newSharedMemory, usesRelaxedSimd, type KernelExports } from "./loader.js";

// Both WebAssembly builds against a float64 reference. The relaxed-SIMD build fuses the matmul's
// multiply-add (one rounding instead of two), so it cannot match the plain build bit for bit; each
// must stay within the error bound of a k-term float32 dot product, whatever its summation order.
const W = globalThis as unknown as {
  WebAssembly: {
    Module: new (b: Uint8Array) => object;
    Instance: new (m: object, i: object) => { exports: KernelExports };
  };
};

function instantiate(file: string, memory: object): KernelExports {
  return new W.WebAssembly.Instance(new W.WebAssembly.Module(readFileSync(file)), { env: { memory } }).exports;
}

/**
 * op(A)·op(B) in float64, with A stored k×m when transposed and B stored n×k, and for each entry
 * Σ|a·b|, the scale of its rounding error.
 */
function reference(a: Float32Array, b: Float32Array, m: number, k: number, n: number, ta: number, tb: number) {
  const c = new Float64Array(m * n),
    scale = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let sum = 0,
        abs = 0;
      for (let p = 0; p < k; p++) {
        const product = (ta ? a[p * m + i]! : a[i * k + p]!) * (tb ? b[j * k + p]! : b[p * n + j]!);
        sum += product;
        abs += Math.abs(product);
      }
      c[i * n + j] = sum;
      scale[i * n + j] = abs;
    }
  return { c, scale };
}

// Each of the k products and k - 1 additions rounds once at most (u = 2⁻²⁴), in any order:
// |computed - exact| <= γ_k · Σ|a·b| with γ_k = k·u / (1 - k·u) (Higham, Accuracy and Stability, §3.1).
const gamma = (k: number) => (k * 2 ** -24) / (1 - k * 2 ** -24);

const SHAPES = [
  [1, 1, 1],
  [3, 5, 7],
  [4, 8, 8],
  [17, 33, 9],
  [64, 100, 33],
  [128, 256, 10],
  [9, 700, 5],
] as const;

describe("WebAssembly matmul builds", () => {
  kernelsModule(); // sets the engine flag where it is needed
  const plainFile = findKernelsWasm()!;
  const relaxedFile = plainFile.replace(/kernels\.wasm$/, "kernels-relaxed.wasm");

  // Elsewhere the relaxed build's comparison is skipped where the engine refuses relaxed SIMD; in CI
  // (Node 20, flag set from inside the process) a skip would hide a broken build, so it fails.
  it.runIf(process.env.CI && process.env.THREADGRAD_RELAXED_SIMD !== "0")("are in use in CI", () => {
    expect(
      usesRelaxedSimd(),
      `CI: the relaxed-SIMD kernels are not in use (${relaxedFile} missing or refused by the engine)`,
    ).toBe(true);
  });

  const builds = [
    ["plain SIMD", plainFile, true],
    ["relaxed SIMD", relaxedFile, usesRelaxedSimd()], // where this engine takes it (checked below)
  ] as const;
  for (const [name, file, isUsable] of builds)
    it.runIf(isUsable)(`${name}: every shape and transpose within γ_k·Σ|a·b| of a float64 reference`, () => {
      const memory = newSharedMemory(256);
      const kernels = instantiate(file, memory);
      const f32 = new Float32Array(memory.buffer);
      const uniform = mulberry32(7);
      const rand = () => uniform() - 0.5;
      for (const [m, k, n] of SHAPES)
        for (const ta of [0, 1])
          for (const tb of [0, 1]) {
            const a = 64,
              b = a + m * k * 4 + 64,
              c = b + k * n * 4 + 64,
              pack = c + m * n * 4 + 64;
            const aData = f32.subarray(a >> 2, (a >> 2) + m * k).map(rand),
              bData = f32.subarray(b >> 2, (b >> 2) + k * n).map(rand);
            f32.set(aData, a >> 2);
            f32.set(bData, b >> 2);
            kernels.matmul(a, b, c, m, k, n, ta, tb, pack);
            const want = reference(aData, bData, m, k, n, ta, tb);
            for (let i = 0; i < m * n; i++) {
              const error = Math.abs(f32[(c >> 2) + i]! - want.c[i]!);
              expect(error, `${m}×${k}×${n} ta=${ta} tb=${tb} entry ${i}`).toBeLessThanOrEqual(
                gamma(k) * want.scale[i]!,
              );
            }
          }
    });

  it("the relaxed build is skipped with THREADGRAD_RELAXED_SIMD=0, else used where the engine validates it", () => {
    const run = (args: string[], code: string, env: Record<string, string> = {}) =>
      spawnSync(process.execPath, [...args, "--input-type=module", "-e", code], {
        env: { ...process.env, ...env },
        encoding: "utf8",
      }).stdout.trim();
    const dist = JSON.stringify(new URL("../../../dist/index.js", import.meta.url).href);
    const probe = (env: Record<string, string>) =>
      run([], `const m = await import(${dist}); console.log(m.usesRelaxedSimd())`, env);
    // The engine's own answer, asked without threadgrad: validate the build in a fresh process,
    // as is and with V8's flag on the command line (Node 20 ships relaxed SIMD behind it; a Node
    // that no longer knows the flag refuses to start, which prints nothing).
    const bytes = `(await import("node:fs")).readFileSync(${JSON.stringify(relaxedFile)})`;
    const validate = `console.log(WebAssembly.validate(${bytes}))`;
    const isAccepted = run([], validate) === "true" || run(["--experimental-wasm-relaxed-simd"], validate) === "true";
    expect(probe({ THREADGRAD_RELAXED_SIMD: "0" })).toBe("false");
    expect(probe({})).toBe(String(isAccepted));
  });
});
