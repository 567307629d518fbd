import { nn } from "@threadgrad/core";
import { Graph, type Value, fmtDims, valueInfo } from "./onnx-graph.js";
import { LAYERS } from "./onnx-layers.js";
import { ModelProto } from "./onnx-schema.js";
import { type WriteOptions, writeFileAtomic } from "./write-file.js";

/** IR version 8 and opset 17 (the first with LayerNormalization), well inside what onnxruntime 1.20+ reads. */
export const ONNX_IR_VERSION = 8;
export const ONNX_OPSET = 17;

export interface OnnxExportOptions {
  /** The shape of one sample, without the batch dimension: `[784]`, `[28, 28]`, `[16]` token ids. */
  sampleShape: readonly number[];
  /** Name of the graph's input (default `input`). */
  inputName?: string;
  /** Name of the graph's output (default `output`). */
  outputName?: string;
  /**
   * Element type of the input: float32, or int32/int64 token ids (default int32 when the model starts
   * with Embedding).
   */
  inputDtype?: "float32" | "int32" | "int64";
  /**
   * Standardisation the model was trained behind: the graph starts with Sub(mean) and Div(std), so it
   * takes raw values. `mean` and `std` hold one value per sample element (`sampleShape`'s product);
   * float32 input only.
   */
  inputScaling?: Scaling;
  /** Maps the outputs back to a target's units with Mul(std) and Add(mean): one value per output element. */
  outputScaling?: Scaling;
}

/** Per-element affine map: standardise with (x - mean) / std, or undo it with y * std + mean. */
export interface Scaling {
  mean: readonly number[];
  std: readonly number[];
}

function checkScaling(what: string, s: Scaling, size: number): void {
  const ok = (v: readonly number[], positive: boolean) =>
    Array.isArray(v) &&
    v.length === size &&
    v.every((x) => typeof x === "number" && Number.isFinite(x) && (!positive || x > 0));
  if (s === null || typeof s !== "object" || !ok(s.mean, false) || !ok(s.std, true)) {
    throw new Error(
      `exportOnnx: ${what} needs mean and std of ${size} finite numbers each (std > 0), ` +
        `got mean of ${Array.isArray(s?.mean) ? s.mean.length : "no"} and std of ${Array.isArray(s?.std) ? s.std.length : "no"} values`,
    );
  }
}

/**
 * The model as an ONNX graph (one input `[batch, ...sampleShape]`, one float32 output), in
 * inference mode: Dropout is the identity. Parameters become initializers under their state dict
 * names. Throws, naming the module, on a layer it has no mapping for.
 * ```ts
 * const model = new nn.Sequential(new nn.Linear(4, 8), new nn.ReLU(), new nn.Linear(8, 3));
 * const bytes = exportOnnx(model, { sampleShape: [4] });
 * ```
 */
