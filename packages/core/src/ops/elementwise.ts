import { binaryKernel, unaryKernel } from "../kernels/elementwise.js";
import {
  type DType,
  type FloatArray,
  type TypedArray,
  arrayFor,
  getDefaultDtype,
  isFloat,
  resultType,
} from "../tensor/dtype.js";
import * as fused from "../kernels/fused.js";
import type { BinaryLayout } from "../kernels/fused.js";
import { broadcastShapes, broadcastStrides, numelOf, shapeEq } from "../tensor/shape.js";
import { Tensor, isTensor } from "../tensor/tensor.js";
import { type TensorLike, dataAs, defineOp, floatDtypeOf, operands, record, scalarTensor, toTensor } from "./op.js";
import { sigmoid } from "./activations.js";
import { sumTo } from "./reduce.js";
import { broadcastData } from "./shape.js";

/** Runs a generated broadcasting kernel: inputs are converted to `dtype`, the result has `outDtype`. */
export function broadcastBinary(
  name: string,
  expr: string,
  x: Tensor,
  y: Tensor,
  dtype: DType,
  outDtype: DType = dtype,
): Tensor {
  const shape = shapeEq(x.shape, y.shape) ? x.shape : broadcastShapes(x.shape, y.shape, name);
  const out = arrayFor(outDtype, numelOf(shape), false);
  if (outDtype === "float32" && x.dtype === "float32" && y.dtype === "float32" && simdBinary(name, x, y, shape, out))
    return new Tensor(out, shape);
  const k = binaryKernel(expr, `${dtype}->${outDtype}`);
  const xs = shapeEq(x.shape, shape) ? null : broadcastStrides(x.shape, shape);
  const ys = shapeEq(y.shape, shape) ? null : broadcastStrides(y.shape, shape);
  k(dataAs(x, dtype), dataAs(y, dtype), out, shape, xs, ys);
  return new Tensor(out, shape);
}

/**
 * add, sub and mul over float32 by the SIMD kernel where it serves the shapes and operands (same
 * bits): the output seen as rows of n floats, each operand the whole output, one row repeated over
 * the rows (a shape equal to the output's trailing dims, leading 1s aside: a bias, a position
 * embedding [T, d] under [N, T, d]), or a scalar.
 */
function simdBinary(name: string, x: Tensor, y: Tensor, shape: readonly number[], out: TypedArray): boolean {
  if (name !== "add" && name !== "sub" && name !== "mul") return false;
  const numel = out.length;
  if (numel === 0) return false;
  const trailing = (t: Tensor): boolean => {
    const dims = t.shape.slice(t.shape.findIndex((d) => d !== 1));
    return dims.length > 0 && shapeEq(dims, shape.slice(shape.length - dims.length));
  };
  const kind = (t: Tensor): BinaryLayout | null =>
    shapeEq(t.shape, shape) ? "full" : t.numel === 1 ? "scalar" : trailing(t) ? "row" : null;
  const xl = kind(x),
    yl = kind(y);
  if (xl === null || yl === null) return false;
  const n = xl === "row" ? x.numel : yl === "row" ? y.numel : shape.length === 0 ? 1 : shape[shape.length - 1]!;
  if (n === 0 || (xl === "row" && yl === "row" && x.numel !== y.numel)) return false;
  const [xd, yd, od] = [x.data, y.data, out] as Float32Array[];
  return fused.binaryInWasm(name, xd!, xl, yd!, yl, od!, numel / n, n);
}

export function mapUnary(expr: string, x: Tensor, dtype: DType, outDtype: DType = dtype, p0 = 0, p1 = 0): Tensor {
  const out = arrayFor(outDtype, x.numel, false);
  unaryKernel(expr, `${dtype}->${outDtype}`)(dataAs(x, dtype), out, p0, p1);
  return new Tensor(out, x.shape);
}

/** Gradient of one operand of a broadcast op, summed back to its shape and cast to its dtype. */
const back = (g: Tensor, x: Tensor): Tensor => {
  const s = sumTo(g, x.shape);
  return s.dtype === x.dtype ? s : to(s, x.dtype);
};

export const add = defineOp("add", (a: TensorLike, b: TensorLike, alpha = 1): Tensor => {
  const [x, y0] = operands(a, b, "add");
  const y = alpha === 1 ? y0 : mul(y0, alpha);
  const out = broadcastBinary("add", "x + y", x, y, resultType(x, y));
  return record(out, "add", [x, y], (g, n) => [n[0] ? back(g, x) : null, n[1] ? back(g, y) : null]);
});

export const sub = defineOp("sub", (a: TensorLike, b: TensorLike, alpha = 1): Tensor => {
  const [x, y0] = operands(a, b, "sub");
  const y = alpha === 1 ? y0 : mul(y0, alpha);
  const out = broadcastBinary("sub", "x - y", x, y, resultType(x, y));
  return record(out, "sub", [x, y], (g, n) => [n[0] ? back(g, x) : null, n[1] ? back(neg(g), y) : null]);
});

