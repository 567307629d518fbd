/** fit's error for a non-finite loss or gradient without skipNonFinite. */
export class NonFiniteError extends Error {
  override name = "NonFiniteError";
}

export interface PendingStep {
  indices: Int32Array;
  update: boolean;
  /** global steps completed before this one */
  globalStep: number;
}
