import { type ConvPadding, type Pair, conv1d, conv2d, pair } from "../ops/conv.js";
import { type AvgPool2dOptions, type MaxPool2dOptions, adaptiveAvgPool2d, avgPool2d, maxPool2d } from "../ops/pool.js";
import type { Tensor } from "../tensor/tensor.js";
import * as init from "./init.js";
import { Module, Parameter } from "./module.js";
import { empty } from "./util.js";

/** A Python tuple as PyTorch's repr writes it: (3,) or (3, 3). */
const tuple = (v: readonly number[]): string => (v.length === 1 ? `(${v[0]},)` : `(${v.join(", ")})`);
/** A size given as a number or a pair, shown as given (PyTorch keeps `kernel_size=2` as an int). */
const asGiven = (v: Pair): string => (typeof v === "number" ? String(v) : tuple(v));

interface ConvModuleOptions {
  groups?: number;
  bias?: boolean;
  dtype?: "float32" | "float64";
}

/** Shared by Conv1d and Conv2d: weight [out, in/groups, ...kernel], PyTorch's initialisation. */
abstract class ConvNd extends Module {
  weight: Tensor;
  bias: Tensor | null;
  readonly groups: number;

  protected constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    kernel: readonly number[],
    opts: ConvModuleOptions,
  ) {
    super();
    const name = new.target.name;
    const groups = opts.groups ?? 1;
    for (const [what, v] of [
      ["inChannels", inChannels],
      ["outChannels", outChannels],
      ["groups", groups],
    ] as const) {
      if (!(Number.isInteger(v) && v > 0)) throw new Error(`${name}: ${what} must be a positive integer, got ${v}`);
    }
    if (inChannels % groups !== 0)
      throw new Error(`${name}: inChannels (${inChannels}) must be divisible by groups (${groups})`);
    if (outChannels % groups !== 0)
      throw new Error(`${name}: outChannels (${outChannels}) must be divisible by groups (${groups})`);
    this.groups = groups;
    this.weight = Parameter(empty([outChannels, inChannels / groups, ...kernel], opts.dtype));
    this.bias = opts.bias === false ? null : Parameter(empty([outChannels], opts.dtype));
    this.resetParameters();
  }

  /** The weight from kaiming_uniform(a=√5), i.e. U(±1/√fan_in), fan_in = in/groups·kernel; the bias likewise. */
  resetParameters(): void {
    init.kaimingUniform_(this.weight, { a: Math.sqrt(5) });
    const [fanIn] = init.calculateFans(this.weight);
    const bound = 1 / Math.sqrt(fanIn);
    if (this.bias) init.uniform_(this.bias, -bound, bound);
  }

  protected reprOf(
    kernel: readonly number[],
    stride: readonly number[],
    padding: "same" | "valid" | readonly number[],
    dilation: readonly number[],
  ): string {
    let s = `${this.inChannels}, ${this.outChannels}, kernel_size=${tuple(kernel)}, stride=${tuple(stride)}`;
    if (typeof padding === "string") s += `, padding=${padding}`;
    else if (padding.some((p) => p !== 0)) s += `, padding=${tuple(padding)}`;
    if (dilation.some((d) => d !== 1)) s += `, dilation=${tuple(dilation)}`;
    if (this.groups !== 1) s += `, groups=${this.groups}`;
    if (!this.bias) s += ", bias=False";
    return s;
  }
}

/**
 * 2-D convolution layer over [N, C_in, H, W], as PyTorch's nn.Conv2d (zero padding).
 * ```ts
 * const conv = new nn.Conv2d(1, 8, 3, { padding: 1 }); // [N, 1, 28, 28] -> [N, 8, 28, 28]
 * ```
 */
export class Conv2d extends ConvNd {
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: ConvPadding;
  readonly dilation: [number, number];

  constructor(
    inChannels: number,
    outChannels: number,
    kernelSize: Pair,
    opts: ConvModuleOptions & { stride?: Pair; padding?: ConvPadding; dilation?: Pair } = {},
  ) {
    const kernel = pair(kernelSize, "Conv2d", "kernelSize", 1);
    super(inChannels, outChannels, kernel, opts);
    this.kernelSize = kernel;
    this.stride = pair(opts.stride ?? 1, "Conv2d", "stride", 1);
    this.dilation = pair(opts.dilation ?? 1, "Conv2d", "dilation", 1);
    const padding = opts.padding ?? 0;
    this.padding =
      typeof padding === "string"
        ? checkPaddingString(padding, this.stride, "Conv2d")
        : pair(padding, "Conv2d", "padding", 0);
  }