// d(a·b) = b·da + a·db
export const mul = defineOp("mul", (a: TensorLike, b: TensorLike): Tensor => {
  const [x, y] = operands(a, b, "mul");
  const out = broadcastBinary("mul", "x * y", x, y, resultType(x, y));
  return record(out, "mul", [x, y], (g, n) => [n[0] ? back(mul(g, y), x) : null, n[1] ? back(mul(g, x), y) : null], [
    x,
    y,
  ]);
});

// d(a/b) = da/b - a·db/b²; integer division is true division, as in PyTorch.
export const div = defineOp("div", (a: TensorLike, b: TensorLike): Tensor => {
  const [x, y] = operands(a, b, "div");
  let dtype = resultType(x, y);
  if (!isFloat(dtype)) dtype = getDefaultDtype();
  const out = broadcastBinary("div", "x / y", x, y, dtype);
  return record(
    out,
    "div",
    [x, y],
    (g, n) => [n[0] ? back(div(g, y), x) : null, n[1] ? back(neg(div(mul(g, x), mul(y, y))), y) : null],
    [x, y],
  );
});

// d(a^b) = b·a^(b-1)·da + a^b·ln(a)·db
export const pow = defineOp("pow", (a: TensorLike, b: TensorLike): Tensor => {
  if (typeof b === "number" && b !== 0 && isTensor(a) && isFloat(a.dtype)) return powScalar(a, b);
  const [x, y] = operands(a, b, "pow");
  const out = broadcastBinary("pow", "x ** y", x, y, resultType(x, y));
  return record(
    out,
    "pow",
    [x, y],
    (g, n) => [
      n[0] ? back(where(y.eq(0), 0, mul(g, mul(y, pow(x, sub(y, 1))))), x) : null,
      n[1] ? back(mul(g, mul(pow(x, y), log(where(x.gt(0), x, 1)))), y) : null,
    ],
    [x, y],
  );
});

/**
 * x^p for a float tensor and a constant, nonzero exponent: d = p·x^(p-1)·dx, without the masks and
 * the exponent's gradient a tensor exponent needs. x² is x·x (the SIMD multiply on wasm operands;
 * the same bits as x ** 2, whose exact float64 value rounds once), and its gradient 2x·dx.
 */
function powScalar(x: Tensor, p: number): Tensor {
  const out =
    p === 2
      ? broadcastBinary("mul", "x * y", x, x, x.dtype)
      : broadcastBinary("pow", "x ** y", x, scalarTensor(p, x.dtype), x.dtype);
  return record(out, "pow", [x], (g) => [mul(g, p === 2 ? mul(x, 2) : p === 1 ? 1 : mul(pow(x, p - 1), p))], [x]);
}

export const neg = defineOp("neg", (a: TensorLike): Tensor => {
  const x = toTensor(a, "neg");
  return record(mapUnary("-x", x, x.dtype), "neg", [x], (g) => [neg(g)]);
});

function floatUnary(
  name: string,
  expr: string,
  a: TensorLike,
  grad: (g: Tensor, x: Tensor, out: Tensor) => Tensor,
): Tensor {
  const x = toTensor(a, name);
  const dtype = floatDtypeOf(x);
  const out = mapUnary(expr, x, dtype);
  // exp and sqrt differentiate through their output: it is saved too, so an
  // in-place change to it before backward is caught.
  return record(out, name, [x], (g) => [grad(g, x, out)], [x, out]);
}

export const exp = defineOp("exp", (a: TensorLike) => floatUnary("exp", "Math.exp(x)", a, (g, _x, out) => mul(g, out)));
export const log = defineOp("log", (a: TensorLike) => floatUnary("log", "Math.log(x)", a, (g, x) => div(g, x)));
export const log1p = defineOp("log1p", (a: TensorLike) =>
  floatUnary("log1p", "Math.log1p(x)", a, (g, x) => div(g, add(x, 1))),
);
export const sqrt = defineOp("sqrt", (a: TensorLike) =>
  floatUnary("sqrt", "Math.sqrt(x)", a, (g, _x, out) => div(g, mul(out, 2))),
);
// tanh and sigmoid are fused ops with fused backward and double backward (activations.ts).
export { tanh, sigmoid } from "./activations.js";
// d erf(x) = 2/sqrt(pi) · exp(-x²)
export const erf = defineOp("erf", (a: TensorLike) =>
  floatUnary("erf", "erf(x)", a, (g, x) => mul(g, mul(exp(neg(mul(x, x))), 1.1283791670955126))),
);

export const abs = defineOp("abs", (a: TensorLike): Tensor => {
  const x = toTensor(a, "abs");
  return record(mapUnary("Math.abs(x)", x, x.dtype), "abs", [x], (g) => [mul(g, sign(x))], [x]);
});

/** Sign as -1, 0 or 1 (not differentiable: its gradient is zero almost everywhere). */
export function sign(a: TensorLike): Tensor {
  const x = toTensor(a, "sign");
  return mapUnary("x > 0 ? 1 : x < 0 ? -1 : x", x, x.dtype);
}

