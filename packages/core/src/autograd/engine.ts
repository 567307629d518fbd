import { fmtShape, shapeEq } from "../tensor/shape.js";
import { Tensor, isTensor } from "../tensor/tensor.js";
import { add, to } from "../ops/elementwise.js";
import { isFloat } from "../tensor/dtype.js";
import { enableGrad, noGrad } from "./grad-mode.js";

export interface GradOptions {
  /** Gradients of the outputs ("vectors" of the vector-Jacobian product); needed for non-scalar outputs. */
  gradOutputs?: Tensor | (Tensor | null)[] | null;
  /** Keep the graph so that it can be traversed again. Defaults to `createGraph`. */
  retainGraph?: boolean;
  /** Record the backward pass itself, so the returned gradients can be differentiated again. */
  createGraph?: boolean;
  /** Return null for an input the outputs do not depend on, instead of throwing. */
  allowUnused?: boolean;
}

export interface BackwardOptions {
  retainGraph?: boolean;
  createGraph?: boolean;
  /** Accumulate only into these tensors' `.grad`. */
  inputs?: Tensor[];
}

const list = <T>(x: T | T[]): T[] => (Array.isArray(x) ? x : [x]);

function seedGradients(outputs: Tensor[], given: (Tensor | null)[] | null, op: string): Tensor[] {
  return outputs.map((out, i) => {
    if (!out.requiresGrad) {
      throw new Error(`${op}: element ${i} of tensors does not require grad and does not have a gradFn`);
    }
    const g = given?.[i] ?? null;
    if (g === null) {
      if (out.numel !== 1) {
        throw new Error(
          `${op}: grad can be implicitly created only for scalar outputs, ` +
            `but output ${i} has shape ${fmtShape(out.shape)}. ` +
            `Reduce it to a scalar first (loss.sum() or loss.mean()), pass a gradient of the same shape ` +
            `(out.backward(gradient)), or use grad(outputs, inputs, { gradOutputs }).`,
        );
      }
      const one = Tensor.empty(out.shape, out.dtype);
      one.data[0] = 1;
      return one;
    }
    if (!isTensor(g)) throw new Error(`${op}: gradient ${i} must be a Tensor`);
    if (!shapeEq(g.shape, out.shape)) {
      throw new Error(
        `${op}: mismatch in shape: gradient ${i} has shape ${fmtShape(g.shape)} ` +
          `and output ${i} has shape ${fmtShape(out.shape)}`,
      );
    }
    return g;
  });
}

/**
 * Tensors between the outputs and the targets, consumers before producers. A tensor is on the path
 * when it is a target or one of its inputs is; nothing else is ever visited by the backward pass.
 */
function plan(outputs: Tensor[], isTarget: (t: Tensor) => boolean): { order: Tensor[]; needed: Set<Tensor> } {
  const needed = new Set<Tensor>();
  const done = new Set<Tensor>();
  const postOrder: Tensor[] = [];
  // Iterative depth-first search: deep graphs (long recurrences) must not overflow the stack.
  const stack: [Tensor, number][] = outputs.map((t) => [t, 0]);
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const [t, i] = top;
    if (i === 0 && done.has(t)) {
      stack.pop();
      continue;
    }
    const inputs = t.gradFn?.inputs ?? [];
    if (i < inputs.length) {
      top[1]++;
      const child = inputs[i]!;
      if (child.requiresGrad && !done.has(child)) stack.push([child, 0]);
      continue;
    }
    stack.pop();
    if (done.has(t)) continue;
    done.add(t);
    if (isTarget(t) || inputs.some((c) => needed.has(c))) needed.add(t);
    postOrder.push(t);
  }
  return { order: postOrder.reverse().filter((t) => needed.has(t)), needed };
}

interface RunOptions {
  retainGraph: boolean;
  createGraph: boolean;
  isTarget: (t: Tensor) => boolean;
  onTarget: (t: Tensor, g: Tensor) => void;
}

