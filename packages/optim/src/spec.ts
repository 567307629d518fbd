import type { FlatStepArgs, StateBufferSpec } from "./types.js";
import { checkKnownKeys } from "./validate.js";

/**
 * Everything that makes one optimizer: its defaults, checks, state layout and flat update. The object
 * API (`Optimizer`) and the sharded path (`flatStep`) both run `update`, so they cannot drift apart.
 */
export interface OptimizerSpec<O extends object> {
  /** Prefix of every error message, e.g. "Adam". */
  owner: string;
  defaults: Readonly<O>;
  /** Throws on the first bad value. */
  validate(options: O): void;
  /** The per-parameter state buffers these options need, in the order `update` takes them. */
  stateBuffers(options: O): StateBufferSpec[];
  /** Every buffer name any options could need; `loadStateDict` rejects others. */
  bufferNames: readonly string[];
  update(options: O, args: FlatStepArgs): void;
}

/** Copies arrays among the options (betas) so a group never aliases the caller's or a state dict's. */
export function cloneOptions<O extends object>(options: O): O {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(options)) out[k] = Array.isArray(v) ? [...v] : v;
  return out as O;
}

/** Defaults overlaid with `input`, checked: unknown keys first, then each value. */
export function resolveOptions<O extends object>(spec: OptimizerSpec<O>, base: Readonly<O>, input: object): O {
  checkKnownKeys(spec.owner, input, Object.keys(spec.defaults));
  const options = cloneOptions({ ...base, ...input } as O);
  spec.validate(options);
  return options;
}
