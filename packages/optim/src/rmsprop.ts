import { type RmspropUpdateOptions, rmspropUpdate } from "./flat/rmsprop.js";
import { Optimizer, type ParamGroupInput } from "./optimizer.js";
import type { OptimizerSpec } from "./spec.js";
import type { ParamLike, StateBufferSpec } from "./types.js";
import { checkBoolean, checkNonNegative } from "./validate.js";

/** Options of RMSprop (PyTorch's, camelCased): the flat update's scalars. */
export type RmspropOptions = RmspropUpdateOptions;

/** State buffers of RMSprop: squareAvg, then momentumBuffer (momentum > 0), then gradAvg (centered). */
export const rmspropState = (options: Pick<RmspropOptions, "momentum" | "centered">): StateBufferSpec[] => [
  { name: "squareAvg", init: 0 },
  ...(options.momentum > 0 ? [{ name: "momentumBuffer", init: 0 }] : []),
  ...(options.centered ? [{ name: "gradAvg", init: 0 }] : []),
];

export const rmspropSpec: OptimizerSpec<RmspropOptions> = {
  owner: "RMSprop",
  defaults: { lr: 1e-2, alpha: 0.99, eps: 1e-8, weightDecay: 0, momentum: 0, centered: false, maximize: false },
  validate(o) {
    checkNonNegative("RMSprop", "lr", o.lr);
    checkNonNegative("RMSprop", "alpha", o.alpha);
    checkNonNegative("RMSprop", "eps", o.eps);
    checkNonNegative("RMSprop", "weightDecay", o.weightDecay);
    checkNonNegative("RMSprop", "momentum", o.momentum);
    checkBoolean("RMSprop", "centered", o.centered);
    checkBoolean("RMSprop", "maximize", o.maximize);
  },
  stateBuffers: rmspropState,
  bufferNames: ["squareAvg", "momentumBuffer", "gradAvg"],
  update(o, a) {
    const hasBuf = o.momentum > 0;
    const buf = hasBuf ? a.state[1]! : null;
    const gradAvg = o.centered ? a.state[hasBuf ? 2 : 1]! : null;
    rmspropUpdate(a.params, a.grads, a.state[0]!, gradAvg, buf, a.start, a.end, a.step, {
      lr: a.lr ?? o.lr,
      alpha: o.alpha,
      eps: o.eps,
      weightDecay: o.weightDecay,
      momentum: o.momentum,
      centered: o.centered,
      maximize: o.maximize,
    });
  },
};

/**
 * RMSprop, optionally centered and with momentum (torch.optim.RMSprop).
 * @example const opt = new RMSprop(params, { lr: 1e-2, centered: true });
 */
export class RMSprop extends Optimizer<RmspropOptions> {
  constructor(params: ParamLike[] | ParamGroupInput<RmspropOptions>[], options: Partial<RmspropOptions> = {}) {
    super(rmspropSpec, params, options);
  }
}
