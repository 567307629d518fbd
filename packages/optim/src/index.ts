// @threadgrad/optim: optimizers, learning-rate schedulers and gradient clipping. MIT license.
export type {
  AnyArray,
  FlatStepArgs,
  FloatArray,
  GradLike,
  OptimizerName,
  ParamLike,
  StateBufferSpec,
} from "./types.js";
export { FLT_MIN } from "./flat/flush.js";
export { adamUpdate, type AdamUpdateOptions } from "./flat/adam.js";
export { sgdUpdate, type SgdUpdateOptions } from "./flat/sgd.js";
export { rmspropUpdate, type RmspropUpdateOptions } from "./flat/rmsprop.js";
export { adagradUpdate, type AdagradUpdateOptions } from "./flat/adagrad.js";
export {
  Optimizer,
  type OptimizerStateDict,
  type ParamGroup,
  type ParamGroupInput,
  type ParamState,
} from "./optimizer.js";
export type { OptimizerSpec } from "./spec.js";
export { Adam, AdamW, adamState, type AdamOptions } from "./adam.js";
export { SGD, sgdState, type SgdOptions } from "./sgd.js";
export { RMSprop, rmspropState, type RmspropOptions } from "./rmsprop.js";
export { Adagrad, adagradState, type AdagradOptions } from "./adagrad.js";
export { createOptimizer, flatStep, resolveFlatOptions, stateBuffers, type OptionsByName } from "./factory.js";
export {
  clipCoef,
  clipGradNorm,
  clipGradValue,
  combineNorms,
  partialNorm,
  scaleRange,
  type ClipGradNormOptions,
  type NormType,
} from "./clip.js";
export { LRScheduler, type OptimizerLike, type SchedulerStateDict } from "./schedulers/base.js";
export { CosineAnnealingLR, ExponentialLR, LinearLR, MultiStepLR, StepLR } from "./schedulers/basic.js";
export { OneCycleLR, type OneCycleOptions } from "./schedulers/one-cycle.js";
export { SequentialLR } from "./schedulers/sequential.js";
export { ReduceLROnPlateau, type PlateauOptions, type PlateauStateDict } from "./schedulers/plateau.js";
export { lrAt, type AnnealStrategy, type ScheduleConfig } from "./schedulers/closed-form.js";
