import { type SgdUpdateOptions, sgdUpdate } from "./flat/sgd.js";
import { Optimizer, type ParamGroupInput } from "./optimizer.js";
import type { OptimizerSpec } from "./spec.js";
import type { ParamLike, StateBufferSpec } from "./types.js";
import { checkBoolean, checkNonNegative } from "./validate.js";

/** Options of SGD (PyTorch's, camelCased; lr defaults to 1e-3 as in PyTorch 2.x): the flat update's scalars. */
export type SgdOptions = SgdUpdateOptions;

/** State buffers of SGD: a momentumBuffer only when momentum is non-zero. */
export const sgdState = (options: Pick<SgdOptions, "momentum">): StateBufferSpec[] =>
  options.momentum !== 0 ? [{ name: "momentumBuffer", init: 0 }] : [];

export const sgdSpec: OptimizerSpec<SgdOptions> = {
  owner: "SGD",
  defaults: { lr: 1e-3, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, maximize: false },
  validate(o) {
    checkNonNegative("SGD", "lr", o.lr);
    checkNonNegative("SGD", "momentum", o.momentum);
    checkNonNegative("SGD", "dampening", o.dampening);
    checkNonNegative("SGD", "weightDecay", o.weightDecay);
    checkBoolean("SGD", "nesterov", o.nesterov);
    checkBoolean("SGD", "maximize", o.maximize);
    if (o.nesterov && (o.momentum <= 0 || o.dampening !== 0)) {
      throw new Error(
        `SGD: nesterov requires momentum > 0 and dampening = 0, got momentum ${o.momentum}, dampening ${o.dampening}`,
      );
    }
  },
  stateBuffers: sgdState,
  bufferNames: ["momentumBuffer"],
  update(o, a) {
    sgdUpdate(a.params, a.grads, o.momentum !== 0 ? a.state[0]! : null, a.start, a.end, a.step, {
      lr: a.lr ?? o.lr,
      momentum: o.momentum,
      dampening: o.dampening,
      weightDecay: o.weightDecay,
      nesterov: o.nesterov,
      maximize: o.maximize,
    });
  },
};

/**
 * Stochastic gradient descent with optional (Nesterov) momentum (torch.optim.SGD).
 * @example const opt = new SGD(params, { lr: 0.1, momentum: 0.9, nesterov: true });
 */
export class SGD extends Optimizer<SgdOptions> {
  constructor(params: ParamLike[] | ParamGroupInput<SgdOptions>[], options: Partial<SgdOptions> = {}) {
    super(sgdSpec, params, options);
  }
}
