export { ALIGN_BYTES, SharedArena, planArena, type ArenaHandle, type ArenaLayout, type ArenaSpec } from "./arena.js";
export { Barrier, BarrierAborted, BarrierTimeout, type BarrierOptions } from "./barrier.js";
export { SharedMemoryCollective, reduceSlices, type Collective } from "./collective.js";
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