export const relu = defineOp("relu", (a: TensorLike): Tensor => {
  const x = toTensor(a, "relu");
  if (!isFloat(x.dtype)) return mapUnary("x <= 0 ? 0 : x", x, x.dtype);
  const out = arrayFor(x.dtype, x.numel, false) as FloatArray;
  fused.reluForward(x.data as FloatArray, out);
  return record(new Tensor(out, x.shape), "relu", [x], (g) => [reluGrad(g, x)], [x]);
});

/** g where x > 0, else 0: relu's backward as an op, so it is differentiable again (in g). */
export const reluGrad = defineOp("reluGrad", (g: Tensor, x: Tensor): Tensor => {
  const out = arrayFor(g.dtype, g.numel, false) as FloatArray;
  fused.reluBackward(g.data as FloatArray, dataAs(x, g.dtype) as FloatArray, out);
  return record(new Tensor(out, g.shape), "reluGrad", [g], (gg) => [reluGrad(gg, x)], [x]);
});

/** log(1 + exp(beta·x)) / beta, linear above `threshold` as in PyTorch; d/dx = sigmoid(beta·x). */
export const softplus = defineOp("softplus", (a: TensorLike, beta = 1, threshold = 20): Tensor => {
  const x = toTensor(a, "softplus");
  const expr = "(x * p0 > p1) ? x : (Math.max(x * p0, 0) + Math.log1p(Math.exp(-Math.abs(x * p0)))) / p0";
  const out = mapUnary(expr, x, floatDtypeOf(x), floatDtypeOf(x), beta, threshold);
  // Above the threshold the forward is the identity, so the gradient there is exactly 1.
  return record(
    out,
    "softplus",
    [x],
    (g) => {
      const bx = mul(x, beta);
      return [mul(g, where(bx.gt(threshold), 1, sigmoid(bx)))];
    },
    [x],
  );
});

// Ties send half of the gradient to each side, as PyTorch does.
function extremum(name: "maximum" | "minimum", a: TensorLike, b: TensorLike): Tensor {
  const [x, y] = operands(a, b, name);
  const expr = name === "maximum" ? "(x > y || x !== x) ? x : y" : "(x < y || x !== x) ? x : y";
  const out = broadcastBinary(name, expr, x, y, resultType(x, y));
  return record(
    out,
    name,
    [x, y],
    (g, n) => {
      const wins = name === "maximum" ? x.gt(y) : x.lt(y);
      const wx = add(wins, mul(x.eq(y), 0.5));
      return [n[0] ? back(mul(g, wx), x) : null, n[1] ? back(mul(g, sub(1, wx)), y) : null];
    },
    [x, y],
  );
}
export const maximum = defineOp("maximum", (a: TensorLike, b: TensorLike) => extremum("maximum", a, b));
export const minimum = defineOp("minimum", (a: TensorLike, b: TensorLike) => extremum("minimum", a, b));

/** Clamps into [min, max] (either may be omitted); the gradient passes where min <= x <= max. */
export const clamp = defineOp("clamp", (a: TensorLike, min?: number | null, max?: number | null): Tensor => {
  const x = toTensor(a, "clamp");
  if ((min === undefined || min === null) && (max === undefined || max === null)) {
    throw new Error("clamp: at least one of min and max must be given");
  }
  const lo = min ?? -Infinity,
    hi = max ?? Infinity;
  const out = mapUnary("x < p0 ? p0 : x > p1 ? p1 : x", x, x.dtype, x.dtype, lo, hi);
  return record(
    out,
    "clamp",
    [x],
    (g) => [mul(g, mapUnary("x >= p0 && x <= p1 ? 1 : 0", x, x.dtype, x.dtype, lo, hi))],
    [x],
  );
});

/** Picks from `a` where `cond` is true, else from `b`, with broadcasting over all three. */
export const where = defineOp("where", (cond: Tensor, a: TensorLike, b: TensorLike): Tensor => {
  const [x, y] = operands(a, b, "where");
  const dtype = resultType(x, y);
  const shape = broadcastShapes(broadcastShapes(cond.shape, x.shape, "where"), y.shape, "where");
  const c = cond.dtype === "bool" ? cond : cond.ne(0);
  const cd = broadcastData(c, shape),
    xd = broadcastData(x, shape, dtype),
    yd = broadcastData(y, shape, dtype);
  const out = arrayFor(dtype, numelOf(shape), false);
  for (let i = 0; i < out.length; i++) out[i] = cd[i] !== 0 ? xd[i]! : yd[i]!;
  return record(
    new Tensor(out, shape),
    "where",
    [x, y],
    (g, n) => [n[0] ? back(where(c, g, 0), x) : null, n[1] ? back(where(c, 0, g), y) : null],
    [c],
  );
});

/** Converts to another dtype; differentiable between float types. */
export const to = defineOp("to", (a: Tensor, dtype: DType): Tensor => {
  if (a.dtype === dtype) return a;
  const out = new Tensor(dataAs(a, dtype), a.shape);
  if (!isFloat(dtype)) return out;
  return record(out, "to", [a], (g) => [to(g, a.dtype)]);
});

export const clone = defineOp("clone", (a: Tensor): Tensor => {
  return record(new Tensor(a.data.slice(), a.shape), "clone", [a], (g) => [g]);
});
