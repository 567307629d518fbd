import { type ConvDims, convForward, convInputGrad, convWeightGrad } from "../kernels/conv.js";
import { type FloatArray, arrayFor, isFloat } from "../tensor/dtype.js";
import { fmtShape, numelOf } from "../tensor/shape.js";
import { Tensor } from "../tensor/tensor.js";
import type { Geometry } from "./conv.js";
import { defineOp, record } from "./op.js";
import { sum } from "./reduce.js";

// The 2-D convolution as three fused ops over the kernels of kernels/conv.ts, closed under
// differentiation. With y = conv(x, W) (bilinear in x and W), and adjoints
//   inputGrad(g, W)  = ∂⟨g, conv(x, W)⟩/∂x      weightGrad(g, x) = ∂⟨g, conv(x, W)⟩/∂W,
// every one of the three is bilinear, and the derivative of each is again one of them:
//   conv(x, W):          dx = inputGrad(g, W),      dW = weightGrad(g, x)
//   inputGrad(g, W):     dg = conv(gx, W),          dW = weightGrad(g, gx)   (gx: x-shaped upstream)
//   weightGrad(g, x):    dg = conv(x, gW),          dx = inputGrad(g, gW)    (gW: W-shaped upstream)
// from ⟨gx, inputGrad(g, W)⟩ = ⟨conv(gx, W), g⟩ = ⟨weightGrad(g, gx), W⟩ and its twin for W. So
// gradients of every order stay fused kernels, with no im2col matrix of the whole batch.

function dims(xShape: readonly number[], wShape: readonly number[], geo: Geometry): ConvDims {
  const [n, c, h, w] = xShape as [number, number, number, number];
  return {
    n,
    c,
    h,
    w,
    cout: wShape[0]!,
    kh: geo.kernel[0],
    kw: geo.kernel[1],
    sh: geo.stride[0],
    sw: geo.stride[1],
    ph: geo.padding[0],
    pw: geo.padding[1],
    dh: geo.dilation[0],
    dw: geo.dilation[1],
    oh: geo.out[0],
    ow: geo.out[1],
    groups: geo.groups,
  };
}

function checkShapes(op: string, xShape: readonly number[], wShape: readonly number[], geo: Geometry): void {
  const [c] = xShape.slice(1) as [number];
  const ok =
    xShape.length === 4 &&
    wShape.length === 4 &&
    wShape[1]! * geo.groups === c &&
    wShape[0]! % geo.groups === 0 &&
    wShape[2] === geo.kernel[0] &&
    wShape[3] === geo.kernel[1];
  if (!ok) {
    throw new Error(
      `${op}: input ${fmtShape(xShape)} and weight ${fmtShape(wShape)} do not fit ` +
        `kernel ${fmtShape(geo.kernel)} with groups=${geo.groups}`,
    );
  }
}

function checkDtypes(op: string, a: Tensor, b: Tensor): void {
  if (!isFloat(a.dtype) || a.dtype !== b.dtype) {
    throw new Error(`${op}: expected two floating point tensors of one dtype, got ${a.dtype} and ${b.dtype}`);
  }
}

function checkOutput(op: string, what: string, t: Tensor, expected: readonly number[]): void {
  if (t.ndim !== 4 || t.shape.some((v, i) => v !== expected[i])) {
    throw new Error(`${op}: ${what} ${fmtShape(t.shape)} does not match ${fmtShape(expected)}`);
  }
}

const outShape = (xShape: readonly number[], wShape: readonly number[], geo: Geometry): number[] => [
  xShape[0]!,
  wShape[0]!,
  geo.out[0],
  geo.out[1],
];

/** conv2d of x [N, C, H, W] with weight [C_out, C/groups, kh, kw] (+ bias [C_out]) over `geo`. */
export const convolution = defineOp(
  "convolution",
  (x: Tensor, w: Tensor, bias: Tensor | null, geo: Geometry): Tensor => {
    checkShapes("convolution", x.shape, w.shape, geo);
    checkDtypes("convolution", x, w);
    if (bias !== null) checkDtypes("convolution", x, bias);
    const shape = outShape(x.shape, w.shape, geo);
    const y = arrayFor(x.dtype, numelOf(shape), false) as FloatArray;
    const b = bias === null ? null : (bias.data as FloatArray);
    convForward(x.data as FloatArray, w.data as FloatArray, b, y, dims(x.shape, w.shape, geo));
    const inputs = bias === null ? [x, w] : [x, w, bias];
    return record(
      new Tensor(y, shape),
      "convolution",
      inputs,
      (g, needs) => [
        needs[0] ? convolutionInputGrad(g, w, geo, x.shape) : null,
        needs[1] ? convolutionWeightGrad(g, x, geo, w.shape) : null,
        needs[2] ? sum(g, [0, 2, 3]) : null,
      ],
      [x, w],
    );
  },
);

/** The gradient of `convolution` with respect to its input x (shape `xShape`), for output gradient g. */
export const convolutionInputGrad = defineOp(
  "convolutionInputGrad",
  (g: Tensor, w: Tensor, geo: Geometry, xShape: readonly number[]): Tensor => {
    checkShapes("convolutionInputGrad", xShape, w.shape, geo);
    checkDtypes("convolutionInputGrad", g, w);
    checkOutput("convolutionInputGrad", "gradient", g, outShape(xShape, w.shape, geo));
    const dx = arrayFor(g.dtype, numelOf(xShape), false) as FloatArray;
    convInputGrad(g.data as FloatArray, w.data as FloatArray, dx, dims(xShape, w.shape, geo));
    return record(
      new Tensor(dx, [...xShape]),
      "convolutionInputGrad",
      [g, w],
      (gx, needs) => [
        needs[0] ? convolution(gx, w, null, geo) : null,
        needs[1] ? convolutionWeightGrad(g, gx, geo, w.shape) : null,
      ],
      [g, w],
    );
  },
);

/** The gradient of `convolution` with respect to its weight (shape `wShape`), for output gradient g. */
export const convolutionWeightGrad = defineOp(
  "convolutionWeightGrad",
  (g: Tensor, x: Tensor, geo: Geometry, wShape: readonly number[]): Tensor => {
    checkShapes("convolutionWeightGrad", x.shape, wShape, geo);
    checkDtypes("convolutionWeightGrad", g, x);
    checkOutput("convolutionWeightGrad", "gradient", g, outShape(x.shape, wShape, geo));
    const dw = arrayFor(g.dtype, numelOf(wShape), false) as FloatArray;
    convWeightGrad(g.data as FloatArray, x.data as FloatArray, dw, dims(x.shape, wShape, geo));
    return record(
      new Tensor(dw, [...wShape]),
      "convolutionWeightGrad",
      [g, x],
      (gw, needs) => [
        needs[0] ? convolution(x, gw, null, geo) : null,
        needs[1] ? convolutionInputGrad(g, gw, geo, x.shape) : null,
      ],
      [g, x],
    );
  },
);
