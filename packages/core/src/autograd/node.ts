import type { Tensor } from "../tensor/tensor.js";

/**
 * Computes the gradients of a node's inputs from the gradient `g` of its output. `wanted`, when
 * given, marks the inputs the running pass needs (on a path to its targets): the others may be
 * skipped (null), so grad(y, [x]) does not compute the weights' gradients on the way to x.
 */
export type BackwardFn = (g: Tensor, wanted?: readonly boolean[]) => (Tensor | null)[];

let nextId = 0;

/**
 * The record of one operation in the graph: which tensors went in and how to send a gradient back
 * to them. `backwardFn` is dropped when the graph is freed, which is how a second pass is detected.
 */
export class Node {
  readonly id = nextId++;
  backwardFn: BackwardFn | null;
  private saved: { tensor: Tensor; version: number }[];

  constructor(
    readonly name: string,
    readonly inputs: readonly Tensor[],
    backwardFn: BackwardFn,
    saved: readonly Tensor[],
  ) {
    this.backwardFn = backwardFn;
    this.saved = saved.map((tensor) => ({ tensor, version: tensor._version.value }));
  }

  /** Throws when a tensor this node needs was changed in place after the forward pass. */
  checkSaved(): void {
    for (const { tensor, version } of this.saved) {
      if (tensor._version.value !== version) {
        throw new Error(
          `${this.name}: one of the tensors needed for gradient computation has been modified by an in-place ` +
            `operation: tensor of shape [${tensor.shape.join(", ")}] is at version ${tensor._version.value}; ` +
            `expected version ${version} instead. Use the out-of-place op (add instead of add_) or clone() it first.`,
        );
      }
    }
  }

  release(): void {
    this.backwardFn = null;
    this.saved = [];
  }

  toString(): string {
    return `<${this.name[0]!.toUpperCase()}${this.name.slice(1)}Backward0>`;
  }
}
