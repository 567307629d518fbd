import type { Tensor } from "../tensor/tensor.js";
import { Module } from "../nn/module.js";
import * as L from "./losses.js";

// Loss modules hold their options and call the functional form.

export class MSELoss extends Module {
  constructor(readonly opts: { reduction?: L.Reduction } = {}) {
    super();
  }
  forward(input: Tensor, target: Tensor): Tensor {
    return L.mseLoss(input, target, this.opts);
  }
}
export class L1Loss extends Module {
  constructor(readonly opts: { reduction?: L.Reduction } = {}) {
    super();
  }
  forward(input: Tensor, target: Tensor): Tensor {
    return L.l1Loss(input, target, this.opts);
  }
}
export class HuberLoss extends Module {
  constructor(readonly opts: { reduction?: L.Reduction; delta?: number } = {}) {
    super();
  }
  forward(input: Tensor, target: Tensor): Tensor {
    return L.huberLoss(input, target, this.opts);
  }
}
export class SmoothL1Loss extends Module {
  constructor(readonly opts: { reduction?: L.Reduction; beta?: number } = {}) {
    super();
  }
  forward(input: Tensor, target: Tensor): Tensor {
    return L.smoothL1Loss(input, target, this.opts);
  }
}
export class CrossEntropyLoss extends Module {
  constructor(readonly opts: L.CrossEntropyOptions = {}) {
    super();
  }
  forward(input: Tensor, target: Tensor): Tensor {
    return L.crossEntropy(input, target, this.opts);
  }
}
export class NLLLoss extends Module {
  constructor(readonly opts: L.NllOptions = {}) {
    super();
  }
  forward(input: Tensor, target: Tensor): Tensor {
    return L.nllLoss(input, target, this.opts);
  }
}
export class BCEWithLogitsLoss extends Module {
  constructor(readonly opts: { reduction?: L.Reduction; weight?: Tensor; posWeight?: Tensor } = {}) {
    super();
  }
  forward(input: Tensor, target: Tensor): Tensor {
    return L.binaryCrossEntropyWithLogits(input, target, this.opts);
  }
}
