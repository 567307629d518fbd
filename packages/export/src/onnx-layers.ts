import { nn } from "@threadgrad/core";
import { type Dim, type Graph, type Value, fmtDims, floatAttr, intAttr, intsAttr } from "./onnx-graph.js";

type Emit = (m: nn.Module, x: Value, graph: Graph, path: string) => Value;
// biome-ignore lint/suspicious/noExplicitAny: each entry receives the class it is registered for.
type LayerExport = (m: any, x: Value, graph: Graph, path: string, emit: Emit) => Value;

const param = (path: string, name: string): string => (path ? `${path}.${name}` : name);
const where = (m: nn.Module, path: string): string => `module '${path || "<model>"}' (${m.constructor.name})`;

function requireFloat(m: nn.Module, x: Value, path: string): void {
  if (x.dtype !== "float32") {
    throw new Error(`exportOnnx: ${where(m, path)} needs float32 input, got ${x.dtype} of shape ${fmtDims(x.shape)}`);
  }
}

const unary =
  (opType: string): LayerExport =>
  (m, x, graph, path) => {
    requireFloat(m, x, path);
    return { ...x, name: graph.node(opType, [x.name], path) };
  };

const passThrough: LayerExport = (_m, x) => x;

function sequential(m: nn.Sequential, x: Value, graph: Graph, path: string, emit: Emit): Value {
  let h = x;
  for (const [name, child] of m.namedChildren()) h = emit(child, h, graph, param(path, name));
  return h;
}

// Gemm with transB keeps the weight as stored ([out, in], its state dict name); other ranks
// use MatMul with the transposed weight, as linear() reshapes to 2-D around the same product.
function linear(m: nn.Linear, x: Value, graph: Graph, path: string): Value {
  requireFloat(m, x, path);
  if (x.shape.length < 2 || x.shape.at(-1) !== m.inFeatures) {
    throw new Error(
      `exportOnnx: ${where(m, path)} expects ${m.inFeatures} input features, got shape ${fmtDims(x.shape)}`,
    );
  }
  const w = graph.parameter(param(path, "weight"), m.weight);
  const b = m.bias ? graph.parameter(param(path, "bias"), m.bias) : null;
  const shape = [...x.shape.slice(0, -1), m.outFeatures];
  if (x.shape.length === 2) {
    const name = graph.node("Gemm", b ? [x.name, w, b] : [x.name, w], path, [intAttr("transB", 1)]);
    return { name, shape, dtype: "float32" };
  }
  const wt = graph.node("Transpose", [w], path, [intsAttr("perm", [1, 0])]);
  const y = graph.node("MatMul", [x.name, wt], path);
  return { name: b ? graph.node("Add", [y, b], path) : y, shape, dtype: "float32" };
}

// 0.5·x·(1 + erf(x/√2)), or with approximate 'tanh' 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))),
// in the same order of operations as the gelu op, so the float32 roundings match.
function gelu(m: nn.GELU, x: Value, graph: Graph, path: string): Value {
  requireFloat(m, x, path);
  const c = (name: string, v: number) => graph.floats(`${path}/${name}`, [], [v]);
  let inner: string;
  if (m.approximate === "tanh") {
    const cube = graph.node("Pow", [x.name, c("three", 3)], path);
    const sum = graph.node("Add", [x.name, graph.node("Mul", [cube, c("coef", 0.044715)], path)], path);
    inner = graph.node("Tanh", [graph.node("Mul", [sum, c("sqrt_2_over_pi", Math.sqrt(2 / Math.PI))], path)], path);
  } else {
    inner = graph.node("Erf", [graph.node("Mul", [x.name, c("sqrt1_2", Math.SQRT1_2)], path)], path);
  }
  const half = graph.node("Mul", [x.name, c("half", 0.5)], path);
  return { ...x, name: graph.node("Mul", [half, graph.node("Add", [inner, c("one", 1)], path)], path) };
}

