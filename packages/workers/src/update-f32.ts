import {
  type WasmKernels,
  adagradUpdateF32,
  adamScalarsF32,
  adamUpdateF32,
  rmspropUpdateF32,
  sgdUpdateF32,
} from "@threadgrad/core";
import type { FlatStepArgs } from "@threadgrad/optim";
import type { SharedArena } from "./arena.js";
import type { SegmentUpdate } from "./wasm-arena.js";

// The trainer updates float32 parameters in float32, as PyTorch does: core's adamUpdateF32,
// sgdUpdateF32, rmspropUpdateF32 and adagradUpdateF32, every operation rounded to float32, four
// lanes at a time in WebAssembly and with the same bits in JavaScript. @threadgrad/optim's flat
// updates (float64 arithmetic, one rounding when storing) remain for float64 parameters outside it.

/** Optimizers the trainer updates in float32: all of @threadgrad/optim's. */
export const FLOAT32_OPTIMIZERS: readonly string[] = ["adam", "adamw", "sgd", "rmsprop", "adagrad"];

interface ResolvedOptions {
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
  amsgrad: boolean;
  maximize: boolean;
  momentum: number;
  dampening: number;
  nesterov: boolean;
  alpha: number;
  centered: boolean;
  lrDecay: number;
}

/**
 * One float32 update of params[start, end) for any of FLOAT32_OPTIMIZERS with options as
 * resolveFlatOptions gives them and state as stateBuffers lists it (flatStep's arguments). The SIMD
 * kernels run when `kernels` is given and every array lies in their memory, else the JavaScript
 * twins: the same bits.
 * @example float32Step(null, "adam", resolveFlatOptions("adam"), { params, grads, state: [m, v], start, end, step: 1 })
 */
export function float32Step(
  kernels: WasmKernels | null,
  name: string,
  options: Record<string, unknown>,
  args: FlatStepArgs,
): void {
  const o = options as unknown as ResolvedOptions;
  const { params, grads, state, start, end, step } = args;
  const lr = args.lr ?? o.lr;
  if (
    !(params instanceof Float32Array && grads instanceof Float32Array && state.every((s) => s instanceof Float32Array))
  )
    throw new TypeError(`float32Step: ${name} needs float32 params, gradients and state`);
  const f32 = state as Float32Array[];
  if (name === "adam" || name === "adamw") {
    const [beta1, beta2] = o.betas;
    const decoupledWeightDecay = name === "adamw";
    const s = adamScalarsF32(step, { ...o, lr, beta1, beta2, decoupledWeightDecay });
    adamUpdateF32(kernels, params, grads, f32[0]!, f32[1]!, o.amsgrad ? f32[2]! : null, start, end, s);
  } else if (name === "sgd") {
    const buf = o.momentum !== 0 ? f32[0]! : null;
    sgdUpdateF32(kernels, params, grads, buf, start, end, step === 1, { ...o, lr });
  } else if (name === "rmsprop") {
    // State order of optim's rmspropState: squareAvg, then momentumBuffer (momentum > 0), then gradAvg (centered).
    const hasBuf = o.momentum > 0;
    const gradAvg = o.centered ? f32[hasBuf ? 2 : 1]! : null;
    rmspropUpdateF32(kernels, params, grads, f32[0]!, gradAvg, hasBuf ? f32[1]! : null, start, end, { ...o, lr });
  } else if (name === "adagrad") {
    adagradUpdateF32(kernels, params, grads, f32[0]!, start, end, step, { ...o, lr });
  } else {
    throw new Error(`float32Step: no float32 update for ${name} (${FLOAT32_OPTIMIZERS.join(", ")} have one)`);
  }
}

/**
 * The trainer's update of a parameter segment: float32Step on the arena (the reduced gradient is
 * slice 0's segment, the state the arena's buffers), with the kernels when the arena lies in their
 * memory. Null for an optimizer without a float32 update (none today): the trainer would run
 * optim's flatStep.
 * @example const update = float32Update(kernels, arena, init.optimizer); update?.(start, end, t, lr);
 */
export function float32Update(
  kernels: WasmKernels | null,
  arena: SharedArena,
  opt: { name: string; options: Record<string, unknown> },
): SegmentUpdate | null {
  if (!FLOAT32_OPTIMIZERS.includes(opt.name)) return null;
  const params = arena.params,
    grads = arena.grads(0);
  const state = Array.from({ length: arena.layout.stateBuffers }, (_, j) => arena.state(j));
  return (start, end, step, lr) =>
    float32Step(kernels, opt.name, opt.options, { params, grads, state, start, end, step, lr });
}
