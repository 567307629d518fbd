import {
  type PoolDims,
  maxPoolIndices,
  poolGather as kernelGather,
  poolScatter as kernelScatter,
} from "../kernels/pool.js";
import { type FloatArray, arrayFor, isFloat } from "../tensor/dtype.js";
import { fmtShape } from "../tensor/shape.js";
import { Tensor } from "../tensor/tensor.js";
import { type Geometry, type Pair, pair } from "./conv.js";
import { convolution } from "./convolution.js";
import { div } from "./elementwise.js";
import { gather } from "./indexing.js";
import { matmul } from "./linalg.js";
import { defineOp, record } from "./op.js";
import { reshape, squeeze, transpose, unsqueeze } from "./shape.js";

// Pooling is built from differentiable ops, so every order of gradient works:
// - max pooling finds each window's argmax (a kernel, SIMD for 2x2 windows), then gathers it:
//   poolGather's backward is poolScatter (the gradient routed to the argmax), whose backward is
//   poolGather again, both kernels over planes (kernels/pool.ts);
// - average pooling convolves each plane with a window of ones (backward: the convolution's input
//   gradient) and divides by the window sizes;
// - adaptive average pooling is linear and separable: P_h · x · P_wᵀ with averaging matrices.

export interface MaxPool2dOptions {
  /** Default: the kernel size. */
  stride?: Pair | null;
  padding?: Pair;
  dilation?: Pair;
  ceilMode?: boolean;
}

export interface AvgPool2dOptions {
  /** Default: the kernel size. */
  stride?: Pair | null;
  padding?: Pair;
  ceilMode?: boolean;
  /** Divide by the whole window, padding included (default), or only by the input elements in it. */
  countIncludePad?: boolean;
}

/**
 * PyTorch's pooling output size: floor (or ceil) of (size + 2p - d(k-1) - 1)/s, plus 1; in ceil
 * mode a last window that would start past the input and its left padding is dropped.
 */
function poolOutSize(size: number, k: number, s: number, p: number, d: number, ceilMode: boolean): number {
  let out = Math.floor((size + 2 * p - d * (k - 1) - 1 + (ceilMode ? s - 1 : 0)) / s) + 1;
  if (ceilMode && (out - 1) * s >= size + p) out--;
  return out;
}

function asBatched(x: Tensor, op: string): Tensor {
  if ((x.ndim !== 3 && x.ndim !== 4) || x.shape.slice(-3).some((d) => d === 0)) {
    throw new Error(
      `${op}: expected a 3-D [C, H, W] or 4-D [N, C, H, W] input with non-zero C, H and W, got ${fmtShape(x.shape)}`,
    );
  }
  return x.ndim === 3 ? unsqueeze(x, 0) : x;
}

function poolGeometry(
  x: Tensor,
  kernelSize: Pair,
  opts: MaxPool2dOptions,
  op: string,
): Geometry & { kernel: [number, number] } {
  const kernel = pair(kernelSize, op, "kernelSize", 1);
  const stride = pair(opts.stride ?? kernel, op, "stride", 1);
  const padding = pair(opts.padding ?? 0, op, "padding", 0);
  const dilation = pair(opts.dilation ?? 1, op, "dilation", 1);
  if (padding[0] > Math.floor(kernel[0] / 2) || padding[1] > Math.floor(kernel[1] / 2)) {
    throw new Error(`${op}: padding ${fmtShape(padding)} must be at most half of the kernel size ${fmtShape(kernel)}`);
  }
  const [h, w] = x.shape.slice(-2) as [number, number];
  const ceil = opts.ceilMode ?? false;
  const out: [number, number] = [
    poolOutSize(h, kernel[0], stride[0], padding[0], dilation[0], ceil),
    poolOutSize(w, kernel[1], stride[1], padding[1], dilation[1], ceil),
  ];
  if (out[0] < 1 || out[1] < 1) {
    throw new Error(
      `${op}: calculated output size ${out[0]}x${out[1]} is too small for input ${h}x${w} ` +
        `(kernel ${fmtShape(kernel)}, stride ${fmtShape(stride)}, padding ${fmtShape(padding)}, ` +
        `dilation ${fmtShape(dilation)})`,
    );
  }
  return { kernel, stride, padding, dilation, out, groups: 1 };
}

