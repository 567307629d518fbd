import { Adagrad, adagradSpec, type AdagradOptions } from "./adagrad.js";
import { Adam, AdamW, adamSpec, adamwSpec, type AdamOptions } from "./adam.js";
import type { Optimizer, ParamGroupInput } from "./optimizer.js";
import { RMSprop, rmspropSpec, type RmspropOptions } from "./rmsprop.js";
import { SGD, sgdSpec, type SgdOptions } from "./sgd.js";
import { resolveOptions, type OptimizerSpec } from "./spec.js";
import type { FlatStepArgs, OptimizerName, ParamLike, StateBufferSpec } from "./types.js";

/** The options type of each optimizer name. */
export interface OptionsByName {
  adam: AdamOptions;
  adamw: AdamOptions;
  sgd: SgdOptions;
  rmsprop: RmspropOptions;
  adagrad: AdagradOptions;
}

const SPECS: { [N in OptimizerName]: OptimizerSpec<OptionsByName[N]> } = {
  adam: adamSpec,
  adamw: adamwSpec,
  sgd: sgdSpec,
  rmsprop: rmspropSpec,
  adagrad: adagradSpec,
};

function specOf<N extends OptimizerName>(name: N): OptimizerSpec<OptionsByName[N]> {
  const spec = SPECS[name] as OptimizerSpec<OptionsByName[N]> | undefined;
  if (spec === undefined || !Object.hasOwn(SPECS, name)) {
    throw new Error(`createOptimizer: unknown optimizer "${String(name)}" (expected ${Object.keys(SPECS).join(", ")})`);
  }
  return spec;
}

/**
 * Builds an optimizer by name, for configs and the CLI.
 * @example const opt = createOptimizer("adamw", params, { lr: 3e-4 });
 */
export function createOptimizer<N extends OptimizerName>(
  name: N,
  params: ParamLike[] | ParamGroupInput<OptionsByName[N]>[],
  options: Partial<OptionsByName[N]> = {},
): Optimizer<OptionsByName[N]> {
  specOf(name);
  const make = { adam: Adam, adamw: AdamW, sgd: SGD, rmsprop: RMSprop, adagrad: Adagrad }[name];
  return new (make as unknown as new (p: typeof params, o: typeof options) => Optimizer<OptionsByName[N]>)(
    params,
    options,
  );
}

/** Options with defaults filled in and checked; resolve once and reuse it for every `flatStep`. */
export function resolveFlatOptions<N extends OptimizerName>(
  name: N,
  options: Partial<OptionsByName[N]> = {},
): OptionsByName[N] {
  const spec = specOf(name);
  return resolveOptions(spec, spec.defaults, options);
}

/**
 * The state buffers `flatStep` expects for these options, in order, with their starting value; the
 * trainer allocates each as a shared array as long as the flat parameter buffer.
 * @example stateBuffers("adam", { amsgrad: true }).map((b) => b.name) // ["expAvg", "expAvgSq", "maxExpAvgSq"]
 */
export function stateBuffers<N extends OptimizerName>(
  name: N,
  options: Partial<OptionsByName[N]> = {},
): StateBufferSpec[] {
  return specOf(name).stateBuffers(resolveFlatOptions(name, options));
}

/**
 * Updates `params[start, end)` in place with the same arithmetic as the optimizer classes (which
 * call it on whole parameters). `args.step` is 1-based; `args.lr` overrides `options.lr`.
 * Slices are independent, so workers may each update their own range concurrently.
 * @example flatStep("adam", opts, { params, grads, state: [m, v], start, end, step: 1, lr: 1e-3 })
 */
export function flatStep<N extends OptimizerName>(
  name: N,
  options: Partial<OptionsByName[N]>,
  args: FlatStepArgs,
): void {
  const spec = specOf(name);
  const resolved = resolveOptions(spec, spec.defaults, options);
  const expected = spec.stateBuffers(resolved);
  const { params, grads, state, start, end, step } = args;
  if (state.length !== expected.length) {
    throw new Error(
      `flatStep: ${name} expects ${expected.length} state arrays ` +
        `(${expected.map((b) => b.name).join(", ")}), got ${state.length}`,
    );
  }
  if (!(Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start <= end && end <= params.length)) {
    throw new Error(`flatStep: range [${start}, ${end}) is not inside params of length ${params.length}`);
  }
  if (grads.length < end || state.some((s) => s.length < end)) {
    throw new Error(`flatStep: grads and state arrays must cover [${start}, ${end})`);
  }
  if (!(Number.isInteger(step) && step >= 1)) throw new Error(`flatStep: step must be an integer >= 1, got ${step}`);
  if (args.lr !== undefined && !(args.lr >= 0)) throw new Error(`flatStep: lr must be >= 0, got ${args.lr}`);
  spec.update(resolved, args);
}
