// @threadgrad/cli: the `threadgrad` command (train, eval, bench), its data loaders and the
// benchmark workloads. MIT license.
export * from "./data/index.js";
export { W1, runThroughput, randomClassification, type ThroughputOptions, type ThroughputResult } from "./workloads.js";
export { W6, W6_RANDOM_BATCHES, w6Data, type BenchData } from "./workloads.js";
export {
  W7,
  W7_POOL_STEPS,
  W7_RANDOM_TOKENS,
  FORTUNES_DIR,
  w7Data,
  type TokenBenchData,
} from "./workloads.js";
export { main, buildProgram } from "./program.js";
export { EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, EXIT_USAGE, UsageError } from "./errors.js";
export { TRAIN_FLAGS, type TrainSettings } from "./flags.js";
export { DEFAULT_SETTINGS, newRunSettings, readGivenSettings, resumedSettings } from "./settings.js";
export { buildSchedule, fitSettingsToData, loadRunData, trainerOptions } from "./setup.js";
export { ReportSeries, StepSeries, renderReport } from "./report.js";
export { VERSION } from "./version.js";
