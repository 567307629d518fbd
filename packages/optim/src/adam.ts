import { adamUpdate } from "./flat/adam.js";
import { Optimizer, type ParamGroupInput } from "./optimizer.js";
import type { OptimizerSpec } from "./spec.js";
import type { ParamLike, StateBufferSpec } from "./types.js";
import { checkBoolean, checkNonNegative, checkUnitInterval } from "./validate.js";

/** Options of Adam and AdamW (PyTorch's, camelCased). */
export interface AdamOptions {
  lr: number;
  betas: readonly [number, number];
  eps: number;
  weightDecay: number;
  amsgrad: boolean;
  maximize: boolean;
}

/** State buffers of Adam/AdamW for these options: expAvg, expAvgSq, plus maxExpAvgSq with amsgrad. */
export const adamState = (options: Pick<AdamOptions, "amsgrad">): StateBufferSpec[] => [
  { name: "expAvg", init: 0 },
  { name: "expAvgSq", init: 0 },
  ...(options.amsgrad ? [{ name: "maxExpAvgSq", init: 0 }] : []),
];

function makeSpec(owner: string, weightDecay: number, decoupled: boolean): OptimizerSpec<AdamOptions> {
  return {
    owner,
    defaults: { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay, amsgrad: false, maximize: false },
    validate(o) {
      checkNonNegative(owner, "lr", o.lr);
      if (!Array.isArray(o.betas) || o.betas.length !== 2) {
        throw new Error(`${owner}: betas must be a pair [beta1, beta2], got ${JSON.stringify(o.betas)}`);
      }
      checkUnitInterval(owner, "betas[0]", o.betas[0]);
      checkUnitInterval(owner, "betas[1]", o.betas[1]);
      checkNonNegative(owner, "eps", o.eps);
      checkNonNegative(owner, "weightDecay", o.weightDecay);
      checkBoolean(owner, "amsgrad", o.amsgrad);
      checkBoolean(owner, "maximize", o.maximize);
    },
    stateBuffers: adamState,
    bufferNames: ["expAvg", "expAvgSq", "maxExpAvgSq"],
    update(o, a) {
      const [m, v, vmax] = a.state;
      adamUpdate(a.params, a.grads, m!, v!, o.amsgrad ? vmax! : null, a.start, a.end, a.step, {
        lr: a.lr ?? o.lr,
        beta1: o.betas[0],
        beta2: o.betas[1],
        eps: o.eps,
        weightDecay: o.weightDecay,
        amsgrad: o.amsgrad,
        maximize: o.maximize,
        decoupledWeightDecay: decoupled,
      });
    },
  };
}

export const adamSpec = makeSpec("Adam", 0, false);
export const adamwSpec = makeSpec("AdamW", 1e-2, true);

/**
 * Adam with L2 weight decay added to the gradient (torch.optim.Adam).
 * @example const opt = new Adam(model.parameters(), { lr: 1e-3 }); opt.step(); opt.zeroGrad();
 */
export class Adam extends Optimizer<AdamOptions> {
  constructor(params: ParamLike[] | ParamGroupInput<AdamOptions>[], options: Partial<AdamOptions> = {}) {
    super(adamSpec, params, options);
  }
}

/**
 * Adam with decoupled weight decay, p *= 1 - lr·wd before the update (torch.optim.AdamW).
 * @example const opt = new AdamW(params, { lr: 1e-3, weightDecay: 1e-2 });
 */
export class AdamW extends Optimizer<AdamOptions> {
  constructor(params: ParamLike[] | ParamGroupInput<AdamOptions>[], options: Partial<AdamOptions> = {}) {
    super(adamwSpec, params, options);
  }
}
