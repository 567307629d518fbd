import { noGrad } from "../autograd/grad-mode.js";
import { type Generator, defaultGenerator } from "../tensor/random.js";
import type { Tensor } from "../tensor/tensor.js";

// Initialisers follow torch.nn.init: the same formulas for bounds and standard deviations, drawing
// from the seeded default generator (or the one given).

export type Nonlinearity = "linear" | "conv2d" | "sigmoid" | "tanh" | "relu" | "leaky_relu" | "selu";

export function calculateGain(nonlinearity: Nonlinearity, param?: number): number {
  switch (nonlinearity) {
    case "linear":
    case "conv2d":
    case "sigmoid":
      return 1;
    case "tanh":
      return 5 / 3;
    case "relu":
      return Math.SQRT2;
    case "leaky_relu": {
      const a = param ?? 0.01;
      return Math.sqrt(2 / (1 + a * a));
    }
    case "selu":
      return 3 / 4;
    default:
      throw new Error(`calculateGain: unsupported nonlinearity '${String(nonlinearity)}'`);
  }
}

/** fan_in and fan_out of a weight of shape [out, in, ...receptive field]. */
export function calculateFans(t: Tensor): [number, number] {
  if (t.ndim < 2)
    throw new Error(
      "init: fan in and fan out can not be computed for a tensor with fewer than 2 dimensions " +
        `(shape [${t.shape.join(", ")}])`,
    );
  const receptive = t.shape.slice(2).reduce((a, b) => a * b, 1);
  return [t.shape[1]! * receptive, t.shape[0]! * receptive];
}

const fill = (t: Tensor, draw: () => number): Tensor =>
  noGrad(() => {
    for (let i = 0; i < t.numel; i++) t.data[i] = draw();
    t._bumpVersion();
    return t;
  });

export const uniform_ = (t: Tensor, a = 0, b = 1, g: Generator = defaultGenerator) =>
  fill(t, () => a + (b - a) * g.random());
export const normal_ = (t: Tensor, mean = 0, std = 1, g: Generator = defaultGenerator) =>
  fill(t, () => mean + std * g.normal());
export const constant_ = (t: Tensor, value: number) => fill(t, () => value);
export const zeros_ = (t: Tensor) => constant_(t, 0);
export const ones_ = (t: Tensor) => constant_(t, 1);

export function xavierUniform_(t: Tensor, gain = 1, g: Generator = defaultGenerator): Tensor {
  const [fanIn, fanOut] = calculateFans(t);
  const a = gain * Math.sqrt(6 / (fanIn + fanOut));
  return uniform_(t, -a, a, g);
}

export function xavierNormal_(t: Tensor, gain = 1, g: Generator = defaultGenerator): Tensor {
  const [fanIn, fanOut] = calculateFans(t);
  return normal_(t, 0, gain * Math.sqrt(2 / (fanIn + fanOut)), g);
}

export interface KaimingOptions {
  a?: number;
  mode?: "fan_in" | "fan_out";
  nonlinearity?: Nonlinearity;
  generator?: Generator;
}

function kaimingStd(t: Tensor, opts: KaimingOptions): number {
  const [fanIn, fanOut] = calculateFans(t);
  const fan = (opts.mode ?? "fan_in") === "fan_in" ? fanIn : fanOut;
  return calculateGain(opts.nonlinearity ?? "leaky_relu", opts.a ?? 0) / Math.sqrt(fan);
}

export function kaimingUniform_(t: Tensor, opts: KaimingOptions = {}): Tensor {
  const bound = Math.sqrt(3) * kaimingStd(t, opts);
  return uniform_(t, -bound, bound, opts.generator);
}

export function kaimingNormal_(t: Tensor, opts: KaimingOptions = {}): Tensor {
  return normal_(t, 0, kaimingStd(t, opts), opts.generator);
}
