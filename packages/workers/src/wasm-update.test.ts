import { describe, expect, it } from "vitest";
import { Generator, createWasmKernels, isWasmSimdSupported } from "@threadgrad/core";
import { type OptimizerName, flatStep, resolveFlatOptions, stateBuffers } from "@threadgrad/optim";
import { SharedArena, planArena } from "./arena.js";
import { segmentUpdate, wasmUpdate } from "./wasm-arena.js";

// The trainer updates parameters with the SIMD kernels when the optimizer allows it and with
// optim's JavaScript flat update otherwise: both must give the same bits, step after step.
const CASES: [OptimizerName, Record<string, unknown>][] = [
  ["adam", { lr: 1e-2 }],
  ["adam", { lr: 1e-2, weightDecay: 0.1, betas: [0.8, 0.99], eps: 1e-6 }],
  ["adam", { lr: 1e-2, maximize: true }],
  ["adamw", { lr: 1e-2 }],
  ["adamw", { lr: 3e-2, weightDecay: 0.3, maximize: true }],
  ["sgd", { lr: 0.1 }],
  ["sgd", { lr: 0.1, momentum: 0.9 }],
  ["sgd", { lr: 0.1, momentum: 0.9, dampening: 0.3, weightDecay: 0.01 }],
  ["sgd", { lr: 0.05, momentum: 0.8, nesterov: true, maximize: true }],
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

// Outside CI a runtime without WebAssembly SIMD skips the comparison; in CI that skip would hide
// the SIMD path entirely, so its absence fails here instead.
it.runIf(process.env.CI)("CI has WebAssembly SIMD and shared memory for the optimizer kernels", () => {
  expect(isWasmSimdSupported(), "CI: this runtime lacks WebAssembly SIMD or shared memory").toBe(true);
});

describe.runIf(isWasmSimdSupported())("wasm optimizer updates on the arena", () => {
  it.each(CASES)("%s %j gives optim's flat-update bits over 6 steps, on a segment only", (name, raw) => {
    const options = resolveFlatOptions(name, raw as never) as unknown as Record<string, unknown>;
    const k = createWasmKernels({ heapBytes: 1 << 20, scratchBytes: 1 << 16 });
    const wasm = arenaFor(name, raw, k);
    const js = arenaFor(name, raw, null);
    const update = wasmUpdate(k, wasm, { name, options });
    expect(update).not.toBeNull();
    const g = new Generator(7);
    const p0 = new Float32Array(js.params.length).map(() => g.normal());
    p0[3] = 1e-39; // subnormal parameter: weight decay reads it
    wasm.params.set(p0);
    js.params.set(p0);
    const n = wasm.layout.paddedLength,
      start = 3,
      end = n - 5;
    for (let t = 1; t <= 6; t++) {
      const grad = new Float32Array(n).map(() => g.normal() * 0.1);
      grad[4] = 1e-30; // its square underflows: the second moment is flushed
      grad[5] = 2e-39;
      wasm.grads(0).set(grad);
      js.grads(0).set(grad);
      const lr = (options.lr as number) * (1 - 0.1 * t); // a schedule: AdamW's decay follows lr
      update!(start, end, t, lr);
      flatStep(name, options as never, {
        params: js.params,
        grads: js.grads(0),
        state: Array.from({ length: js.layout.stateBuffers }, (_, j) => js.state(j)),
        start,
        end,
        step: t,
        lr,
      });
    }
    expect(bits(wasm.params)).toEqual(bits(js.params));
    for (let j = 0; j < js.layout.stateBuffers; j++) expect(bits(wasm.state(j))).toEqual(bits(js.state(j)));
    expect(wasm.params[0]).toBe(p0[0]); // outside the segment: untouched
    expect(wasm.params[start]).not.toBe(p0[start]);
  });

  it("Adam with amsgrad and the other optimizers have no kernel: the trainer uses the JavaScript update", () => {
    const k = createWasmKernels({ heapBytes: 1 << 20, scratchBytes: 1 << 16 });
    for (const [name, raw] of [
      ["adam", { amsgrad: true }],
      ["rmsprop", {}],
      ["adagrad", {}],
    ] as const) {
      const options = resolveFlatOptions(name, raw as never) as unknown as Record<string, unknown>;
      expect(wasmUpdate(k, arenaFor(name, raw, k), { name, options })).toBeNull();
    }
  });
});

describe("segment updates without the wasm kernels (core's JavaScript loops)", () => {
  it.each(CASES)("%s %j gives optim's flat-update bits over 6 steps, on a segment only", (name, raw) => {
    const options = resolveFlatOptions(name, raw as never) as unknown as Record<string, unknown>;
    const ours = arenaFor(name, raw, null);
    const js = arenaFor(name, raw, null);
    const update = segmentUpdate(ours, { name, options }, null);
    expect(update).not.toBeNull();
    const g = new Generator(11);
    const p0 = new Float32Array(js.params.length).map(() => g.normal());
    p0[3] = 1e-39;
    ours.params.set(p0);
    js.params.set(p0);
    const n = ours.layout.paddedLength,
      start = 3,
      end = n - 5;
    for (let t = 1; t <= 6; t++) {
      const grad = new Float32Array(n).map(() => g.normal() * 0.1);
      grad[4] = 1e-30;
      ours.grads(0).set(grad);
      js.grads(0).set(grad);
      const lr = (options.lr as number) * (1 - 0.1 * t);
      update!(start, end, t, lr);
      flatStep(name, options as never, {
        params: js.params,
        grads: js.grads(0),
        state: Array.from({ length: js.layout.stateBuffers }, (_, j) => js.state(j)),
        start,
        end,
        step: t,
        lr,
      });
    }
    expect(bits(ours.params)).toEqual(bits(js.params));
    for (let j = 0; j < js.layout.stateBuffers; j++) expect(bits(ours.state(j))).toEqual(bits(js.state(j)));
    expect(ours.params[end]).toBe(p0[end]); // outside the segment: untouched
  });
});
