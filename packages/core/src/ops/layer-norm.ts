import * as kern from "../kernels/layer-norm.js";
import { type FloatArray, arrayFor, isFloat } from "../tensor/dtype.js";
import { fmtShape } from "../tensor/shape.js";
import { Tensor } from "../tensor/tensor.js";
import { add, div, mul, sqrt, sub } from "./elementwise.js";
import { defineOp, record } from "./op.js";
import { mean } from "./reduce.js";

// LayerNorm's normalization x̂ = (x - μ)/√(var + eps) over the last `k` dims as one fused op, whose
// backward dx = r·(g - mean(g) - x̂·mean(g·x̂)) (r = 1/√(var + eps)) is a fused op too, recomputing
// μ and r from x; kernels/layer-norm.ts (SIMD in the step region). The backward's own gradient is
// written with ops, so every order works. With a = mean(g·x̂), b = mean(h·x̂) and
// c = mean(h·g) - mean(h)·mean(g) for an incoming h:
//   ∂/∂g = the backward applied to h (the Jacobian of x̂ is symmetric),
//   ∂/∂x = -r²·(x̂·(c - 3ab) + b·(g - mean(g)) + a·(h - mean(h)))

function rowsOf(x: Tensor, k: number, op: string): [number, number, number[]] {
  if (!isFloat(x.dtype)) throw new Error(`${op}: expected a floating point tensor, got ${x.dtype}`);
  if (!Number.isInteger(k) || k < 1 || k > x.ndim) {
    throw new Error(`${op}: cannot normalize the last ${k} dims of a tensor of shape ${fmtShape(x.shape)}`);
  }
  const dims = Array.from({ length: k }, (_, i) => x.ndim - k + i);
  const n = dims.reduce((a, d) => a * x.shape[d]!, 1);
  return [n === 0 ? 0 : x.numel / n, n, dims];
}

// eps as the float type computes it: PyTorch adds a float32 eps to a float32 variance.
const epsFor = (x: Tensor, eps: number) => (x.dtype === "float32" ? Math.fround(eps) : eps);

/** (x - μ)/√(var + eps) over the last `k` dims (biased variance): LayerNorm without its affine part. */
export const layerNormalize = defineOp("layerNormalize", (x: Tensor, k: number, eps = 1e-5): Tensor => {
  const [rows, n] = rowsOf(x, k, "layerNormalize");
  const out = arrayFor(x.dtype, x.numel, false) as FloatArray;
  kern.layerNormForward(x.data as FloatArray, out, rows, n, epsFor(x, eps));
  return record(new Tensor(out, x.shape), "layerNormalize", [x], (g) => [layerNormBackward(g, x, k, eps)], [x]);
});

/** The gradient of layerNormalize(x, k, eps) for an incoming g, as an op (differentiable in g and x). */
export const layerNormBackward = defineOp(
  "layerNormBackward",
  (g: Tensor, x: Tensor, k: number, eps = 1e-5): Tensor => {
    const [rows, n, dims] = rowsOf(x, k, "layerNormBackward");
    if (g.shape.join() !== x.shape.join() || g.dtype !== x.dtype) {
      throw new Error(
        `layerNormBackward: g ${fmtShape(g.shape)} ${g.dtype} must match x ${fmtShape(x.shape)} ${x.dtype}`,
      );
    }
    const out = arrayFor(x.dtype, x.numel, false) as FloatArray;
    kern.layerNormBackward(g.data as FloatArray, x.data as FloatArray, out, rows, n, epsFor(x, eps));
    return record(
      new Tensor(out, x.shape),
      "layerNormBackward",
      [g, x],
      (h, needs) => [needs[0] ? layerNormBackward(h, x, k, eps) : null, needs[1] ? xGrad(h, g, x, dims, eps) : null],
      [g, x],
    );
  },
);

function xGrad(h: Tensor, g: Tensor, x: Tensor, dims: number[], eps: number): Tensor {
  const m = (t: Tensor) => mean(t, dims, true);
  const c = sub(x, m(x));
  const v = m(mul(c, c));
  const r2 = div(1, add(v, eps));
  const xh = mul(c, sqrt(r2));
  const gm = m(g),
    hm = m(h);
  const a = m(mul(g, xh)),
    b = m(mul(h, xh));
  const cc = sub(m(mul(h, g)), mul(hm, gm));
  const inner = add(add(mul(xh, sub(cc, mul(mul(a, b), 3))), mul(b, sub(g, gm))), mul(a, sub(h, hm)));
  return mul(mul(r2, inner), -1);
}