export function exportOnnx(model: nn.Module, opts: OnnxExportOptions): Uint8Array {
  const sampleShape: number[] = Array.isArray(opts.sampleShape) ? [...opts.sampleShape] : [];
  if (!Array.isArray(opts.sampleShape) || sampleShape.some((d) => !Number.isInteger(d) || d <= 0)) {
    throw new Error(
      `exportOnnx: sampleShape must be a list of positive integers, got ${JSON.stringify(opts.sampleShape)}`,
    );
  }
  const inputName = opts.inputName ?? "input";
  const outputName = opts.outputName ?? "output";
  if (!inputName || !outputName || inputName === outputName) {
    throw new Error(
      `exportOnnx: input and output names must be distinct and non-empty, got '${inputName}', '${outputName}'`,
    );
  }
  const inputDtype = opts.inputDtype ?? (firstLayer(model) instanceof nn.Embedding ? "int32" : "float32");
  if (!["float32", "int32", "int64"].includes(inputDtype)) {
    throw new Error(`exportOnnx: inputDtype must be float32, int32 or int64, got '${inputDtype}'`);
  }
  const graph = new Graph([inputName, outputName]);
  const x: Value = { name: inputName, shape: [null, ...sampleShape], dtype: inputDtype };
  let first = x;
  if (opts.inputScaling !== undefined) {
    if (inputDtype !== "float32") throw new Error(`exportOnnx: inputScaling needs float32 input, not ${inputDtype}`);
    checkScaling(
      "inputScaling",
      opts.inputScaling,
      sampleShape.reduce((a, b) => a * b, 1),
    );
    const mean = graph.floats("input_mean", sampleShape, opts.inputScaling.mean);
    const std = graph.floats("input_std", sampleShape, opts.inputScaling.std);
    const centred = graph.node("Sub", [inputName, mean], "input_scaling");
    first = { ...x, name: graph.node("Div", [centred, std], "input_scaling") };
  }
  let y = emitModule(model, first, graph, "");
  if (y.dtype !== "float32") {
    throw new Error(`exportOnnx: the model's output must be float32, got ${y.dtype} ids of shape ${fmtDims(y.shape)}`);
  }
  if (opts.outputScaling !== undefined) {
    const outShape = y.shape.slice(1) as number[];
    checkScaling(
      "outputScaling",
      opts.outputScaling,
      outShape.reduce((a, b) => a * b, 1),
    );
    const std = graph.floats("output_std", outShape, opts.outputScaling.std);
    const mean = graph.floats("output_mean", outShape, opts.outputScaling.mean);
    const scaled = graph.node("Mul", [y.name, std], "output_scaling");
    y = { ...y, name: graph.node("Add", [scaled, mean], "output_scaling") };
  }
  graph.nameOutput(y.name, outputName);
  const model_ = {
    irVersion: ONNX_IR_VERSION,
    producerName: "threadgrad",
    opsetImport: [{ domain: "", version: ONNX_OPSET }],
    graph: {
      name: model.constructor.name,
      node: graph.nodes,
      initializer: graph.initializers,
      input: [valueInfo(inputName, x)],
      output: [valueInfo(outputName, y)],
    },
  };
  const problem = ModelProto.verify(model_);
  if (problem !== null) throw new Error(`exportOnnx: internal error, the graph does not fit onnx.proto: ${problem}`);
  return ModelProto.encode(ModelProto.fromObject(model_)).finish();
}

/** Writes {@link exportOnnx}'s bytes to `path` atomically; an existing file is kept unless `overwrite`. */
export function saveOnnx(model: nn.Module, path: string, opts: OnnxExportOptions & WriteOptions): void {
  writeFileAtomic("saveOnnx", path, exportOnnx(model, opts), opts);
}

/** Emits one module's nodes; the mapping is by exact class, so a subclass with its own forward is refused. */
export function emitModule(m: nn.Module, x: Value, graph: Graph, path: string): Value {
  const layer = LAYERS.get(m.constructor);
  if (layer === undefined) {
    const where = path ? `module '${path}' (${m.constructor.name})` : `the model (${m.constructor.name})`;
    const known = [...LAYERS.keys()].map((c) => c.name);
    // Same name, other class: most likely a second copy of @threadgrad/core loaded by a user's module.
    const copy = known.includes(m.constructor.name)
      ? " (a class of that name from another copy of @threadgrad/core?)"
      : "";
    throw new Error(`exportOnnx: ${where} has no ONNX mapping${copy}; supported layers: ${known.join(", ")}`);
  }
  return layer(m, x, graph, path, emitModule);
}

// The first layer that sees the input, skipping pass-through ones, to pick the input's dtype.
function firstLayer(m: nn.Module): nn.Module | null {
  if (!(m instanceof nn.Sequential)) return m instanceof nn.Dropout || m instanceof nn.Identity ? null : m;
  for (const child of m.layers) {
    const first = firstLayer(child);
    if (first !== null) return first;
  }
  return null;
}
