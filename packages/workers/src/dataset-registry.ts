import { isTensor } from "@threadgrad/core";
import type { DatasetChecks, DatasetLike } from "./dataset.js";
import { type LossSpec, type ModelSpec, isClassification } from "./spec.js";

/** The object a data set is cached under: its features' storage, so fresh `{ x, y }` wrappers match. */
export function datasetKey(ds: DatasetLike): unknown {
  return ds !== null && typeof ds === "object" && "x" in ds ? (isTensor(ds.x) ? ds.x.data : ds.x) : ds;
}

/** What the model spec and loss tell about the data sets it takes, checked in main before the workers see one. */
export function datasetChecks(model: ModelSpec, loss: LossSpec): DatasetChecks {
  const classification = isClassification(loss);
  const mlp = "kind" in model && model.kind === "mlp" ? model.sizes : null;
  const weights = typeof loss === "object" && "name" in loss ? loss.weight?.length : undefined;
  // A module loss may take targets of any shape: only a built-in loss fixes the outputs.
  const builtIn = classification || loss === "mse";
  return {
    classification,
    inputs: mlp?.[0],
    outputs: builtIn ? (mlp?.at(-1) ?? weights) : undefined,
    // the mlp takes rows: images [N, 1, 28, 28] reach it as [N, 784]
    flatRows: mlp !== null,
  };
}

/**
 * Spare storage kept for reuse, in bytes: at least this much, or 4 times the largest copy made.
 * Dropping a spare buffer frees little: the ranks hold it until their collectors run (see copies).
 */
export const MIN_SPARE_BYTES = 256 * 2 ** 20;
