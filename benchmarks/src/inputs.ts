// The inputs of the MLP workloads, built once outside the timed code and handed, unchanged, to
// threadgrad and to the peers: the initial weights, random N(0,1) inputs and random labels.
import { W1, randomClassification } from "@threadgrad/cli";
import { type Tensor, manualSeed, type nn, tensor } from "@threadgrad/core";
import { Adam } from "@threadgrad/optim";
import { buildMlp } from "@threadgrad/workers";
import type { MlpInputs } from "./peers/tfjs.js";

export interface MlpSpec {
  sizes: readonly number[];
  activation: "relu" | "tanh";
  batch: number;
  lr: number;
  /** seed of the weights (manualSeed) and of the data (randomClassification) */
  seed: number;
}

/** W1 as the cli defines it (the object `threadgrad bench` runs), in this package's terms. */
export const W1_SPEC: MlpSpec = {
  sizes: W1.sizes,
  activation: W1.activation,
  batch: W1.batchSize,
  lr: W1.optimizer.lr,
  seed: 0,
};

export interface MlpProblem {
  model: nn.Module;
  opt: Adam;
  x: Tensor;
  y: Tensor;
  /** the same weights and batch as plain arrays, for the peers */
  arrays: MlpInputs;
}

/**
 * The model (PyTorch's Linear initialisation after `manualSeed(seed)`, as DataParallel builds
 * it), an Adam optimizer, and one batch from the cli's `randomClassification(batch, in, classes,
 * seed)`: x ~ N(0, 1), y uniform class indices.
 */
export function mlpProblem(spec: MlpSpec): MlpProblem {
  manualSeed(spec.seed);
  const model = buildMlp([...spec.sizes], spec.activation);
  // Tensor's data is typed as any TypedArray, optim's ParamLike wants a float array: the cast is
  // only for the type checker (the parameters are float32).
  const opt = new Adam(model.parameters() as unknown as ConstructorParameters<typeof Adam>[0], { lr: spec.lr });
  const data = randomClassification(spec.batch, spec.sizes[0]!, spec.sizes.at(-1)!, spec.seed);
  const x = tensor(Float32Array.from(data.x), { shape: [spec.batch, spec.sizes[0]!] });
  const y = tensor(Int32Array.from(data.y), { shape: [spec.batch] });
  const params = model.parameters();
  const weights = spec.sizes.slice(1).map((_, l) => ({
    w: Float32Array.from(params[2 * l]!.data as Float32Array),
    b: Float32Array.from(params[2 * l + 1]!.data as Float32Array),
  }));
  const arrays: MlpInputs = {
    sizes: [...spec.sizes],
    weights,
    x: Float32Array.from(x.data as Float32Array),
    y: Int32Array.from(y.data as Int32Array),
    batch: spec.batch,
    activation: spec.activation,
    lr: spec.lr,
  };
  return { model, opt, x, y, arrays };
}

/** The first `rows` samples of a problem's batch (the gradient checks use a small one). */
export function firstRows(a: MlpInputs, rows: number): MlpInputs {
  const n = Math.min(rows, a.batch);
  return { ...a, batch: n, x: a.x.slice(0, n * a.sizes[0]!), y: a.y.slice(0, n) };
}

/** Copies plain weights into a threadgrad model's parameters (in place, no graph). */
export function setWeights(model: nn.Module, weights: MlpInputs["weights"]): void {
  const params = model.parameters();
  weights.forEach(({ w, b }, l) => {
    (params[2 * l]!.data as Float32Array).set(w);
    (params[2 * l + 1]!.data as Float32Array).set(b);
  });
}

/** Batches in the MLP workloads' stream for the peers: the data set the scaling suite trains on. */
export const STREAM_BATCHES = 8;

/**
 * A problem's initial weights with STREAM_BATCHES batches of rows (`randomClassification(8 · batch,
 * in, classes, seed)`, as the scaling suite and `threadgrad bench` use) instead of its one batch:
 * what the PyTorch peer trains on, reshuffling the rows every epoch.
 */
export function streamInputs(spec: MlpSpec, weights: MlpInputs["weights"]): MlpInputs {
  const rows = STREAM_BATCHES * spec.batch;
  const data = randomClassification(rows, spec.sizes[0]!, spec.sizes.at(-1)!, spec.seed);
  return {
    sizes: [...spec.sizes],
    weights,
    x: Float32Array.from(data.x),
    y: Int32Array.from(data.y),
    batch: rows,
    activation: spec.activation,
    lr: spec.lr,
  };
}
