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
  Embedding,
  LayerNorm,
  Identity,
} from "./layers.js";
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
