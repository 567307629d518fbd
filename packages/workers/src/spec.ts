import { type Tensor, nn, tensor } from "@threadgrad/core";

/** A model: a built-in spec, or a module that exports a factory returning an `nn.Module`. */
export type ModelSpec =
  | { kind: "mlp"; sizes: number[]; activation?: "relu" | "tanh" | "gelu"; dropout?: number }
  | { module: string | URL; export?: string; args?: unknown[] };

/** A loss: a built-in name, or a module export `(output, target) => Tensor` returning the SUM over the shard. */
export type LossSpec =
  | "crossEntropy"
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

const moduleUrl = (m: string | URL): string =>
  m instanceof URL
    ? m.href
    : m.startsWith("file:") || m.startsWith("node:")
      ? m
      : new URL(m, `file://${process.cwd()}/`).href;

/** Builds a model from its spec (in main and in every worker: the same code, the same parameters). */
export async function buildModel(spec: ModelSpec): Promise<nn.Module> {
  if ("kind" in spec) {
    if (spec.kind !== "mlp") throw new Error(`model: unknown built-in '${String(spec.kind)}' (expected mlp)`);
    return buildMlp(spec.sizes, spec.activation, spec.dropout);
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

export const isClassification = (loss: LossSpec): boolean =>
  loss === "crossEntropy" || (typeof loss === "object" && "name" in loss && loss.name === "crossEntropy");
