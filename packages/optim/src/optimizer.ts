import type { FloatArray, GradLike, ParamLike } from "./types.js";
import { cloneOptions, resolveOptions, type OptimizerSpec } from "./spec.js";

/** A parameter group: its parameters and its own copy of every option. */
export type ParamGroup<O extends object> = O & { params: ParamLike[] };
/** What the constructor and `addParamGroup` accept: options left out come from the defaults. */
export type ParamGroupInput<O extends object> = Partial<O> & { params: ParamLike[] };

/** Per-parameter state: the number of steps it took and its named buffers. */
export interface ParamState {
  step: number;
  buffers: Record<string, FloatArray>;
}

/** Serialized state: parameters are numbered across groups in order, as in PyTorch. */
export interface OptimizerStateDict<O extends object = object> {
  state: Record<number, { step: number; [buffer: string]: number | FloatArray }>;
  paramGroups: (O & { params: number[] })[];
}

const NO_GRADS =
  "step() found no gradients: no parameter of any group has .grad set. Gradients computed with " +
  "grad(...) are returned, not stored in .grad; pass them as step(grads) (one entry per parameter, in order).";

/** Base of all optimizers: parameter groups, lazily allocated state, state dicts. */
export class Optimizer<O extends object> {
  readonly paramGroups: ParamGroup<O>[] = [];
  readonly defaults: O;
  readonly state = new Map<ParamLike, ParamState>();

  constructor(
    protected readonly spec: OptimizerSpec<O>,
    params: ParamLike[] | ParamGroupInput<O>[],
    options: Partial<O> = {},
  ) {
    this.defaults = resolveOptions(spec, spec.defaults, options);
    if (params.length === 0) throw new Error(`${spec.owner}: got an empty parameter list`);
    const groups = isGroupList(params) ? params : [{ params } as ParamGroupInput<O>];
    for (const group of groups) this.addParamGroup(group);
  }

  /** Adds a group; options it leaves out take the optimizer's defaults. */
  addParamGroup(group: ParamGroupInput<O>): void {
    const { params, ...options } = group;
    if (!Array.isArray(params)) throw new Error(`${this.spec.owner}: a parameter group needs a params array`);
    const seen = new Set(this.paramGroups.flatMap((g) => g.params));
    params.forEach((p, i) => {
      if (!isFloatArray(p.data)) {
        throw new Error(
          `${this.spec.owner}: parameter ${i} holds ${p.data.constructor.name} values; ` +
            "only float32 and float64 parameters can be optimized",
        );
      }
    });
    for (const p of params) {
      if (seen.has(p)) throw new Error(`${this.spec.owner}: a parameter appears in more than one parameter group`);
      seen.add(p);
    }
    const resolved = resolveOptions(this.spec, this.defaults, options);
    this.paramGroups.push({ ...resolved, params: [...params] });
  }

  /**
   * Clears gradients. A gradient bound to a shared buffer (`p.gradIsBound`) is always zeroed in
   * place, never dropped: dropping it would detach the parameter from the memory the workers write
   * into.
   */
  zeroGrad({ setToNone = true }: { setToNone?: boolean } = {}): void {
    for (const p of this.allParams()) {
      // A bound gradient is zeroed by `grad = null` (core's Tensor does it lazily: the next backward
      // overwrites the buffer). Checked first: reading `.grad` would write the pending zeros.
      if (p.gradIsBound) {
        p.grad = null;
        continue;
      }
      if (p.grad === null) continue;
      if (setToNone) p.grad = null;
      else p.grad.data.fill(0);
    }
  }

  /**
   * One update. Without arguments it reads each parameter's `.grad`; `step(grads)` takes the list
   * `grad(...)` returns instead (one entry per parameter across groups, in order, null to skip).
   */
  step(grads?: readonly (GradLike | null)[]): void {
    const params = this.allParams();
    if (grads !== undefined) this.checkGrads(params, grads);
    else if (!params.some((p) => p.grad !== null)) throw new Error(`${this.spec.owner}: ${NO_GRADS}`);
    let k = 0;
    for (const group of this.paramGroups) {
      const specs = this.spec.stateBuffers(group);
      for (const p of group.params) {
        const g = grads !== undefined ? grads[k] : p.grad;
        k++;
        if (g === null || g === undefined) continue;
        if (g.data.length !== p.data.length) {
          throw new Error(
            `${this.spec.owner}: gradient ${k - 1} has ${g.data.length} elements, parameter has ${p.data.length}`,
          );
        }
        if (!isFloatArray(g.data))
          throw new Error(`${this.spec.owner}: gradient ${k - 1} holds ${g.data.constructor.name} values, not floats`);
        const data = p.data as FloatArray; // checked when the parameter was added
        const st = this.stateOf(p);
        const state = specs.map((b) => {
          const buffer = st.buffers[b.name] ?? newLike(data, b.init);
          st.buffers[b.name] = buffer;
          return buffer;
        });
        st.step += 1;
        this.spec.update(group, { params: data, grads: g.data, state, start: 0, end: data.length, step: st.step });
      }
    }
  }

