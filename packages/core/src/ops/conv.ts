import { isFloat } from "../tensor/dtype.js";
import { fmtShape } from "../tensor/shape.js";
import type { Tensor } from "../tensor/tensor.js";
import { convolution } from "./convolution.js";
import { squeeze, unsqueeze } from "./shape.js";

// Window geometry, option parsing and conv1d/conv2d. The convolution (and average pooling with it)
// runs as fused ops over per-sample im2col kernels (ops/convolution.ts), whose gradients are again
// those ops.

/** Where the windows of a 2-D convolution or pooling lie; pairs are [height, width]. */
export interface Geometry {
  kernel: readonly [number, number];
  stride: readonly [number, number];
  /** Zeros before the first row and column; padding after them follows from `out`. */
  padding: readonly [number, number];
  dilation: readonly [number, number];
  /** Output rows and columns: positions past the input (right padding, ceil mode) read zeros. */
  out: readonly [number, number];
  groups: number;
}

export type Pair = number | readonly [number, number];
export type ConvPadding = Pair | "same" | "valid";

export interface Conv2dOptions {
  stride?: Pair;
  padding?: ConvPadding;
  dilation?: Pair;
  groups?: number;
}

/** A number or [h, w] as a checked pair of integers >= `min`; `what` names the setting in errors. */
export function pair(v: Pair, op: string, what: string, min: number): [number, number] {
  const p: [number, number] = typeof v === "number" ? [v, v] : [v[0], v[1]];
  if (
    !(Array.isArray(v) ? v.length === 2 : typeof v === "number") ||
    !p.every((x) => Number.isInteger(x) && x >= min)
  ) {
    throw new Error(`${op}: ${what} must be an integer >= ${min} or a pair of them, got ${JSON.stringify(v)}`);
  }
  return p;
}

/** floor((size + padBefore + padAfter - d(k-1) - 1)/s) + 1, as PyTorch's convolution. */
const outSize = (size: number, padTotal: number, k: number, s: number, d: number): number =>
  Math.floor((size + padTotal - d * (k - 1) - 1) / s) + 1;

function convGeometry(x: Tensor, weight: Tensor, opts: Conv2dOptions, op: string): Geometry {
  const [, c, h, w] = x.shape as [number, number, number, number];
  const groups = opts.groups ?? 1;
  const [cout, cin, kh, kw] = weight.shape as [number, number, number, number];
  if (!(Number.isInteger(groups) && groups > 0))
    throw new Error(`${op}: groups must be a positive integer, got ${groups}`);
  if (cin * groups !== c) {
    throw new Error(
      `${op}: weight ${fmtShape(weight.shape)} with groups=${groups} expects ${cin * groups} input channels, ` +
        `but the input ${fmtShape(x.shape)} has ${c}`,
    );
  }
  if (cout % groups !== 0) throw new Error(`${op}: ${cout} output channels are not divisible by groups=${groups}`);
  if (!(kh >= 1 && kw >= 1 && cout >= 1)) {
    throw new Error(`${op}: weight ${fmtShape(weight.shape)} needs at least one output channel and a non-empty kernel`);
  }
  const stride = pair(opts.stride ?? 1, op, "stride", 1);
  const dilation = pair(opts.dilation ?? 1, op, "dilation", 1);
  const padOpt = opts.padding ?? 0;
  let before: [number, number];
  let total: [number, number];
  if (padOpt === "same") {
    if (stride[0] !== 1 || stride[1] !== 1) {
      throw new Error(`${op}: padding='same' is not supported for strided convolutions (stride ${fmtShape(stride)})`);
    }
    // Total padding d(k-1) keeps the size; an odd total puts the extra zero after, as PyTorch does.
    total = [dilation[0] * (kh - 1), dilation[1] * (kw - 1)];
    before = [Math.floor(total[0] / 2), Math.floor(total[1] / 2)];
  } else if (padOpt === "valid") {
    before = total = [0, 0];
  } else {
    before = pair(padOpt, op, "padding", 0);
    total = [2 * before[0], 2 * before[1]];
  }
  const out: [number, number] = [
    outSize(h, total[0], kh, stride[0], dilation[0]),
    outSize(w, total[1], kw, stride[1], dilation[1]),
  ];
  if (out[0] < 1 || out[1] < 1) {
    throw new Error(
      `${op}: calculated output size ${out[0]}x${out[1]} is too small for input ${h}x${w} ` +
        `(kernel ${kh}x${kw}, stride ${fmtShape(stride)}, padding ${JSON.stringify(padOpt)}, ` +
        `dilation ${fmtShape(dilation)})`,
    );
  }
  return { kernel: [kh, kw], stride, padding: before, dilation, out, groups };
}

