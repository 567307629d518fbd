import { type Tensor, nn, tensor } from "@threadgrad/core";
import { sequenceCrossEntropy } from "./sequence-loss.js";
import { Gpt, type GptModelSpec, gptParameterShapes } from "./gpt.js";

export type { GptModelSpec } from "./gpt.js";

/** A model: a built-in spec, or a module that exports a factory returning an `nn.Module`. */
export type ModelSpec =
  | { kind: "mlp"; sizes: number[]; activation?: "relu" | "tanh" | "gelu"; dropout?: number }
  | ImageModelSpec
  | GptModelSpec
  | { module: string | URL; export?: string; args?: unknown[] };

/** A built-in image classifier over [N, inChannels, height, width] samples (or the same flattened). */
export interface ImageModelSpec {
  kind: "cnn" | "lenet5";
  inChannels: number;
  height: number;
  width: number;
  classes: number;
  /**
   * Never set: an image model's layer widths follow from its input and class sizes. Declared so code
   * that reads an mlp's `sizes` from any built-in spec sees `undefined` here (no width to check).
   */
  sizes?: undefined;
}

/** Built-in model kinds, as a checkpoint's `config.model.kind` may name them. */
export const MODEL_KINDS = ["mlp", "cnn", "lenet5", "gpt"] as const;

/**
 * A loss: a built-in name, or a module export `(output, target) => Tensor` returning the SUM over the shard.
 * `sequenceCrossEntropy` takes logits [N, T, vocab] and int32 targets [N, T] (mean over all N·T tokens).
 */
export type LossSpec =
  | "crossEntropy"
  | "sequenceCrossEntropy"
  | "mse"
  | { name: "crossEntropy"; labelSmoothing?: number; weight?: number[] }
  | { module: string | URL; export?: string };

export type LossFn = (output: Tensor, target: Tensor) => Tensor;

const ACTIVATIONS = { relu: nn.ReLU, tanh: nn.Tanh, gelu: nn.GELU } as const;

/** Builds the built-in MLP: Linear layers with an activation (and optional dropout) between them. */
export function buildMlp(sizes: number[], activation: "relu" | "tanh" | "gelu" = "relu", dropout = 0): nn.Module {
  if (sizes.length < 2 || sizes.some((s) => !Number.isInteger(s) || s <= 0)) {
    throw new Error(`mlp: sizes must be at least two positive integers, got [${sizes.join(", ")}]`);
  }
  if (mlpParameterCount(sizes) > MAX_PARAMETERS) {
    throw new Error(
      `mlp: sizes [${sizes.join(", ")}] make ${mlpParameterCount(sizes)} parameters, ` +
        `more than the ${MAX_PARAMETERS} allowed`,
    );
  }
  const Act = ACTIVATIONS[activation];
  if (Act === undefined) throw new Error(`mlp: activation must be relu, tanh or gelu, got '${activation}'`);
  const layers: nn.Module[] = [];
  for (let i = 0; i + 1 < sizes.length; i++) {
    layers.push(new nn.Linear(sizes[i]!, sizes[i + 1]!));
    if (i + 2 < sizes.length) {
      layers.push(new Act());
      if (dropout > 0) layers.push(new nn.Dropout(dropout));
    }
  }
  return new nn.Sequential(...layers);
}

/**
 * Most parameters a built-in model may have: 2^28 floats (1 GiB, before gradients and optimizer
 * state). A checkpoint declaring more is refused before anything is allocated.
 */
export const MAX_PARAMETERS = 2 ** 28;

/**
 * The parameter names and shapes `buildMlp(sizes, activation, dropout)` creates, computed without
 * building it: checkpoints are checked against them before any memory is allocated.
 */
export function mlpParameterShapes(sizes: readonly number[], dropout = 0): [name: string, shape: number[]][] {
  const out: [string, number[]][] = [];
  let index = 0;
  for (let i = 0; i + 1 < sizes.length; i++) {
    out.push([`${index}.weight`, [sizes[i + 1]!, sizes[i]!]], [`${index}.bias`, [sizes[i + 1]!]]);
    // Linear, then (between layers) the activation and, with dropout, a Dropout.
    index += i + 2 < sizes.length ? (dropout > 0 ? 3 : 2) : 1;
  }
  return out;
}