function poolDims(x: Tensor, geo: Geometry): PoolDims {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const [kh, kw] = geo.kernel,
    [sh, sw] = geo.stride,
    [ph, pw] = geo.padding,
    [dh, dw] = geo.dilation,
    [oh, ow] = geo.out;
  return { planes: n * c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow };
}

function checkPoolIndex(op: string, index: Tensor, planes: number, count: number): void {
  if (index.dtype !== "int32" || index.numel !== planes * count) {
    throw new Error(
      `${op}: index must be int32 with ${planes}x${count} entries, got ${index.dtype} ${fmtShape(index.shape)}`,
    );
  }
}

/**
 * y [N, C, ...outHW] with y[plane][o] = x[plane][index[plane][o]] for x [N, C, H, W] and int32
 * in-plane positions `index` (from the max-pooling kernel; -1 reads 0). Backward: poolScatter.
 */
export const poolGather = defineOp(
  "poolGather",
  (x: Tensor, index: Tensor, outHW: readonly [number, number]): Tensor => {
    const [n, c, h, w] = x.shape as [number, number, number, number];
    checkPoolIndex("poolGather", index, n * c, outHW[0] * outHW[1]);
    const y = arrayFor(x.dtype, index.numel, false) as FloatArray;
    kernelGather(x.data as FloatArray, index.data as Int32Array, y, n * c, h * w);
    return record(new Tensor(y, [n, c, outHW[0], outHW[1]]), "poolGather", [x], (g) => [
      poolScatter(g, index, x.shape),
    ]);
  },
);

/** The adjoint of poolGather: g [N, C, oh, ow] added at the positions `index` names in a zero [N, C, H, W]. */
export const poolScatter = defineOp("poolScatter", (g: Tensor, index: Tensor, xShape: readonly number[]): Tensor => {
  const [n, c, h, w] = xShape as [number, number, number, number];
  if (g.ndim !== 4 || g.shape[0] !== n || g.shape[1] !== c) {
    throw new Error(`poolScatter: gradient ${fmtShape(g.shape)} does not match the input ${fmtShape(xShape)}`);
  }
  checkPoolIndex("poolScatter", index, n * c, g.shape[2]! * g.shape[3]!);
  const dx = arrayFor(g.dtype, n * c * h * w, false) as FloatArray;
  kernelScatter(g.data as FloatArray, index.data as Int32Array, dx, n * c, h * w);
  const outHW: [number, number] = [g.shape[2]!, g.shape[3]!];
  return record(new Tensor(dx, [...xShape]), "poolScatter", [g], (gg) => [poolGather(gg, index, outHW)]);
});

/**
 * 2-D max pooling over x [N, C, H, W] (or [C, H, W]); padding is -∞ and at most half the kernel.
 * The gradient goes to each window's (first) maximum.
 * ```ts
 * const y = F.maxPool2d(x, 2); // [N, C, H/2, W/2]
 * ```
 */
export function maxPool2d(input: Tensor, kernelSize: Pair, opts: MaxPool2dOptions = {}): Tensor {
  const x = asBatched(input, "maxPool2d");
  if (input.dtype === "bool") throw new Error("maxPool2d: expected a numeric tensor, got bool");
  const geo = poolGeometry(x, kernelSize, opts, "maxPool2d");
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const [oh, ow] = geo.out;
  const float = isFloat(x.dtype);
  // Inside a step region the indices lie in wasm memory too (the SIMD kernels read them in place).
  const index = new Tensor(arrayFor("int32", n * c * oh * ow, false), [n * c, oh * ow]);
  maxPoolIndices(x.data as FloatArray, index.data as Int32Array, poolDims(x, geo));
  const y = float
    ? poolGather(x, index, geo.out)
    : reshape(gather(reshape(x, [n * c, h * w]), 1, index), [n, c, oh, ow]); // int32: the generic gather
  return input.ndim === 3 ? squeeze(y, 0) : y;
}

