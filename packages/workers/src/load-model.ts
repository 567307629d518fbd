// A plain nn.Module from a checkpoint, without workers: for inference in the main thread. The
// checkpoint is read by the validating reader and nothing it names is imported: a built-in mlp is
// built from its spec, any other model must be given by the caller, and its parameter names and
// shapes are checked against the file before any value is copied.
import { type Tensor, isTensor, noGrad, nn, tensor } from "@threadgrad/core";
import { loadTensor } from "./checkpoint.js";
import { type TrainerCheckpoint, checkAgainstModel, readTrainerCheckpoint } from "./persist.js";
import { type ModelSpec, buildModel } from "./spec.js";
import { safeText } from "./checkpoint-schema.js";

export interface LoadModelOptions {
  /**
   * The model to load the parameters into: a module instance, or a module spec `{ module, export, args }`
   * (imported because the caller names it). Needed for a checkpoint of a model from a module; a
   * built-in mlp is built from the file's spec when this is left out.
   */
  model?: nn.Module | ModelSpec;
}

/**
 * The checkpoint's model as an nn.Module in eval mode, its parameters loaded after the name and
 * shape check. `source` is a path or a checkpoint readTrainerCheckpoint returned.
 * @example const model = await loadModel("runs/a/checkpoint-best.msgpack"); model.forward(x)
 */
export async function loadModel(source: string | TrainerCheckpoint, opts: LoadModelOptions = {}): Promise<nn.Module> {
  const ckpt = typeof source === "string" ? readTrainerCheckpoint(source) : source;
  const spec = ckpt.config.model;
  let model: nn.Module;
  if (opts.model !== undefined) model = nn.isModule(opts.model) ? opts.model : await buildModel(opts.model);
  else if ("kind" in spec) model = await buildModel(spec);
  else {
    throw new Error(
      `checkpoint: ${ckpt.path}: its model was built by module ${safeText(String(spec.module))}; ` +
        "loading a checkpoint never imports code, so give the model: loadModel(path, { model })",
    );
  }
  const named = [...model.namedParameters()];
  checkAgainstModel(ckpt, named, []);
  noGrad(() => {
    for (const [name, p] of named) {
      const values = loadTensor(ckpt.params.get(name)!, `${ckpt.path} parameter '${name}'`);
      if (p.dtype !== "float32" || !(values instanceof Float32Array)) {
        throw new Error(`checkpoint: ${ckpt.path}: parameter '${name}' must be float32 in the file and the model`);
      }
      (p.data as Float32Array).set(values);
    }
  });
  model.eval();
  return model;
}

export interface PredictOptions {
  /** Shape of one sample, e.g. [784]; default: an mlp's input width, or x's shape after the first axis. */
  sampleShape?: readonly number[];
  /** Samples per forward pass (default 1024): memory follows the batch, not the data. */
  batchSize?: number;
}

/**
 * The model's outputs for every sample of `x` (float32 features or int32 token ids), row-major
 * [N, outDim], computed in eval mode (dropout off) without recording gradients, `batchSize`
 * samples at a time.
 * @example predictOutputs(model, Float32Array.of(1, 2, 3, 4), { sampleShape: [2] }) // 2 rows
 */
export function predictOutputs(
  model: nn.Module,
  x: Float32Array | Int32Array | Tensor,
  opts: PredictOptions = {},
): Float32Array {
  const data = isTensor(x) ? x.contiguous().data : x;
  if (!(data instanceof Float32Array || data instanceof Int32Array))
    throw new Error("predict: x must hold float32 values or int32 token ids");
  const sampleShape = opts.sampleShape ?? (isTensor(x) ? x.shape.slice(1) : null);
  if (sampleShape === null) throw new Error("predict: give sampleShape (the shape of one sample) for a flat x");
  const perSample = sampleShape.reduce((a, b) => a * b, 1);
  if (!(perSample > 0) || data.length % perSample !== 0) {
    throw new Error(`predict: x has ${data.length} values, not a whole number of samples of shape [${sampleShape}]`);
  }
  const rows = data.length / perSample;
  const batchSize = opts.batchSize ?? 1024;
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new Error(`predict: batchSize must be a positive integer, got ${batchSize}`);
  const wasTraining = model.training;
  model.eval();
  try {
    let out: Float32Array | null = null;
    let width = 0;
    for (let start = 0; start < rows; start += batchSize) {
      const n = Math.min(batchSize, rows - start);
      const input = tensor(data.subarray(start * perSample, (start + n) * perSample), { shape: [n, ...sampleShape] });
      const y = noGrad(() => model.forward(input) as Tensor);
      const values = y.contiguous().data;
      if (out === null) {
        width = values.length / n;
        out = new Float32Array(rows * width);
      }
      if (values.length !== n * width) throw new Error(`predict: the model's output size changed between batches`);
      out.set(values, start * width);
    }
    return out ?? new Float32Array(0);
  } finally {
    model.train(wasTraining);
  }
}
