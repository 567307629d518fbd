import { getDefaultDtype } from "../tensor/dtype.js";
import { Tensor } from "../tensor/tensor.js";

export const empty = (shape: number[], dtype?: "float32" | "float64"): Tensor =>
  Tensor.empty(shape, dtype ?? getDefaultDtype());