function checkOperands(x: Tensor, weight: Tensor, bias: Tensor | null, op: string, spatial: number): void {
  if (!isFloat(x.dtype)) throw new Error(`${op}: expected a floating point input, got ${x.dtype}`);
  if (weight.dtype !== x.dtype || (bias && bias.dtype !== x.dtype)) {
    throw new Error(
      `${op}: input (${x.dtype}), weight (${weight.dtype})${bias ? ` and bias (${bias.dtype})` : ""} ` +
        "must have the same dtype",
    );
  }
  if (weight.ndim !== spatial + 2) {
    throw new Error(`${op}: expected a ${spatial + 2}-D weight, got ${fmtShape(weight.shape)}`);
  }
  if (x.ndim !== spatial + 2) {
    throw new Error(
      `${op}: expected a ${spatial + 1}-D (unbatched) or ${spatial + 2}-D (batched) input, got ${fmtShape(x.shape)}`,
    );
  }
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== weight.shape[0])) {
    throw new Error(`${op}: bias ${fmtShape(bias.shape)} must be [${weight.shape[0]}], one per output channel`);
  }
}

/**
 * 2-D convolution (cross-correlation, as PyTorch's conv2d) of x [N, C_in, H, W] (or unbatched
 * [C_in, H, W]) with weight [C_out, C_in/groups, kH, kW]; output size
 * floor((H + 2p - d(k-1) - 1)/s) + 1 per spatial dim.
 * ```ts
 * const y = F.conv2d(x, w, b, { stride: 2, padding: 1 });
 * ```
 */
export function conv2d(input: Tensor, weight: Tensor, bias: Tensor | null = null, opts: Conv2dOptions = {}): Tensor {
  return convolve(input, weight, bias, opts, "conv2d");
}

function convolve(input: Tensor, weight: Tensor, bias: Tensor | null, opts: Conv2dOptions, op: string): Tensor {
  const unbatched = input.ndim === 3;
  const x = unbatched ? unsqueeze(input, 0) : input;
  checkOperands(x, weight, bias, op, 2);
  const geo = convGeometry(x, weight, opts, op);
  // Fused kernels (ops/convolution.ts): per-sample im2col in scratch, NCHW out, no batch-sized copies.
  const y = convolution(x, weight, bias, geo);
  return unbatched ? squeeze(y, 0) : y;
}

export interface Conv1dOptions {
  stride?: number;
  padding?: number | "same" | "valid";
  dilation?: number;
  groups?: number;
}

/**
 * 1-D convolution of x [N, C_in, L] (or [C_in, L]) with weight [C_out, C_in/groups, k]: conv2d on a
 * height-1 view, sharing storage.
 */
export function conv1d(input: Tensor, weight: Tensor, bias: Tensor | null = null, opts: Conv1dOptions = {}): Tensor {
  if (input.ndim !== 2 && input.ndim !== 3) {
    throw new Error(`conv1d: expected a 2-D (unbatched) or 3-D (batched) input, got ${fmtShape(input.shape)}`);
  }
  if (weight.ndim !== 3) throw new Error(`conv1d: expected a 3-D weight, got ${fmtShape(weight.shape)}`);
  const c = input.shape[input.ndim - 2]!;
  if (weight.shape[1]! * (opts.groups ?? 1) !== c) {
    throw new Error(
      `conv1d: weight ${fmtShape(weight.shape)} with groups=${opts.groups ?? 1} expects ` +
        `${weight.shape[1]! * (opts.groups ?? 1)} input channels, but the input ${fmtShape(input.shape)} has ${c}`,
    );
  }
  const { stride = 1, padding = 0, dilation = 1, groups = 1 } = opts;
  for (const [what, v] of [
    ["stride", stride],
    ["dilation", dilation],
  ] as const) {
    if (!(Number.isInteger(v) && v >= 1)) throw new Error(`conv1d: ${what} must be an integer >= 1, got ${v}`);
  }
  if (typeof padding === "number" && !(Number.isInteger(padding) && padding >= 0)) {
    throw new Error(`conv1d: padding must be an integer >= 0, 'same' or 'valid', got ${padding}`);
  }
  const y = convolve(
    unsqueeze(input, -2),
    unsqueeze(weight, -2),
    bias,
    {
      stride: [1, stride],
      padding: typeof padding === "number" ? [0, padding] : padding,
      dilation: [1, dilation],
      groups,
    },
    "conv1d",
  );
  return squeeze(y, -2);
}
