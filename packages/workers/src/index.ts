export {
  ALIGN_BYTES,
  SharedArena,
  bufferViews,
  planArena,
  planBuffers,
  type ArenaHandle,
  type ArenaLayout,
  type ArenaSpec,
  type BufferSlot,
} from "./arena.js";
export { Barrier, BarrierAborted, BarrierTimeout, type BarrierOptions } from "./barrier.js";
export {
  SharedMemoryCollective,
  SharedSmallAllReduce,
  reduceSlices,
  type Collective,
  type CollectiveOptions,
  type SegmentSum,
} from "./collective.js";
export {
  BARRIER_COUNT,
  BARRIER_GENERATION,
  ControlAborted,
  ERROR,
  ErrorCode,
  USER_BASE,
  WaitTimeout,
  errorCodeName,
  signalError,
  waitForValue,
  waitUntil,
  type WaitOptions,
} from "./control.js";
export { SEGMENT_ALIGN, segment, shardRange } from "./shard.js";
export {
  HierarchicalCollective,
  finalizeMpi,
  initMpi,
  jobBarrier,
  mpiLibraryVersion,
  sumOnHost,
  timeAllReduce,
  type AllReduceTiming,
  processesSharingCores,
  sumOverProcesses,
} from "./distributed.js";
export {
  DataParallel,
  type TrainerOptions,
  type FitOptions,
  type StepInfo,
  type EvalResult,
  type EpochLog,
  type FitResult,
  type Progress,
  type OptimizerConfig,
} from "./trainer.js";
export {
  type ModelSpec,
  type LossSpec,
  type LossFn,
  MAX_PARAMETERS,
  buildMlp,
  buildModel,
  buildLoss,
  mlpParameterShapes,
  type ImageModelSpec,
  MODEL_KINDS,
  buildImageModel,
  imageModelParameterShapes,
  builtinParameterShapes,
} from "./spec.js";
export { sequenceCrossEntropy, isSequenceLoss, defaultLoss, tokenModel } from "./sequence-loss.js";
export {
  CHARGPT,
  GPT_LIMITS,
  Gpt,
  type GptModelSpec,
  gptParameterCount,
  gptParameterShapes,
  gptSpecProblem,
} from "./gpt.js";
export { generate, type GenerateOptions } from "./generate.js";
export { type DatasetLike, type SharedDataset, toSharedDataset } from "./dataset.js";
export { availableWorkers, resolveWorkers } from "./threads.js";
export {
  writeCheckpoint,
  readCheckpoint,
  storeTensor,
  loadTensor,
  CHECKPOINT_FORMAT,
  type CheckpointIo,
  type StoredTensor,
} from "./checkpoint.js";
export { loadModel, predictOutputs, type LoadModelOptions, type PredictOptions } from "./load-model.js";
export { epochOrder } from "./step-math.js";
export { safeText } from "./checkpoint-schema.js";
export {
  readTrainerCheckpoint,
  MAX_STORED_BATCH_SIZE,
  type TrainerCheckpoint,
  type StoredTrainerConfig,
} from "./persist.js";
export { placeInWasm, wasmSegmentSum, RANK_SCRATCH_BYTES, type WasmPlacement } from "./wasm-arena.js";
