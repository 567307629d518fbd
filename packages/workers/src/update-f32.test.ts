import { describe, expect, it } from "vitest";
import { Generator, createWasmKernels, isWasmSimdSupported } from "@threadgrad/core";
import { type OptimizerName, flatStep, resolveFlatOptions, stateBuffers } from "@threadgrad/optim";
import { SharedArena, planArena } from "./arena.js";
import { float32Step, float32Update } from "./update-f32.js";

// The trainer updates every optimizer in float32: with the SIMD kernels when the arena lies in
// WebAssembly memory, with their JavaScript twins otherwise. Both must give the same bits step after
// step, so a run resumes bit for bit whichever backend the resuming machine has.
const CASES: [OptimizerName, Record<string, unknown>][] = [
  ["adam", { lr: 1e-2 }],
  ["adam", { lr: 1e-2, weightDecay: 0.1, betas: [0.8, 0.99], eps: 1e-6 }],
  ["adam", { lr: 1e-2, maximize: true, amsgrad: true }],
  ["adamw", { lr: 1e-2 }],
  ["adamw", { lr: 3e-2, weightDecay: 0.3, maximize: true, amsgrad: true }],
  ["sgd", { lr: 0.1 }],
  ["sgd", { lr: 0.1, momentum: 0.9 }],
  ["sgd", { lr: 0.1, momentum: 0.9, dampening: 0.3, weightDecay: 0.01 }],
  ["sgd", { lr: 0.05, momentum: 0.8, nesterov: true, maximize: true }],
  ["rmsprop", { lr: 1e-2 }],
  ["rmsprop", { lr: 1e-2, momentum: 0.9, centered: true, weightDecay: 0.01 }],
  ["rmsprop", { lr: 1e-2, centered: true, maximize: true }],
  ["adagrad", { lr: 1e-2 }],
  ["adagrad", { lr: 1e-2, lrDecay: 0.1, initialAccumulatorValue: 0.1, weightDecay: 0.05 }],
];

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
const SIZES = [37, 64, 5];

function arenaFor(
  name: OptimizerName,
  options: Record<string, unknown>,
  kernels: ReturnType<typeof createWasmKernels> | null,
) {
  const layout = planArena({ paramSizes: SIZES, ranks: 1, stateBuffers: stateBuffers(name, options as never).length });
  return kernels
    ? SharedArena.attach(kernels.buffer, layout, kernels.alloc(layout.byteLength, 64))
    : SharedArena.create(layout);
}

// Runs 6 steps of `update` (and of optim's float64 flat update on a third arena) on [start, end).
function run(name: OptimizerName, raw: Record<string, unknown>, withKernels: boolean) {
  const options = resolveFlatOptions(name, raw as never) as unknown as Record<string, unknown>;
  const k = withKernels ? createWasmKernels({ heapBytes: 1 << 20, scratchBytes: 1 << 16 }) : null;
  const [wasm, js, f64] = [arenaFor(name, raw, k), arenaFor(name, raw, null), arenaFor(name, raw, null)];
  const wasmStep = float32Update(k, wasm, { name, options });
  const jsStep = float32Update(null, js, { name, options });
  const g = new Generator(7);
  const p0 = new Float32Array(js.params.length).map(() => g.normal());
  p0[3] = 1e-39; // subnormal parameter: weight decay reads it
  for (const a of [wasm, js, f64]) {
    a.params.set(p0);
    stateBuffers(name, raw as never).forEach(({ init }, j) => {
      a.state(j).fill(init);
    });
  }
  const n = wasm.layout.paddedLength,
    start = 3,
    end = n - 5;
  for (let t = 1; t <= 6; t++) {
    const grad = new Float32Array(n).map(() => g.normal() * 0.1);
    grad[4] = 1e-30; // its square underflows: the second moment is flushed
    grad[5] = 2e-39;
    for (const a of [wasm, js, f64]) a.grads(0).set(grad);
    const lr = (options.lr as number) * (1 - 0.1 * t); // a schedule: AdamW's decay follows lr
    wasmStep!(start, end, t, lr);
    jsStep!(start, end, t, lr);
    const state = Array.from({ length: f64.layout.stateBuffers }, (_, j) => f64.state(j));
    flatStep(name, options as never, { params: f64.params, grads: f64.grads(0), state, start, end, step: t, lr });
  }
  return { wasm, js, f64, p0, start };
}

// Outside CI a runtime without WebAssembly SIMD runs both sides in JavaScript; in CI that would
// hide the SIMD path entirely, so its absence fails here instead.
it.runIf(process.env.CI)("CI has WebAssembly SIMD and shared memory for the optimizer kernels", () => {
  expect(isWasmSimdSupported(), "CI: this runtime lacks WebAssembly SIMD or shared memory").toBe(true);
});

describe("the trainer's float32 update", () => {
  it.each(CASES)("%s %j: the same bits with and without WebAssembly, over 6 steps, on a segment only", (name, raw) => {
    const { wasm, js, p0, start } = run(name, raw, isWasmSimdSupported());
    expect(bits(wasm.params)).toEqual(bits(js.params));
    for (let j = 0; j < js.layout.stateBuffers; j++) expect(bits(wasm.state(j))).toEqual(bits(js.state(j)));
    expect(wasm.params[0]).toBe(p0[0]); // outside the segment: untouched
    expect(wasm.params[start]).not.toBe(p0[start]);
  });

  it.each(CASES)("%s %j: within float32 rounding of optim's float64 flat update, and not its bits", (name, raw) => {
    const { js, f64 } = run(name, raw, false);
    let differing = 0;
    for (let i = 0; i < js.params.length; i++) {
      const [a, b] = [js.params[i]!, f64.params[i]!];
      // optim's float64 centered RMSprop gives NaN for the 1e-30 gradient: it flushes sq to 0 but
      // subtracts the unflushed ga² (1e-64); in float32 ga² underflows to 0 as well.
      if (Number.isNaN(b) && name === "rmsprop") continue;
      expect(Math.abs(a - b), `params[${i}]`).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(b)));
      if (a !== b) differing++;
    }
    // Rounding every operation to float32 changes some last bits: the paths really differ.
    expect(differing).toBeGreaterThan(0);
  });

  it("float32Step names an optimizer it has no update for, and float32Update gives null for it", () => {
    const arena = arenaFor("sgd", {}, null);
    const args = { params: arena.params, grads: arena.grads(0), state: [], start: 0, end: 4, step: 1 };
    expect(() => float32Step(null, "lion", {}, args)).toThrow(
      "float32Step: no float32 update for lion (adam, adamw, sgd, rmsprop, adagrad have one)",
    );
    expect(float32Update(null, arena, { name: "lion", options: {} })).toBeNull();
  });

  it("float32Step refuses float64 arrays: they take optim's flatStep", () => {
    const f64 = new Float64Array(4);
    const args = { params: f64, grads: f64, state: [], start: 0, end: 4, step: 1 };
    expect(() => float32Step(null, "sgd", resolveFlatOptions("sgd") as never, args)).toThrow(
      "float32Step: sgd needs float32 params, gradients and state",
    );
  });
});
