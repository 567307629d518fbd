import { matmulKernel } from "../kernels/matmul.js";
import { type FloatArray, arrayFor, isFloat, promoteTypes } from "../tensor/dtype.js";
import { broadcastShapes, fmtShape } from "../tensor/shape.js";
import { Tensor } from "../tensor/tensor.js";
import { dataAs, defineOp, record } from "./op.js";
import { noGrad } from "../autograd/grad-mode.js";
import { addBias } from "../kernels/fused.js";
import { sum } from "./reduce.js";
import { mul } from "./elementwise.js";
import { broadcastTo, reshape, unsqueeze } from "./shape.js";

/**
 * `op(a) · op(b)` for 2-D matrices or 3-D batches of equal size, where op transposes the last two
 * dims when its flag is set. Backward uses the flags instead of materialised transposes:
 *   C = op(A)·op(B):  dop(A) = G·op(B)ᵀ,  dop(B) = op(A)ᵀ·G.
 */
export const mm = defineOp("mm", (a: Tensor, b: Tensor, transA = false, transB = false): Tensor => {
  if (a.ndim !== b.ndim || (a.ndim !== 2 && a.ndim !== 3)) {
    throw new Error(`mm: expected two 2-D or two 3-D tensors, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
  }
  const batched = a.ndim === 3;
  const batch = batched ? a.shape[0]! : 1;
  if (batched && b.shape[0] !== batch) throw new Error(`mm: batch sizes differ (${batch} vs ${b.shape[0]})`);
  const [ar, ac] = a.shape.slice(-2) as [number, number];
  const [br, bc] = b.shape.slice(-2) as [number, number];
  const m = transA ? ac : ar,
    k = transA ? ar : ac;
  const kb = transB ? bc : br,
    n = transB ? br : bc;
  if (k !== kb)
    throw new Error(
      `matmul: inner dimensions differ (${k} vs ${kb}) for shapes ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`,
    );
  let dtype = promoteTypes(a.dtype, b.dtype);
  if (!isFloat(dtype)) dtype = "float64";
  const out = arrayFor(dtype, batch * m * n, false) as FloatArray;
  const kernel = matmulKernel(dtype);
  const ad = dataAs(a, dtype) as FloatArray,
    bd = dataAs(b, dtype) as FloatArray;
  for (let i = 0; i < batch; i++) kernel(ad, i * ar * ac, bd, i * br * bc, out, i * m * n, m, k, n, transA, transB);
  const result = new Tensor(out, batched ? [batch, m, n] : [m, n]);
  return record(
    result,
    "mm",
    [a, b],
    (g, needs) => [
      needs[0] ? (transA ? mm(b, g, transB, true) : mm(g, b, false, !transB)) : null,
      needs[1] ? (transB ? mm(g, a, true, transA) : mm(a, g, !transA, false)) : null,
    ],
    [a, b],
  );
});

/** PyTorch's matmul: dot, matrix-vector, matrix-matrix and batched with broadcast batch dims. */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.ndim === 0 || b.ndim === 0)
    throw new Error("matmul: both arguments need at least 1 dimension, got a 0-d tensor");
  const a2 = a.ndim === 1 ? unsqueeze(a, 0) : a;
  const b2 = b.ndim === 1 ? unsqueeze(b, 1) : b;
  const k1 = a2.shape[a2.ndim - 1]!,
    k2 = b2.shape[b2.ndim - 2]!;
  if (k1 !== k2)
    throw new Error(
      `matmul: inner dimensions differ (${k1} vs ${k2}) for shapes ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`,
    );
  let out: Tensor;
  if (a2.ndim === 2 && b2.ndim === 2) {
    out = mm(a2, b2);
  } else if (b2.ndim === 2) {
    // (..., m, k) · (k, n): fold the batch into rows, no copy of b.
    const lead = a2.shape.slice(0, -1);
    out = reshape(mm(reshape(a2, [-1, k1]), b2), [...lead, b2.shape[1]!]);
  } else {
    const batch = broadcastShapes(a2.shape.slice(0, -2), b2.shape.slice(0, -2), "matmul");
    const m = a2.shape[a2.ndim - 2]!,
      n = b2.shape[b2.ndim - 1]!;
    const ab = reshape(broadcastTo(a2, [...batch, m, k1]), [-1, m, k1]);
    const bb = reshape(broadcastTo(b2, [...batch, k1, n]), [-1, k1, n]);
    out = reshape(mm(ab, bb), [...batch, m, n]);
  }
  const shape = [...out.shape];
  if (a.ndim === 1) shape.splice(shape.length - 2, 1);
  if (b.ndim === 1) shape.splice(shape.length - 1, 1);
  return reshape(out, shape);
}

export function dot(a: Tensor, b: Tensor): Tensor {
  if (a.ndim !== 1 || b.ndim !== 1)
    throw new Error(`dot: expected 1-D tensors, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
  if (a.shape[0] !== b.shape[0]) throw new Error(`dot: inconsistent tensor size (${a.shape[0]} vs ${b.shape[0]})`);
  return matmul(a, b);
}

export function outer(a: Tensor, b: Tensor): Tensor {
  if (a.ndim !== 1 || b.ndim !== 1)
    throw new Error(`outer: expected 1-D tensors, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
  return mul(unsqueeze(a, 1), unsqueeze(b, 0));
}

/**
 * x·Wᵀ + b in one op for 2-D x ([m, in]), W [out, in], b [out]: the matmul writes the output and
 * the bias is added in place (the SIMD kernel when the operands lie in WebAssembly memory).
 * Backward: dx = g·W, dW = gᵀ·x, db = Σ_rows g, each a differentiable op.
 */
export const linear = defineOp("linear", (x: Tensor, w: Tensor, b: Tensor): Tensor => {
  if (x.ndim !== 2 || w.ndim !== 2 || b.ndim !== 1 || b.shape[0] !== w.shape[0]) {
    throw new Error(
      "linear: expected x [m, in], weight [out, in], bias [out], " +
        `got ${fmtShape(x.shape)}, ${fmtShape(w.shape)}, ${fmtShape(b.shape)}`,
    );
  }
  const y = noGrad(() => mm(x, w, false, true));
  const dtype = y.dtype;
  const bias = dataAs(b, dtype) as FloatArray;
  addBias(y.data as FloatArray, bias, y.shape[0]!, y.shape[1]!);
  return record(
    y,
    "linear",
    [x, w, b],
    (g, needs) => [
      needs[0] ? mm(g, w, false, false) : null,
      needs[1] ? mm(g, x, true, false) : null,
      needs[2] ? sum(g, 0) : null,
    ],
    [x, w],
  );
});
