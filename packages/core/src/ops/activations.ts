import * as act from "../kernels/activations.js";
import { type FloatArray, arrayFor } from "../tensor/dtype.js";
import { fmtShape } from "../tensor/shape.js";
import { Tensor } from "../tensor/tensor.js";
import { mul } from "./elementwise.js";
import { type TensorLike, dataAs, defineOp, floatDtypeOf, record, toTensor } from "./op.js";

// tanh and sigmoid as fused ops whose backward and double backward are fused ops too
// (kernels/activations.ts: one SIMD pass each in the step region), so a double backward through
// them (a gradient penalty) makes one tensor per derivative instead of a chain of elementwise ops.
// Both differentiate through their output y, which is saved (an in-place change to it before
// backward is caught):
//   tanh:    dx = g·(1 - y²),  and  ∂(g·(1 - y²))/∂y = -2·g·y
//   sigmoid: dx = g·y·(1 - y), and ∂(g·y·(1 - y))/∂y = g·(1 - 2y)

type Kernel2 = (a: FloatArray, b: FloatArray, out: FloatArray) => void;
type Kernel3 = (a: FloatArray, b: FloatArray, c: FloatArray, out: FloatArray) => void;

function forward(name: string, kernel: (x: FloatArray, out: FloatArray) => void, a: TensorLike) {
  const x = toTensor(a, name);
  const dtype = floatDtypeOf(x);
  const out = arrayFor(dtype, x.numel, false) as FloatArray;
  kernel(dataAs(x, dtype) as FloatArray, out);
  return { x, y: new Tensor(out, x.shape) };
}

/** Throws unless every gradient has the shape of y (the backward ops do not broadcast). */
export function sameShape(name: string, label: string, y: Tensor, ...ts: Tensor[]): void {
  for (const t of ts) {
    if (t.shape.length !== y.shape.length || t.shape.some((s, i) => s !== y.shape[i])) {
      throw new Error(`${name}: gradient ${fmtShape(t.shape)} must have the shape of ${label} ${fmtShape(y.shape)}`);
    }
  }
}

function run2(name: string, kernel: Kernel2, g: Tensor, y: Tensor): Tensor {
  sameShape(name, "y", y, g);
  const dtype = floatDtypeOf(g);
  const out = arrayFor(dtype, g.numel, false) as FloatArray;
  kernel(dataAs(g, dtype) as FloatArray, dataAs(y, dtype) as FloatArray, out);
  return new Tensor(out, y.shape);
}

function run3(name: string, kernel: Kernel3, gg: Tensor, g: Tensor, y: Tensor): Tensor {
  sameShape(name, "y", y, gg, g);
  const dtype = floatDtypeOf(g);
  const out = arrayFor(dtype, g.numel, false) as FloatArray;
  kernel(dataAs(gg, dtype) as FloatArray, dataAs(g, dtype) as FloatArray, dataAs(y, dtype) as FloatArray, out);
  return new Tensor(out, y.shape);
}

export const tanh = defineOp("tanh", (a: TensorLike): Tensor => {
  const { x, y } = forward("tanh", act.tanhForward, a);
  return record(y, "tanh", [x], (g) => [tanhBackward(g, y)], [x, y]);
});

export const sigmoid = defineOp("sigmoid", (a: TensorLike): Tensor => {
  const { x, y } = forward("sigmoid", act.sigmoidForward, a);
  return record(y, "sigmoid", [x], (g) => [sigmoidBackward(g, y)], [x, y]);
});

/** g·(1 - y²): tanh's backward from its output y, as an op (differentiable in g and y). */
export const tanhBackward = defineOp("tanhBackward", (g: Tensor, y: Tensor): Tensor => {
  const out = run2("tanhBackward", act.tanhBackward, g, y);
  return record(
    out,
    "tanhBackward",
    [g, y],
    (h, needs) => [needs[0] ? tanhBackward(h, y) : null, needs[1] ? tanhDoubleBackward(h, g, y) : null],
    [g, y],
  );
});

/** -2·gg·g·y: the y-gradient of tanhBackward(g, y) for an incoming gradient gg. */
export const tanhDoubleBackward = defineOp("tanhDoubleBackward", (gg: Tensor, g: Tensor, y: Tensor): Tensor => {
  const out = run3("tanhDoubleBackward", act.tanhDoubleBackward, gg, g, y);
  // symmetric in gg and g; ∂/∂y = -2·gg·g
  return record(
    out,
    "tanhDoubleBackward",
    [gg, g, y],
    (h, n) => [
      n[0] ? tanhDoubleBackward(h, g, y) : null,
      n[1] ? tanhDoubleBackward(h, gg, y) : null,
      n[2] ? mul(mul(mul(h, gg), g), -2) : null,
    ],
    [gg, g, y],
  );
});

/** g·y·(1 - y): sigmoid's backward from its output y, as an op (differentiable in g and y). */
export const sigmoidBackward = defineOp("sigmoidBackward", (g: Tensor, y: Tensor): Tensor => {
  const out = run2("sigmoidBackward", act.sigmoidBackward, g, y);
  return record(
    out,
    "sigmoidBackward",
    [g, y],
    (h, needs) => [needs[0] ? sigmoidBackward(h, y) : null, needs[1] ? sigmoidDoubleBackward(h, g, y) : null],
    [g, y],
  );
});

/** gg·g·(1 - 2y): the y-gradient of sigmoidBackward(g, y) for an incoming gradient gg. */
export const sigmoidDoubleBackward = defineOp("sigmoidDoubleBackward", (gg: Tensor, g: Tensor, y: Tensor): Tensor => {
  const out = run3("sigmoidDoubleBackward", act.sigmoidDoubleBackward, gg, g, y);
  // symmetric in gg and g; ∂/∂y = -2·gg·g
  return record(
    out,
    "sigmoidDoubleBackward",
    [gg, g, y],
    (h, n) => [
      n[0] ? sigmoidDoubleBackward(h, g, y) : null,
      n[1] ? sigmoidDoubleBackward(h, gg, y) : null,
      n[2] ? mul(mul(mul(h, gg), g), -2) : null,
    ],
    [gg, g, y],
  );
});
