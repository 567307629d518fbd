import * as kern from "../kernels/gelu.js";
import type { GeluApproximate } from "../kernels/gelu.js";
import { type FloatArray, arrayFor } from "../tensor/dtype.js";
import { Tensor } from "../tensor/tensor.js";
import { add, exp, mul, sub } from "./elementwise.js";
import { sameShape, tanh } from "./activations.js";
import { dataAs, defineOp, floatDtypeOf, record } from "./op.js";

// GELU as one fused op from its input x, whose backward g·f'(x) and the backward's x-gradient
// gg·g·f''(x) are fused ops too (kernels/gelu.ts), so every order of derivative works and each is
// one pass. The third derivative, needed only past a double backward, is written with ops.

const K0 = Math.sqrt(2 / Math.PI);
const K1 = 0.044715;

function approximation(opts: { approximate?: GeluApproximate } | undefined, op: string): GeluApproximate {
  const a = opts?.approximate ?? "none";
  if (a !== "none" && a !== "tanh") throw new Error(`${op}: approximate must be 'none' or 'tanh', got '${String(a)}'`);
  return a;
}

function floatData(t: Tensor, dtype: "float32" | "float64"): FloatArray {
  return dataAs(t, dtype) as FloatArray;
}

/** GELU: x·Φ(x) exactly, or PyTorch's tanh approximation with `approximate: 'tanh'`. */
export const gelu = defineOp("gelu", (x: Tensor, opts: { approximate?: GeluApproximate } = {}): Tensor => {
  const a = approximation(opts, "gelu");
  const dtype = floatDtypeOf(x);
  const out = arrayFor(dtype, x.numel, false) as FloatArray;
  kern.geluForward(floatData(x, dtype), out, a);
  return record(new Tensor(out, x.shape), "gelu", [x], (g) => [geluBackward(g, x, { approximate: a })], [x]);
});

/** g·GELU'(x), GELU's backward from its input x, as an op (differentiable in g and x). */
export const geluBackward = defineOp(
  "geluBackward",
  (g: Tensor, x: Tensor, opts: { approximate?: GeluApproximate } = {}): Tensor => {
    const a = approximation(opts, "geluBackward");
    sameShape("geluBackward", "x", x, g);
    const dtype = floatDtypeOf(g);
    const out = arrayFor(dtype, g.numel, false) as FloatArray;
    kern.geluBackward(floatData(g, dtype), floatData(x, dtype), out, a);
    return record(
      new Tensor(out, x.shape),
      "geluBackward",
      [g, x],
      (h, n) => [
        n[0] ? geluBackward(h, x, { approximate: a }) : null,
        n[1] ? geluDoubleBackward(h, g, x, { approximate: a }) : null,
      ],
      [g, x],
    );
  },
);

/** gg·g·GELU''(x): the x-gradient of geluBackward(g, x) for an incoming gradient gg. */
export const geluDoubleBackward = defineOp(
  "geluDoubleBackward",
  (gg: Tensor, g: Tensor, x: Tensor, opts: { approximate?: GeluApproximate } = {}): Tensor => {
    const a = approximation(opts, "geluDoubleBackward");
    sameShape("geluDoubleBackward", "x", x, gg, g);
    const dtype = floatDtypeOf(g);
    const out = arrayFor(dtype, g.numel, false) as FloatArray;
    kern.geluDoubleBackward(floatData(gg, dtype), floatData(g, dtype), floatData(x, dtype), out, a);
    const o = { approximate: a };
    // symmetric in gg and g; ∂/∂x = gg·g·GELU'''(x)
    return record(
      new Tensor(out, x.shape),
      "geluDoubleBackward",
      [gg, g, x],
      (h, n) => [
        n[0] ? geluDoubleBackward(h, g, x, o) : null,
        n[1] ? geluDoubleBackward(h, gg, x, o) : null,
        n[2] ? mul(mul(mul(h, gg), g), a === "tanh" ? thirdTanh(x) : thirdExact(x)) : null,
      ],
      [gg, g, x],
    );
  },
);

// exact: f''' = φ(x)·(x³ - 4x)
function thirdExact(x: Tensor): Tensor {
  const x2 = mul(x, x);
  const pdf = mul(exp(mul(x2, -0.5)), 1 / Math.sqrt(2 * Math.PI));
  return mul(pdf, mul(x, sub(x2, 4)));
}

// tanh: with t, q = 1 - t², u' = K0(1 + 3K1x²), c = 6K0K1 and A = u' - x·t·u'² + c·x²/2 (f'' = q·A):
// f''' = q·(A' - 2·t·u'·A), A' = 2cx - t·u'² - x·q·u'³ - 2c·x²·t·u'
function thirdTanh(x: Tensor): Tensor {
  const c = 6 * K0 * K1;
  const x2 = mul(x, x);
  const t = tanh(mul(add(x, mul(mul(x2, x), K1)), K0));
  const q = sub(1, mul(t, t));
  const d1 = mul(add(mul(x2, 3 * K1), 1), K0);
  const d1sq = mul(d1, d1);
  const big = add(sub(d1, mul(mul(x, t), d1sq)), mul(x2, c / 2));
  const x2td1 = mul(mul(x2, t), d1);
  const dBig = sub(sub(sub(mul(x, 2 * c), mul(t, d1sq)), mul(mul(x, q), mul(d1sq, d1))), mul(x2td1, 2 * c));
  return mul(q, sub(dBig, mul(mul(mul(t, d1), big), 2)));
}
