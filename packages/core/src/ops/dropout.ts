import { defaultGenerator, getSampleContext } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";

/**
 * The mask inverted dropout multiplies by: 0 with probability p, else 1/(1-p), of `shape` in
 * float64 or float32. Inside a trainer's sample context the entries of row i (first dim) are drawn
 * from the counter-based generator keyed by (step, first sample + i, call number, element), so they
 * do not depend on which worker runs the row; otherwise they come from the default generator.
 * `F.dropout` and the attention dropout share it, so both draw the same numbers.
 */
export function dropoutMask(shape: readonly number[], dtype: "float32" | "float64", p: number): Tensor {
  const mask = Tensor.empty(shape, dtype);
  const scale = p === 1 ? 0 : 1 / (1 - p);
  const ctx = getSampleContext();
  const m = mask.data;
  if (ctx !== null) {
    const stream = ctx.stream++;
    const rows = shape.length === 0 ? 1 : shape[0]!;
    const per = rows === 0 ? 0 : m.length / rows;
    for (let r = 0; r < rows; r++) {
      for (let k = 0; k < per; k++)
        m[r * per + k] = ctx.generator.uniform(ctx.step, ctx.firstSample + r, stream, k) < p ? 0 : scale;
    }
  } else {
    for (let i = 0; i < m.length; i++) m[i] = defaultGenerator.random() < p ? 0 : scale;
  }
  return mask;
}
