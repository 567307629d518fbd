import { adagradUpdate } from "./flat/adagrad.js";
import { Optimizer, type ParamGroupInput } from "./optimizer.js";
import type { OptimizerSpec } from "./spec.js";
import type { ParamLike, StateBufferSpec } from "./types.js";
import { checkBoolean, checkNonNegative } from "./validate.js";

/** Options of Adagrad (PyTorch's, camelCased). */
export interface AdagradOptions {
  lr: number;
  lrDecay: number;
  weightDecay: number;
  initialAccumulatorValue: number;
  eps: number;
  maximize: boolean;
}

/** State buffers of Adagrad: one `sum`, starting at initialAccumulatorValue. */
export const adagradState = (options: Pick<AdagradOptions, "initialAccumulatorValue">): StateBufferSpec[] => [
  { name: "sum", init: options.initialAccumulatorValue },
];

export const adagradSpec: OptimizerSpec<AdagradOptions> = {
  owner: "Adagrad",
  defaults: { lr: 1e-2, lrDecay: 0, weightDecay: 0, initialAccumulatorValue: 0, eps: 1e-10, maximize: false },
  validate(o) {
    checkNonNegative("Adagrad", "lr", o.lr);
    checkNonNegative("Adagrad", "lrDecay", o.lrDecay);
    checkNonNegative("Adagrad", "weightDecay", o.weightDecay);
    checkNonNegative("Adagrad", "initialAccumulatorValue", o.initialAccumulatorValue);
    checkNonNegative("Adagrad", "eps", o.eps);
    checkBoolean("Adagrad", "maximize", o.maximize);
  },
  stateBuffers: adagradState,
  bufferNames: ["sum"],
  update(o, a) {
    adagradUpdate(a.params, a.grads, a.state[0]!, a.start, a.end, a.step, {
      lr: a.lr ?? o.lr,
      lrDecay: o.lrDecay,
      weightDecay: o.weightDecay,
      eps: o.eps,
      maximize: o.maximize,
    });
  },
};

/**
 * Adagrad (torch.optim.Adagrad).
 * @example const opt = new Adagrad(params, { lr: 1e-2, initialAccumulatorValue: 0.1 });
 */
export class Adagrad extends Optimizer<AdagradOptions> {
  constructor(params: ParamLike[] | ParamGroupInput<AdagradOptions>[], options: Partial<AdagradOptions> = {}) {
    super(adagradSpec, params, options);
  }
}