  forward(x: Tensor): Tensor {
    return conv2d(x, this.weight, this.bias, {
      stride: this.stride,
      padding: this.padding,
      dilation: this.dilation,
      groups: this.groups,
    });
  }

  override extraRepr(): string {
    const padding = typeof this.padding === "string" ? this.padding : pair(this.padding, "Conv2d", "padding", 0);
    return this.reprOf(this.kernelSize, this.stride, padding, this.dilation);
  }
}

function checkPaddingString(padding: string, stride: readonly number[], op: string): "same" | "valid" {
  if (padding !== "same" && padding !== "valid")
    throw new Error(`${op}: invalid padding string '${padding}', should be one of 'valid', 'same'`);
  if (padding === "same" && stride.some((s) => s !== 1))
    throw new Error(`${op}: padding='same' is not supported for strided convolutions`);
  return padding;
}

/** 1-D convolution layer over [N, C_in, L], as PyTorch's nn.Conv1d (zero padding). */
export class Conv1d extends ConvNd {
  readonly kernelSize: number;
  readonly stride: number;
  readonly padding: number | "same" | "valid";
  readonly dilation: number;

  constructor(
    inChannels: number,
    outChannels: number,
    kernelSize: number,
    opts: ConvModuleOptions & { stride?: number; padding?: number | "same" | "valid"; dilation?: number } = {},
  ) {
    const [k] = pair(kernelSize, "Conv1d", "kernelSize", 1);
    super(inChannels, outChannels, [k], opts);
    this.kernelSize = k;
    [this.stride] = pair(opts.stride ?? 1, "Conv1d", "stride", 1);
    [this.dilation] = pair(opts.dilation ?? 1, "Conv1d", "dilation", 1);
    const padding = opts.padding ?? 0;
    this.padding =
      typeof padding === "string"
        ? checkPaddingString(padding, [this.stride], "Conv1d")
        : pair(padding, "Conv1d", "padding", 0)[0];
  }

  forward(x: Tensor): Tensor {
    return conv1d(x, this.weight, this.bias, {
      stride: this.stride,
      padding: this.padding,
      dilation: this.dilation,
      groups: this.groups,
    });
  }

  override extraRepr(): string {
    const padding = typeof this.padding === "string" ? this.padding : [this.padding];
    return this.reprOf([this.kernelSize], [this.stride], padding, [this.dilation]);
  }
}

/** Max pooling over [N, C, H, W]; stride defaults to the kernel size. */
export class MaxPool2d extends Module {
  readonly stride: Pair;
  constructor(
    readonly kernelSize: Pair,
    readonly opts: MaxPool2dOptions = {},
  ) {
    super();
    pair(kernelSize, "MaxPool2d", "kernelSize", 1);
    this.stride = opts.stride ?? kernelSize;
  }
  forward(x: Tensor): Tensor {
    return maxPool2d(x, this.kernelSize, this.opts);
  }
  override extraRepr(): string {
    const { padding = 0, dilation = 1, ceilMode = false } = this.opts;
    return (
      `kernel_size=${asGiven(this.kernelSize)}, stride=${asGiven(this.stride)}, padding=${asGiven(padding)}, ` +
      `dilation=${asGiven(dilation)}, ceil_mode=${ceilMode ? "True" : "False"}`
    );
  }
}

/** Average pooling over [N, C, H, W]; stride defaults to the kernel size. */
export class AvgPool2d extends Module {
  readonly stride: Pair;
  constructor(
    readonly kernelSize: Pair,
    readonly opts: AvgPool2dOptions = {},
  ) {
    super();
    pair(kernelSize, "AvgPool2d", "kernelSize", 1);
    this.stride = opts.stride ?? kernelSize;
  }
  forward(x: Tensor): Tensor {
    return avgPool2d(x, this.kernelSize, this.opts);
  }
  override extraRepr(): string {
    const padding = asGiven(this.opts.padding ?? 0);
    return `kernel_size=${asGiven(this.kernelSize)}, stride=${asGiven(this.stride)}, padding=${padding}`;
  }
}

/** Average pooling to a fixed [oh, ow] whatever the input size (null keeps that dim's size). */
export class AdaptiveAvgPool2d extends Module {
  constructor(readonly outputSize: number | readonly [number | null, number | null]) {
    super();
  }
  forward(x: Tensor): Tensor {
    return adaptiveAvgPool2d(x, this.outputSize);
  }
  override extraRepr(): string {
    const o = this.outputSize;
    return `output_size=${typeof o === "number" ? o : `(${o.map((v) => v ?? "None").join(", ")})`}`;
  }
}
