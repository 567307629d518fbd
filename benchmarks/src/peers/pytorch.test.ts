import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { PEER_SCRIPT, PYTHON, parsePeerRows, peerEnv, torchSkipReason, writeMlpInputs } from "./pytorch.js";

const dir = mkdtempSync(join(tmpdir(), "threadgrad-peer-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ok = { status: 0, stdout: "1.13.0\n", stderr: "", error: undefined, signal: null };

describe("whether the PyTorch peer runs", () => {
  it("runs when torch imports", () => {
    expect(torchSkipReason(ok)).toBeNull();
  });

  it("is skipped with the import error's last line when torch is missing", () => {
    const stderr =
      'Traceback (most recent call last):\n  File "<string>", line 1, in <module>\n' +
      "ModuleNotFoundError: No module named 'torch'\n";
    expect(torchSkipReason({ ...ok, status: 1, stdout: "", stderr })).toBe(
      `${PYTHON} -c "import torch" failed: ModuleNotFoundError: No module named 'torch'`,
    );
  });

  it("is skipped when python is not there, or dies without a word", () => {
    const absent = spawnSync(join(dir, "no-python"), ["-c", "import torch"], { encoding: "utf8" });
    expect(torchSkipReason(absent)).toMatch(new RegExp(`^${PYTHON} did not start \\(.*ENOENT`));
    expect(torchSkipReason({ ...ok, status: null, stdout: "", signal: "SIGILL" })).toBe(
      `${PYTHON} -c "import torch" failed: killed by SIGILL`,
    );
    expect(torchSkipReason({ ...ok, status: 3, stdout: "" })).toBe(`${PYTHON} -c "import torch" failed: exit status 3`);
  });

  it("forces OpenBLAS's AVX-512 kernels on CPUs that have them, and only there", () => {
    expect(peerEnv({ PATH: "/bin" }, "fpu sse2 avx2 avx512f avx512bw").OPENBLAS_CORETYPE).toBe("SkylakeX");
    expect(peerEnv({ OPENBLAS_CORETYPE: "Haswell" }, "avx2 avx512f").OPENBLAS_CORETYPE).toBe("SkylakeX");
    expect(peerEnv({ PATH: "/bin" }, "fpu sse2 avx2").OPENBLAS_CORETYPE).toBeUndefined();
    expect(peerEnv({ OPENBLAS_CORETYPE: "Haswell" }, "fpu sse2 avx2").OPENBLAS_CORETYPE).toBe("Haswell");
    expect(peerEnv({ PATH: "/bin" }, "avx512f").PATH).toBe("/bin");
  });

  it("the script the suite runs is there", () => {
    expect(existsSync(PEER_SCRIPT)).toBe(true);
    expect(readFileSync(PEER_SCRIPT, "utf8")).toContain("torch.set_flush_denormal(True)");
  });
});

describe("the peer's rows", () => {
  const row = {
    workload: "W6 cnn",
    config: "batch 128",
    impl: "pytorch 1.13, 2 threads",
    peer: true,
    threads: 2,
    unit: "samples/s",
    better: "higher",
    median: 900,
    min: 800,
    max: 1000,
    samples: 12,
    note: "n",
  };

  it("are the JSON lines of stdout, other lines left out", () => {
    const out = `loading\n${JSON.stringify(row)}\n\n${JSON.stringify({ ...row, threads: 1, median: 600 })}\n`;
    const rows = parsePeerRows(out);
    expect(rows.map((r) => [r.workload, r.config, r.threads, r.median, r.peer])).toEqual([
      ["W6 cnn", "batch 128", 2, 900, true],
      ["W6 cnn", "batch 128", 1, 600, true],
    ]);
  });

  it("are refused when a field is missing or the median is not a positive number", () => {
    const { unit: _, ...noUnit } = row;
    expect(() => parsePeerRows(JSON.stringify(noUnit))).toThrow("pytorch peer: a row has no field 'unit'");
    expect(() => parsePeerRows(JSON.stringify({ ...row, median: null }))).toThrow(
      "pytorch peer: field 'median' must be a positive number, got null",
    );
    expect(() => parsePeerRows("{ not json")).toThrow(SyntaxError);
  });
});

describe("the MLP inputs handed to the peer", () => {
  it("are the rows, labels and weights in little-endian binary, layer by layer, weight before bias", () => {
    const inputs = {
      sizes: [3, 2, 1],
      weights: [
        { w: Float32Array.of(1, 2, 3, 4, 5, 6), b: Float32Array.of(7, 8) },
        { w: Float32Array.of(9, 10), b: Float32Array.of(11) },
      ],
      x: Float32Array.of(0.5, -1, 2, 3, 4, 5).subarray(3),
      y: Int32Array.of(1),
      batch: 1,
      activation: "relu" as const,
      lr: 1e-3,
    };
    writeMlpInputs(dir, inputs);
    const f32 = (name: string) => [...new Float32Array(new Uint8Array(readFileSync(join(dir, name))).buffer)];
    expect(f32("mlp-x.f32")).toEqual([3, 4, 5]);
    expect([...new Int32Array(new Uint8Array(readFileSync(join(dir, "mlp-y.i32"))).buffer)]).toEqual([1]);
    expect(f32("mlp-weights.f32")).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  });
});