function run(outputs: Tensor[], seeds: Tensor[], opts: RunOptions): void {
  const { order, needed } = plan(outputs, opts.isTarget);
  const grads = new Map<Tensor, Tensor>();
  const accumulate = (t: Tensor, g: Tensor) => {
    const prev = grads.get(t);
    grads.set(t, prev === undefined ? g : add(prev, g));
  };
  const body = () => {
    outputs.forEach((t, i) => {
      if (needed.has(t)) accumulate(t, seeds[i]!);
    });
    for (const t of order) {
      let g = grads.get(t);
      if (g === undefined) continue;
      grads.delete(t);
      for (const hook of t._hooks ?? []) g = hook(g) ?? g;
      if (opts.isTarget(t)) opts.onTarget(t, g);
      const node = t.gradFn;
      if (node === null) continue;
      if (!node.inputs.some((c) => needed.has(c))) continue;
      if (node.backwardFn === null) {
        throw new Error(
          `backward: trying to backward through the graph a second time (through ${node.name}); the graph was freed ` +
            "after the first backward. " +
            "Pass { retainGraph: true } to the first backward or grad call if you need to do this.",
        );
      }
      node.checkSaved();
      const inputGrads = node.backwardFn(
        g,
        node.inputs.map((c) => needed.has(c)),
      );
      if (!opts.retainGraph) node.release();
      node.inputs.forEach((input, i) => {
        const gi = inputGrads[i];
        if (gi === null || gi === undefined || !needed.has(input)) return;
        if (!shapeEq(gi.shape, input.shape)) {
          throw new Error(
            `${node.name}: backward returned a gradient of shape ${fmtShape(gi.shape)} ` +
              `for an input of shape ${fmtShape(input.shape)}`,
          );
        }
        accumulate(input, gi.dtype !== input.dtype && isFloat(input.dtype) ? to(gi, input.dtype) : gi);
      });
    }
  };
  if (opts.createGraph) enableGrad(body);
  else noGrad(body);
}

/**
 * Gradients of `outputs` with respect to `inputs`, returned (one per input) without touching `.grad`.
 * ```ts
 * const [dx] = grad(y, [x], { createGraph: true }); // dx can be differentiated again
 * ```
 */
export function grad(
  outputs: Tensor | Tensor[],
  inputs: Tensor | Tensor[],
  options: GradOptions = {},
): (Tensor | null)[] {
  const outs = list(outputs);
  const ins = list(inputs);
  const createGraph = options.createGraph ?? false;
  const given = options.gradOutputs === undefined || options.gradOutputs === null ? null : list(options.gradOutputs);
  if (given !== null && given.length !== outs.length) {
    throw new Error(`grad: got ${given.length} gradOutputs for ${outs.length} outputs`);
  }
  ins.forEach((t, i) => {
    if (!isTensor(t)) throw new Error(`grad: input ${i} is not a Tensor`);
    if (!t.requiresGrad) throw new Error(`grad: input ${i} (shape ${fmtShape(t.shape)}) does not require grad`);
  });
  const seeds = seedGradients(outs, given, "grad");
  const targets = new Set(ins);
  const results = new Map<Tensor, Tensor>();
  run(outs, seeds, {
    retainGraph: options.retainGraph ?? createGraph,
    createGraph,
    isTarget: (t) => targets.has(t),
    onTarget: (t, g) => results.set(t, g),
  });
  return ins.map((t, i) => {
    const g = results.get(t);
    if (g !== undefined) return g;
    if (options.allowUnused) return null;
    throw new Error(
      `grad: input ${i} (shape ${fmtShape(t.shape)}) appears to not have been used in the graph. ` +
        "Set allowUnused: true if this is the desired behavior.",
    );
  });
}

/** Accumulates gradients of `outputs` into the `.grad` of the leaves (or of `options.inputs`). */
export function backward(
  outputs: Tensor | Tensor[],
  gradients: Tensor | (Tensor | null)[] | null = null,
  options: BackwardOptions = {},
): void {
  const outs = list(outputs);
  const given = gradients === null ? null : list(gradients);
  const seeds = seedGradients(outs, given, "backward");
  const createGraph = options.createGraph ?? false;
  const chosen = options.inputs ? new Set(options.inputs) : null;
  if (chosen !== null && chosen.size === 0)
    throw new Error("backward: 'inputs' argument to backward() cannot be empty");
  run(outs, seeds, {
    retainGraph: options.retainGraph ?? createGraph,
    createGraph,
    isTarget: chosen ? (t) => chosen.has(t) : (t) => t.isLeaf || t._retainsGrad,
    onTarget: (t, g) => t._accumulateGrad(g, createGraph),
  });
}
