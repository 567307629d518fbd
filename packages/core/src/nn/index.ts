export { Module, Parameter, isModule, isParameter, type StateDict } from "./module.js";
export {
  Linear,
  Sequential,
  ReLU,
  Tanh,
  Sigmoid,
  GELU,
  Softplus,
  Dropout,
  Flatten,
  Unflatten,
  Embedding,
  LayerNorm,
  Identity,
} from "./layers.js";
export { Conv1d, Conv2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d } from "./conv.js";
export { BatchNorm1d, BatchNorm2d, GroupNorm, type BatchNormModuleOptions } from "./norm.js";
export {
  MultiheadAttention,
  TransformerEncoderLayer,
  TransformerEncoder,
  type MultiheadAttentionForwardOptions,
  type TransformerEncoderLayerOptions,
  type Activation,
} from "./transformer.js";
export {
  MSELoss,
  L1Loss,
  HuberLoss,
  SmoothL1Loss,
  CrossEntropyLoss,
  NLLLoss,
  BCEWithLogitsLoss,
} from "../losses/modules.js";
export * as functional from "./functional.js";
export * as F from "./functional.js";
export * as init from "./init.js";