// log(1 + exp(β·x))/β, and x itself where β·x > threshold (ONNX's Softplus has neither parameter).
function softplus(m: nn.Softplus, x: Value, graph: Graph, path: string): Value {
  requireFloat(m, x, path);
  const beta = m.beta === 1 ? null : graph.floats(`${path}/beta`, [], [m.beta]);
  const bx = beta === null ? x.name : graph.node("Mul", [x.name, beta], path);
  const soft = graph.node("Softplus", [bx], path);
  const scaled = beta === null ? soft : graph.node("Div", [soft, beta], path);
  const above = graph.node("Greater", [bx, graph.floats(`${path}/threshold`, [], [m.threshold])], path);
  return { ...x, name: graph.node("Where", [above, x.name, scaled], path) };
}

// Reshape with 0 (copy the batch from the input) and -1 (the flattened run) when the batch is kept.
function flatten(m: nn.Flatten, x: Value, graph: Graph, path: string): Value {
  const rank = x.shape.length;
  const start = m.startDim < 0 ? m.startDim + rank : m.startDim;
  const end = m.endDim < 0 ? m.endDim + rank : m.endDim;
  if (!(start >= 0 && end < rank && start <= end)) {
    throw new Error(
      `exportOnnx: ${where(m, path)} cannot flatten dims ${m.startDim}..${m.endDim} of shape ${fmtDims(x.shape)}`,
    );
  }
  if (start === end) return x;
  const run = x.shape.slice(start, end + 1);
  const merged: Dim = run.includes(null) ? null : (run as number[]).reduce((a, b) => a * b, 1);
  const shape = [...x.shape.slice(0, start), merged, ...x.shape.slice(end + 1)];
  const target = shape.map((d, i) => (i === start ? -1 : d === null ? 0 : d));
  const name = graph.node("Reshape", [x.name, graph.int64s(`${path}/shape`, target)], path);
  return { ...x, name, shape };
}

function layerNorm(m: nn.LayerNorm, x: Value, graph: Graph, path: string): Value {
  requireFloat(m, x, path);
  const k = m.normalizedShape.length;
  if (x.shape.length <= k || x.shape.slice(-k).join() !== m.normalizedShape.join()) {
    throw new Error(
      `exportOnnx: ${where(m, path)} normalizes over ${fmtDims(m.normalizedShape)}, got shape ${fmtDims(x.shape)}`,
    );
  }
  const size = m.normalizedShape.reduce((a, b) => a * b, 1);
  const scale = m.weight
    ? graph.parameter(param(path, "weight"), m.weight)
    : graph.floats(`${path}/ones`, m.normalizedShape, new Float32Array(size).fill(1));
  const inputs = m.bias ? [x.name, scale, graph.parameter(param(path, "bias"), m.bias)] : [x.name, scale];
  const attrs = [intAttr("axis", -k), floatAttr("epsilon", m.eps)];
  return { ...x, name: graph.node("LayerNormalization", inputs, path, attrs) };
}

function embedding(m: nn.Embedding, x: Value, graph: Graph, path: string): Value {
  if (x.dtype === "float32") {
    throw new Error(`exportOnnx: ${where(m, path)} needs int32 or int64 token ids, got float32 (set inputDtype)`);
  }
  const w = graph.parameter(param(path, "weight"), m.weight);
  const name = graph.node("Gather", [w, x.name], path, [intAttr("axis", 0)]);
  return { name, shape: [...x.shape, m.embeddingDim], dtype: "float32" };
}

/** Every class the exporter maps, by exact constructor. */
// biome-ignore lint/complexity/noBannedTypes: keys are module classes, compared by identity.
export const LAYERS = new Map<Function, LayerExport>([
  [nn.Sequential, sequential],
  [nn.Linear, linear],
  [nn.ReLU, unary("Relu")],
  [nn.Tanh, unary("Tanh")],
  [nn.Sigmoid, unary("Sigmoid")],
  [nn.GELU, gelu],
  [nn.Softplus, softplus],
  [nn.Dropout, passThrough],
  [nn.Identity, passThrough],
  [nn.Flatten, flatten],
  [nn.LayerNorm, layerNorm],
  [nn.Embedding, embedding],
]);