/** Parameters of an MLP with these layer widths: a weight matrix and a bias per layer. */
export const mlpParameterCount = (sizes: readonly number[]): number =>
  sizes.slice(1).reduce((total, out, i) => total + (sizes[i]! + 1) * out, 0);

/** One layer of a built-in image model; the Sequential index of each is its parameters' name prefix. */
type Layer =
  | { op: "unflatten"; shape: [number, number, number] }
  | { op: "conv"; in: number; out: number; kernel: number; padding: number }
  | { op: "relu" }
  | { op: "pool" }
  | { op: "flatten" }
  | { op: "linear"; in: number; out: number };

/**
 * The layers of a built-in image model, or the reason these sizes cannot make one.
 * - cnn: conv in→32 k3 p1, ReLU, maxpool 2; conv 32→64 k3 p1, ReLU, maxpool 2; flatten; Linear 128, ReLU; Linear classes
 * - lenet5: conv in→6 k5 p2, ReLU, maxpool 2; conv 6→16 k5, ReLU, maxpool 2; flatten; Linear 120, ReLU;
 *   Linear 84, ReLU; Linear classes (flatten is 16·5·5 = 400 on 28×28)
 * Each starts with an Unflatten to [inChannels, height, width], so it takes flat rows or shaped samples.
 */
export function imageModelLayers(spec: ImageModelSpec): Layer[] | string {
  const { kind, inChannels, height, width, classes } = spec;
  const convs: [out: number, kernel: number, padding: number][] =
    kind === "cnn"
      ? [
          [32, 3, 1],
          [64, 3, 1],
        ]
      : [
          [6, 5, 2],
          [16, 5, 0],
        ];
  const hidden = kind === "cnn" ? [128] : [120, 84];
  const layers: Layer[] = [{ op: "unflatten", shape: [inChannels, height, width] }];
  let c = inChannels,
    h = height,
    w = width;
  for (const [out, kernel, padding] of convs) {
    layers.push({ op: "conv", in: c, out, kernel, padding }, { op: "relu" }, { op: "pool" });
    c = out;
    h = Math.floor((h + 2 * padding - kernel + 1) / 2);
    w = Math.floor((w + 2 * padding - kernel + 1) / 2);
    if (h < 1 || w < 1) {
      const min = kind === "cnn" ? 4 : 12;
      return `${kind} needs images of at least ${min}×${min} pixels, got ${height}×${width}`;
    }
  }
  layers.push({ op: "flatten" });
  let features = c * h * w;
  for (const out of hidden) {
    layers.push({ op: "linear", in: features, out }, { op: "relu" });
    features = out;
  }
  layers.push({ op: "linear", in: features, out: classes });
  return layers;
}

/** The parameter names and shapes of a built-in image model, or the reason these sizes cannot make one. */
export function imageModelParameterShapes(spec: ImageModelSpec): [name: string, shape: number[]][] | string {
  const layers = imageModelLayers(spec);
  if (typeof layers === "string") return layers;
  const out: [string, number[]][] = [];
  layers.forEach((l, i) => {
    if (l.op === "conv") out.push([`${i}.weight`, [l.out, l.in, l.kernel, l.kernel]], [`${i}.bias`, [l.out]]);
    if (l.op === "linear") out.push([`${i}.weight`, [l.out, l.in]], [`${i}.bias`, [l.out]]);
  });
  return out;
}

/** The parameter names and shapes any built-in model creates, computed without building it. */
export function builtinParameterShapes(spec: Extract<ModelSpec, { kind: string }>): [string, number[]][] {
  if (spec.kind === "mlp") return mlpParameterShapes(spec.sizes, spec.dropout);
  if (spec.kind === "gpt") return gptParameterShapes(spec);
  const shapes = imageModelParameterShapes(spec);
  if (typeof shapes === "string") throw new Error(`model: ${shapes}`);
  return shapes;
}

/** Number of values in a list of parameter shapes. */
export const parameterCount = (shapes: readonly [string, readonly number[]][]): number =>
  shapes.reduce((total, [, shape]) => total + shape.reduce((a, b) => a * b, 1), 0);