/** How many of the positions `start..start+k` count for one output along one dim (PyTorch's rule). */
function windowSizes(size: number, out: number, k: number, s: number, p: number, includePad: boolean): number[] {
  const sizes: number[] = [];
  for (let o = 0; o < out; o++) {
    const start = o * s - p;
    const end = Math.min(start + k, size + p);
    const inside = Math.min(end, size) - Math.max(start, 0);
    sizes.push(Math.max(1, includePad ? end - start : inside));
  }
  return sizes;
}

/**
 * 2-D average pooling over x [N, C, H, W] (or [C, H, W]). In ceil mode the last window may run
 * past the padding; that part never counts. `countIncludePad: false` divides by the input
 * elements in the window only.
 */
export function avgPool2d(input: Tensor, kernelSize: Pair, opts: AvgPool2dOptions = {}): Tensor {
  const x = asBatched(input, "avgPool2d");
  if (!isFloat(x.dtype)) throw new Error(`avgPool2d: expected a floating point tensor, got ${x.dtype}`);
  const geo = poolGeometry(x, kernelSize, opts, "avgPool2d");
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const [oh, ow] = geo.out;
  const includePad = opts.countIncludePad ?? true;
  const rows = windowSizes(h, oh, geo.kernel[0], geo.stride[0], geo.padding[0], includePad);
  const cols = windowSizes(w, ow, geo.kernel[1], geo.stride[1], geo.padding[1], includePad);
  const divisor = Tensor.empty([oh * ow], x.dtype);
  for (let i = 0; i < oh; i++) for (let j = 0; j < ow; j++) divisor.data[i * ow + j] = rows[i]! * cols[j]!;
  // Each plane as a one-channel image convolved with a window of ones: the window sums, on the
  // convolution kernels (per-sample scratch, no batch-sized im2col); backward: their input gradient.
  const ones = Tensor.empty([1, 1, geo.kernel[0], geo.kernel[1]], x.dtype);
  ones.data.fill(1);
  const sums = convolution(reshape(x, [n * c, 1, h, w]), ones, null, geo);
  const y = reshape(div(reshape(sums, [n * c, oh * ow]), divisor), [n, c, oh, ow]);
  return input.ndim === 3 ? squeeze(y, 0) : y;
}

/** [out, size] rows averaging the window floor(i·size/out) .. ceil((i+1)·size/out) of each output i. */
function averagingMatrix(size: number, out: number, dtype: "float32" | "float64"): Tensor {
  const m = Tensor.empty([out, size], dtype);
  for (let i = 0; i < out; i++) {
    const start = Math.floor((i * size) / out),
      end = Math.ceil(((i + 1) * size) / out);
    for (let j = start; j < end; j++) m.data[i * size + j] = 1 / (end - start);
  }
  return m;
}

/**
 * Average pooling to a fixed output size [oh, ow] (a number for both; null keeps the input's size),
 * windows as PyTorch's adaptive_avg_pool2d: output i averages floor(i·H/oh) .. ceil((i+1)·H/oh).
 */
export function adaptiveAvgPool2d(input: Tensor, outputSize: number | readonly [number | null, number | null]): Tensor {
  const x = asBatched(input, "adaptiveAvgPool2d");
  if (!isFloat(x.dtype)) throw new Error(`adaptiveAvgPool2d: expected a floating point tensor, got ${x.dtype}`);
  const [h, w] = x.shape.slice(-2) as [number, number];
  const requested = typeof outputSize === "number" ? [outputSize, outputSize] : outputSize;
  const size = [requested[0] ?? h, requested[1] ?? w] as [number, number];
  if (requested.length !== 2 || !size.every((v) => Number.isInteger(v) && v >= 1)) {
    throw new Error(
      `adaptiveAvgPool2d: outputSize must be a positive integer or a pair of them (null keeps a size), ` +
        `got ${JSON.stringify(outputSize)}`,
    );
  }
  const dtype = x.dtype as "float32" | "float64";
  // y = P_h · x · P_wᵀ, written as two products over the last dim: (x · P_wᵀ)ᵀ · P_hᵀ, transposed back.
  const alongW = matmul(x, transpose(averagingMatrix(w, size[1], dtype)));
  const y = transpose(matmul(transpose(alongW), transpose(averagingMatrix(h, size[0], dtype))));
  return input.ndim === 3 ? squeeze(y, 0) : y;
}