  /** A deep copy of the state and the group options, with parameters replaced by their index. */
  stateDict(): OptimizerStateDict<O> {
    const state: OptimizerStateDict<O>["state"] = {};
    let index = 0;
    const paramGroups = this.paramGroups.map((group) => {
      const { params, ...options } = group;
      const ids = params.map((p) => {
        const st = this.state.get(p);
        if (st !== undefined) {
          const entry: OptimizerStateDict<O>["state"][number] = { step: st.step };
          for (const [name, b] of Object.entries(st.buffers)) entry[name] = b.slice();
          state[index] = entry;
        }
        return index++;
      });
      return { ...cloneOptions(options as unknown as O), params: ids };
    });
    return { state, paramGroups };
  }

  /**
   * Replaces group options and state with `sd`'s. Everything is checked before anything changes, so a
   * rejected state dict leaves the optimizer as it was.
   */
  loadStateDict(sd: OptimizerStateDict<O>): void {
    const owner = this.spec.owner;
    if (
      typeof sd !== "object" ||
      sd === null ||
      typeof sd.state !== "object" ||
      sd.state === null ||
      !Array.isArray(sd.paramGroups)
    ) {
      throw new Error(`${owner}: loadStateDict expects { state, paramGroups }`);
    }
    if (sd.paramGroups.length !== this.paramGroups.length) {
      throw new Error(
        `${owner}: state dict has ${sd.paramGroups.length} parameter groups, optimizer has ${this.paramGroups.length}`,
      );
    }
    const options = sd.paramGroups.map((saved, i) => {
      const { params, ...rest } = saved;
      const count = this.paramGroups[i]!.params.length; // the group counts matched above
      if (!Array.isArray(params) || params.length !== count) {
        throw new Error(
          `${owner}: parameter group ${i} has ${Array.isArray(params) ? params.length : "no"} parameters ` +
            `in the state dict, ${count} in the optimizer`,
        );
      }
      return resolveOptions(this.spec, this.defaults, rest);
    });
    const params = this.allParams();
    const state = new Map<ParamLike, ParamState>();
    for (const [key, entry] of Object.entries(sd.state)) {
      const index = Number(key);
      if (!Number.isInteger(index) || index < 0 || index >= params.length) {
        throw new Error(
          `${owner}: state dict has state for parameter ${key}, optimizer has ${params.length} parameters`,
        );
      }
      const p = params[index]!;
      state.set(p, this.checkEntry(index, p, entry));
    }
    options.forEach((o, i) => {
      Object.assign(this.paramGroups[i]!, o);
    });
    this.state.clear();
    for (const [p, st] of state) this.state.set(p, st);
  }

  private checkEntry(index: number, p: ParamLike, entry: OptimizerStateDict["state"][number]): ParamState {
    const owner = this.spec.owner;
    const { step, ...buffers } = entry ?? {};
    if (typeof step !== "number" || !Number.isInteger(step) || step < 0) {
      throw new Error(`${owner}: state of parameter ${index} needs an integer step >= 0, got ${String(step)}`);
    }
    const out: ParamState = { step, buffers: {} };
    for (const [name, b] of Object.entries(buffers)) {
      if (!this.spec.bufferNames.includes(name)) {
        throw new Error(
          `${owner}: state of parameter ${index} has unknown buffer "${name}" ` +
            `(expected ${this.spec.bufferNames.join(", ")})`,
        );
      }
      if (!(b instanceof Float32Array || b instanceof Float64Array)) {
        throw new Error(`${owner}: state of parameter ${index}: ${name} must be a Float32Array or Float64Array`);
      }
      if (b.length !== p.data.length) {
        throw new Error(
          `${owner}: state of parameter ${index}: ${name} has ${b.length} elements, parameter has ${p.data.length}`,
        );
      }
      // State takes the parameter's dtype, as PyTorch casts it on load.
      out.buffers[name] = p.data instanceof Float32Array ? Float32Array.from(b) : Float64Array.from(b);
    }
    return out;
  }

  private checkGrads(params: ParamLike[], grads: readonly (GradLike | null)[]): void {
    if (!Array.isArray(grads) || grads.length !== params.length) {
      throw new Error(
        `${this.spec.owner}: step(grads) got ${Array.isArray(grads) ? grads.length : "no"} gradients ` +
          `for ${params.length} parameters`,
      );
    }
    if (grads.every((g) => g === null || g === undefined)) {
      throw new Error(`${this.spec.owner}: step(grads) got only null gradients; nothing to update`);
    }
  }

  private stateOf(p: ParamLike): ParamState {
    let st = this.state.get(p);
    if (st === undefined) {
      st = { step: 0, buffers: {} };
      this.state.set(p, st);
    }
    return st;
  }

  private allParams(): ParamLike[] {
    return this.paramGroups.flatMap((g) => g.params);
  }
}

const isFloatArray = (a: unknown): a is FloatArray => a instanceof Float32Array || a instanceof Float64Array;

function isGroupList<O extends object>(params: ParamLike[] | ParamGroupInput<O>[]): params is ParamGroupInput<O>[] {
  return params.length > 0 && "params" in params[0]!;
}

function newLike(data: FloatArray, init: number): FloatArray {
  const out = data instanceof Float32Array ? new Float32Array(data.length) : new Float64Array(data.length);
  if (init !== 0) out.fill(init);
  return out;
}