const SIZE_FIELDS = ["inChannels", "height", "width", "classes"] as const;

/** Builds the built-in `cnn` or `lenet5` for these input and class sizes. */
export function buildImageModel(spec: ImageModelSpec): nn.Module {
  const { kind } = spec;
  for (const f of SIZE_FIELDS) {
    if (!Number.isInteger(spec[f]) || spec[f] < 1)
      throw new Error(`${kind}: ${f} must be a positive integer, got ${spec[f]}`);
  }
  const layers = imageModelLayers(spec);
  if (typeof layers === "string") throw new Error(`model: ${layers}`);
  const count = parameterCount(imageModelParameterShapes(spec) as [string, number[]][]);
  if (count > MAX_PARAMETERS)
    throw new Error(
      `${kind}: ${spec.height}×${spec.width} input makes ${count} parameters, more than ${MAX_PARAMETERS}`,
    );
  return new nn.Sequential(
    ...layers.map((l): nn.Module => {
      switch (l.op) {
        case "unflatten":
          return new nn.Unflatten(1, l.shape);
        case "conv":
          return new nn.Conv2d(l.in, l.out, l.kernel, { padding: l.padding });
        case "relu":
          return new nn.ReLU();
        case "pool":
          return new nn.MaxPool2d(2);
        case "flatten":
          return new nn.Flatten();
        default:
          return new nn.Linear(l.in, l.out);
      }
    }),
  );
}

const moduleUrl = (m: string | URL): string =>
  m instanceof URL
    ? m.href
    : m.startsWith("file:") || m.startsWith("node:")
      ? m
      : new URL(m, `file://${process.cwd()}/`).href;

/** Builds a model from its spec (in main and in every worker: the same code, the same parameters). */
export async function buildModel(spec: ModelSpec): Promise<nn.Module> {
  if ("kind" in spec) {
    if (spec.kind === "mlp") return buildMlp(spec.sizes, spec.activation, spec.dropout);
    if (spec.kind === "cnn" || spec.kind === "lenet5") return buildImageModel(spec);
    if (spec.kind === "gpt") return new Gpt(spec);
    throw new Error(
      `model: unknown built-in '${String((spec as { kind: unknown }).kind)}' (expected mlp, cnn, lenet5 or gpt)`,
    );
  }
  const url = moduleUrl(spec.module);
  const mod = (await import(url)) as Record<string, unknown>;
  const name = spec.export ?? "default";
  const factory = mod[name];
  if (typeof factory !== "function") throw new Error(`model: ${url} has no exported function '${name}'`);
  const model = await (factory as (...a: unknown[]) => unknown)(...(spec.args ?? []));
  if (!nn.isModule(model)) throw new Error(`model: ${url} export '${name}' did not return an nn.Module`);
  return model;
}

/** The loss over a shard with reduction 'sum'; the trainer divides by the global denominator. */
export async function buildLoss(spec: LossSpec): Promise<LossFn> {
  if (spec === "mse") return (out, y) => nn.F.mseLoss(out, y.reshape(out.shape), { reduction: "sum" });
  if (spec === "sequenceCrossEntropy") return (out, y) => sequenceCrossEntropy(out, y, { reduction: "sum" });
  if (spec === "crossEntropy" || (typeof spec === "object" && "name" in spec)) {
    const opts: { labelSmoothing?: number; weight?: number[] } = typeof spec === "object" ? spec : {};
    const weight = opts.weight ? tensor(opts.weight, { dtype: "float32" }) : undefined;
    return (out, y) => nn.F.crossEntropy(out, y, { reduction: "sum", labelSmoothing: opts.labelSmoothing, weight });
  }
  const url = moduleUrl(spec.module);
  const fn = ((await import(url)) as Record<string, unknown>)[spec.export ?? "default"];
  if (typeof fn !== "function") throw new Error(`loss: ${url} has no exported function '${spec.export ?? "default"}'`);
  return fn as LossFn;
}

/** Whether the targets are class indices (one per sample, or one per token for the sequence loss). */
export const isClassification = (loss: LossSpec): boolean =>
  loss === "crossEntropy" ||
  loss === "sequenceCrossEntropy" ||
  (typeof loss === "object" && "name" in loss && loss.name === "crossEntropy");
