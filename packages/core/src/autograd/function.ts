// biome-ignore-all lint/complexity/noThisInStatic: `this` is the calling subclass, which defines forward and backward
import { isGradEnabled, noGrad } from "./grad-mode.js";
import { Node } from "./node.js";
import { Tensor, isTensor } from "../tensor/tensor.js";
import { fmtShape, shapeEq } from "../tensor/shape.js";

/** What `forward` and `backward` of a custom function share. */
export class FunctionCtx {
  savedTensors: Tensor[] = [];
  needsInputGrad: boolean[] = [];
  [key: string]: unknown;

  saveForBackward(...tensors: Tensor[]): void {
    this.savedTensors = tensors;
  }
}

/**
 * A differentiable function with a hand-written backward, as PyTorch's `torch.autograd.Function`.
 * ```ts
 * class Cube extends Function {
 *   static forward(ctx: FunctionCtx, x: Tensor) { ctx.saveForBackward(x); return x.pow(3); }
 *   static backward(ctx: FunctionCtx, g: Tensor) { const [x] = ctx.savedTensors; return [g.mul(x!.pow(2)).mul(3)]; }
 * }
 * const y = Cube.apply(x);
 * ```
 * `forward` runs without recording; `backward` is written with tensor ops, so it is itself
 * differentiable when a graph is created.
 */
// biome-ignore lint/complexity/noStaticOnlyClass: users subclass it with static forward/backward, as in PyTorch
// biome-ignore lint/suspicious/noShadowRestrictedNames: named after torch.autograd.Function; imported by name
export abstract class Function {
  static forward(_ctx: FunctionCtx, ..._args: unknown[]): Tensor {
    throw new Error(`${this.name}: custom functions must implement static forward(ctx, ...inputs)`);
  }

  static backward(_ctx: FunctionCtx, _grad: Tensor): (Tensor | null)[] | Tensor | null {
    throw new Error(`${this.name}: custom functions must implement static backward(ctx, grad)`);
  }

  static apply(...args: unknown[]): Tensor {
    const ctx = new FunctionCtx();
    const inputs = args.filter(isTensor);
    ctx.needsInputGrad = inputs.map((t) => t.requiresGrad);
    const out = noGrad(() => this.forward(ctx, ...args));
    if (!isTensor(out)) throw new Error(`${this.name}.forward must return a Tensor`);
    if (!isGradEnabled() || !inputs.some((t) => t.requiresGrad)) return out;
    const result = out.gradFn === null && !inputs.includes(out) ? out : new Tensor(out.data, out.shape, out._version);
    const backwardImpl = this.backward.bind(this);
    const name = this.name;
    result._setGradFn(
      new Node(
        name,
        inputs,
        (g) => {
          const r = backwardImpl(ctx, g);
          const grads = Array.isArray(r) ? r : [r];
          if (grads.length !== inputs.length) {
            throw new Error(
              `${name}.backward returned ${grads.length} gradients, expected ${inputs.length} (one per tensor input)`,
            );
          }
          grads.forEach((gi, i) => {
            if (gi !== null && !shapeEq(gi.shape, inputs[i]!.shape)) {
              throw new Error(
                `${name}.backward: gradient ${i} has shape ${fmtShape(gi.shape)}, ` +
                  `input has ${fmtShape(inputs[i]!.shape)}`,
              );
            }
          });
          return grads;
        },
        ctx.savedTensors,
      ),
    );
    return result;
  }
}
