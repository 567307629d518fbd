import { noGrad } from "../autograd/grad-mode.js";
import { fmtShape, shapeEq } from "../tensor/shape.js";
import { type Tensor, isTensor } from "../tensor/tensor.js";

const MODULE_BRAND = Symbol.for("threadgrad.Module");
const PARAM_BRAND = Symbol.for("threadgrad.Parameter");

/** Marks a tensor as a module parameter (a leaf that requires grad), as `nn.Parameter`. */
export function Parameter(t: Tensor, requiresGrad = true): Tensor {
  const p = t.isLeaf ? t : t.detach();
  p.requiresGrad = requiresGrad;
  (p as unknown as Record<symbol, boolean>)[PARAM_BRAND] = true;
  return p;
}

export const isParameter = (v: unknown): v is Tensor =>
  isTensor(v) && (v as unknown as Record<symbol, boolean>)[PARAM_BRAND] === true;
export const isModule = (v: unknown): v is Module =>
  typeof v === "object" && v !== null && (v as Record<symbol, unknown>)[MODULE_BRAND] === true;

export type StateDict = Record<string, Tensor>;

/**
 * Base class of layers and models. Parameters (tensors made with `Parameter`), child modules and
 * arrays of child modules assigned to fields are found automatically, in assignment order, as
 * PyTorch's attribute registration does; buffers are registered with `registerBuffer`.
 * ```ts
 * class Net extends Module {
 *   fc = new Linear(4, 2);
 *   forward(x: Tensor) { return this.fc.forward(x).relu(); }
 * }
 * ```
 */
export abstract class Module {
  readonly [MODULE_BRAND] = true;
  training = true;
  private readonly _buffers = new Set<string>();

  // Subclasses declare their own inputs (forward(x: Tensor), forward(ids, mask), ...) and outputs
  // (MultiheadAttention returns [output, weights]), and a model held as a plain Module can still be
  // called, as in PyTorch.
  // biome-ignore lint/suspicious/noExplicitAny: any subclass's forward must fit
  abstract forward(...inputs: any[]): any;

  /** Buffers are state that is saved and loaded but not trained (running statistics, masks). */
  registerBuffer(name: string, t: Tensor): void {
    this._buffers.add(name);
    (this as unknown as Record<string, Tensor>)[name] = t;
  }

  *namedChildren(): Generator<[string, Module]> {
    for (const [key, value] of Object.entries(this)) {
      if (isModule(value)) yield [key, value];
      else if (Array.isArray(value)) {
        for (const [i, v] of value.entries()) if (isModule(v)) yield [`${key}.${i}`, v];
      }
    }
  }

  children(): Module[] {
    return [...this.namedChildren()].map(([, m]) => m);
  }

  *namedModules(prefix = ""): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [name, child] of this.namedChildren()) yield* child.namedModules(prefix ? `${prefix}.${name}` : name);
  }

  *namedParameters(prefix = ""): Generator<[string, Tensor]> {
    const seen = new Set<Tensor>();
    for (const [modName, m] of this.namedModules(prefix)) {
      for (const [key, value] of Object.entries(m)) {
        if (isParameter(value) && !seen.has(value)) {
          seen.add(value);
          yield [modName ? `${modName}.${key}` : key, value];
        }
      }
    }
  }

  parameters(): Tensor[] {
    return [...this.namedParameters()].map(([, p]) => p);
  }

  *namedBuffers(): Generator<[string, Tensor]> {
    for (const [modName, m] of this.namedModules()) {
      // Read the field, not the tensor first registered: `this.runningMean = next` replaces a
      // buffer, as assignment does in PyTorch.
      for (const key of m._buffers.keys()) {
        const t = (m as unknown as Record<string, unknown>)[key];
        if (isTensor(t)) yield [modName ? `${modName}.${key}` : key, t];
      }
    }
  }

  /** Sets training mode (dropout active) on this module and every child. */
  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Clears gradients: drops them (`setToNone`, the default) or zeroes them; bound buffers are always zeroed. */
  zeroGrad(setToNone = true): void {
    for (const p of this.parameters()) {
      if (p.grad === null) continue;
      if (setToNone || p.gradIsBound) p.grad = null;
      else p.grad.data.fill(0);
    }
  }

  /** Parameters and buffers by dotted name; the tensors share storage with the module. */
  stateDict(): StateDict {
    const out: StateDict = {};
    for (const [k, p] of this.namedParameters()) out[k] = p.detach();
    for (const [k, b] of this.namedBuffers()) out[k] = b.detach();
    return out;
  }

  /** Copies values in; with `strict` every key must match and every shape must agree. */
  loadStateDict(state: StateDict, strict = true): { missingKeys: string[]; unexpectedKeys: string[] } {
    const own = new Map<string, Tensor>([...this.namedParameters(), ...this.namedBuffers()]);
    const missingKeys = [...own.keys()].filter((k) => !(k in state));
    const unexpectedKeys = Object.keys(state).filter((k) => !own.has(k));
    const errors: string[] = [];
    if (strict && missingKeys.length)
      errors.push(`Missing key(s) in state dict: ${missingKeys.map((k) => `"${k}"`).join(", ")}.`);
    if (strict && unexpectedKeys.length)
      errors.push(`Unexpected key(s) in state dict: ${unexpectedKeys.map((k) => `"${k}"`).join(", ")}.`);
    for (const [k, t] of own) {
      const src = state[k];
      if (src !== undefined && !shapeEq(src.shape, t.shape)) {
        errors.push(
          `size mismatch for ${k}: copying a param with shape ${fmtShape(src.shape)} from the state dict, ` +
            `the shape in the current model is ${fmtShape(t.shape)}.`,
        );
      }
    }
    if (errors.length)
      throw new Error(
        `loadStateDict: error(s) in loading state dict for ${this.constructor.name}:\n\t${errors.join("\n\t")}`,
      );
    noGrad(() => {
      for (const [k, t] of own) if (state[k] !== undefined) t.copy_(state[k]);
    });
    return { missingKeys, unexpectedKeys };
  }

  /** One-line description of this module's own settings, shown by toString. */
  extraRepr(): string {
    return "";
  }

  toString(): string {
    // As PyTorch's Module.__repr__: settings inline when there are no children, else one line
    // each for the settings and every child, indented two spaces per level.
    const extra = this.extraRepr();
    const children = [...this.namedChildren()].map(([name, m]) => `(${name}): ${m.toString()}`);
    if (children.length === 0) return `${this.constructor.name}(${extra})`;
    const lines = [...(extra ? extra.split("\n") : []), ...children].map((l) => `  ${l.split("\n").join("\n  ")}`);
    return `${this.constructor.name}(\n${lines.join("\n")}\n)`;
  }
}
