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

const ints = (d: Dim[]): number[] => d as number[];
const pairOf = (v: number | readonly [number, number]): [number, number] =>
  typeof v === "number" ? [v, v] : [v[0], v[1]];

function requireShape(m: nn.Module, x: Value, path: string, rank: number, channels: number, what: string): void {
  requireFloat(m, x, path);
  if (x.shape.length !== rank || x.shape[1] !== channels) {
    throw new Error(`exportOnnx: ${where(m, path)} expects ${what}, got shape ${fmtDims(x.shape)}`);
  }
}

// One spatial dim of a convolution: pads before and after, and the output size, as conv.ts computes them.
function convDim(size: number, k: number, s: number, d: number, padding: number | "same" | "valid") {
  const total = padding === "same" ? d * (k - 1) : padding === "valid" ? 0 : 2 * padding;
  const before = padding === "same" ? Math.floor(total / 2) : total / 2;
  return { before, after: total - before, out: Math.floor((size + total - d * (k - 1) - 1) / s) + 1 };
}

// Conv with explicit pads (ONNX's [begin..., end...]): 'same' resolved as threadgrad does, the odd zero after.
function conv(m: nn.Conv2d | nn.Conv1d, x: Value, graph: Graph, path: string): Value {
  const two = m instanceof nn.Conv2d;
  const kernel = two ? [...m.kernelSize] : [m.kernelSize];
  const stride = two ? [...m.stride] : [m.stride];
  const dilation = two ? [...m.dilation] : [m.dilation];
  const padding: (number | "same" | "valid")[] =
    typeof m.padding === "string"
      ? kernel.map(() => m.padding as "same" | "valid")
      : two
        ? pairOf(m.padding as number | readonly [number, number])
        : [m.padding as number];
  requireShape(
    m,
    x,
    path,
    kernel.length + 2,
    m.inChannels,
    two ? `[batch, ${m.inChannels}, H, W]` : `[batch, ${m.inChannels}, L]`,
  );
  const dims = kernel.map((k, i) => convDim(x.shape[2 + i] as number, k, stride[i]!, dilation[i]!, padding[i]!));
  if (dims.some((d) => d.out < 1)) {
    throw new Error(`exportOnnx: ${where(m, path)} gives an empty output for input ${fmtDims(x.shape)}`);
  }
  const w = graph.parameter(param(path, "weight"), m.weight);
  const inputs = m.bias ? [x.name, w, graph.parameter(param(path, "bias"), m.bias)] : [x.name, w];
  const attrs = [
    intsAttr("kernel_shape", kernel),
    intsAttr("strides", stride),
    intsAttr("pads", [...dims.map((d) => d.before), ...dims.map((d) => d.after)]),
    intsAttr("dilations", dilation),
    intAttr("group", m.groups),
  ];
  const shape = [x.shape[0]!, m.outChannels, ...dims.map((d) => d.out)];
  return { name: graph.node("Conv", inputs, path, attrs), shape, dtype: "float32" };
}

// Output size of a pooling window along one dim, pool.ts's rule: in ceil mode a last window starting past
// the input and its left padding is dropped.
function poolOut(size: number, k: number, s: number, p: number, d: number, ceil: boolean): number {
  let out = Math.floor((size + 2 * p - d * (k - 1) - 1 + (ceil ? s - 1 : 0)) / s) + 1;
  if (ceil && (out - 1) * s >= size + p) out--;
  return out;
}

function pool(m: nn.MaxPool2d | nn.AvgPool2d, x: Value, graph: Graph, path: string): Value {
  requireFloat(m, x, path);
  if (x.shape.length !== 4)
    throw new Error(`exportOnnx: ${where(m, path)} expects [batch, C, H, W], got ${fmtDims(x.shape)}`);
  const max = m instanceof nn.MaxPool2d;
  const kernel = pairOf(m.kernelSize);
  const stride = pairOf(m.stride);
  const padding = pairOf(m.opts.padding ?? 0);
  const dilation = max ? pairOf((m as nn.MaxPool2d).opts.dilation ?? 1) : [1, 1];
  const ceil = m.opts.ceilMode ?? false;
  const out = [0, 1].map((i) =>
    poolOut(x.shape[2 + i] as number, kernel[i]!, stride[i]!, padding[i]!, dilation[i]!, ceil),
  );
  if (out.some((o) => o < 1)) {
    throw new Error(`exportOnnx: ${where(m, path)} gives an empty output for input ${fmtDims(x.shape)}`);
  }
  // Ceil mode's extra windows as explicit end padding where that is exact (MaxPool pads with -∞, and an
  // AveragePool that does not count padding ignores it), since ONNX's ceil_mode keeps a last window
  // that starts in the right padding and threadgrad drops it. Elsewhere ceil_mode, if it gives the same size.
  const size = [x.shape[2] as number, x.shape[3] as number];
  const includePad = !max && (m as nn.AvgPool2d).opts.countIncludePad !== false;
  const end = [0, 1].map((i) => {
    const span = dilation[i]! * (kernel[i]! - 1) + 1;
    return Math.max(padding[i]!, (out[i]! - 1) * stride[i]! + span - padding[i]! - size[i]!);
  });
  const explicit = ceil && !includePad && end.every((e, i) => e < kernel[i]!);
  const onnxCeil = (i: number) =>
    Math.ceil((size[i]! + 2 * padding[i]! - dilation[i]! * (kernel[i]! - 1) - 1) / stride[i]!) + 1;
  if (ceil && !explicit && [0, 1].some((i) => onnxCeil(i) !== out[i])) {
    throw new Error(
      `exportOnnx: ${where(m, path)} in ceil mode drops a last window that starts in the padding of ` +
        `${fmtDims(x.shape)}, which ONNX's ceil_mode keeps (countIncludePad: false or no padding exports)`,
    );
  }
  const attrs = [
    intsAttr("kernel_shape", kernel),
    intsAttr("strides", stride),
    intsAttr("pads", explicit ? [...padding, ...end] : [...padding, ...padding]),
    intAttr("ceil_mode", ceil && !explicit ? 1 : 0),
  ];
  if (max) attrs.push(intsAttr("dilations", dilation));
  else attrs.push(intAttr("count_include_pad", (m as nn.AvgPool2d).opts.countIncludePad === false ? 0 : 1));
  const name = graph.node(max ? "MaxPool" : "AveragePool", [x.name], path, attrs);
  return { ...x, name, shape: [x.shape[0]!, x.shape[1]!, ...out] };
}

// Output 1: GlobalAveragePool; a size that divides the input evenly: AveragePool with that window.
function adaptiveAvgPool(m: nn.AdaptiveAvgPool2d, x: Value, graph: Graph, path: string): Value {
  requireFloat(m, x, path);
  if (x.shape.length !== 4)
    throw new Error(`exportOnnx: ${where(m, path)} expects [batch, C, H, W], got ${fmtDims(x.shape)}`);
  const [h, w] = ints(x.shape.slice(2)) as [number, number];
  const req = typeof m.outputSize === "number" ? [m.outputSize, m.outputSize] : m.outputSize;
  const out = [req[0] ?? h, req[1] ?? w] as [number, number];
  const shape = [x.shape[0]!, x.shape[1]!, ...out];
  if (out[0] === 1 && out[1] === 1) return { ...x, name: graph.node("GlobalAveragePool", [x.name], path), shape };
  if (h % out[0] !== 0 || w % out[1] !== 0) {
    throw new Error(
      `exportOnnx: ${where(m, path)} pools ${h}×${w} to ${out[0]}×${out[1]}, windows of uneven sizes that ` +
        "ONNX has no operator for (an output of 1, or one that divides the input size, exports)",
    );
  }
  const kernel = [h / out[0], w / out[1]];
  const attrs = [intsAttr("kernel_shape", kernel), intsAttr("strides", kernel)];
  return { ...x, name: graph.node("AveragePool", [x.name], path, attrs), shape };
}

// Evaluation mode: the running statistics (a layer without them normalises with the batch's, which
// BatchNormalization's inference form cannot).
function batchNorm(m: nn.BatchNorm1d | nn.BatchNorm2d, x: Value, graph: Graph, path: string): Value {
  const two = m instanceof nn.BatchNorm2d;
  requireFloat(m, x, path);
  if (!(two ? x.shape.length === 4 : x.shape.length === 2 || x.shape.length === 3) || x.shape[1] !== m.numFeatures) {
    const want = two ? "[batch, C, H, W]" : "[batch, C] or [batch, C, L]";
    throw new Error(`exportOnnx: ${where(m, path)} expects ${want} with C = ${m.numFeatures}, got ${fmtDims(x.shape)}`);
  }
  if (m.runningMean === null || m.runningVar === null) {
    throw new Error(
      `exportOnnx: ${where(m, path)} keeps no running statistics (trackRunningStats: false), so it normalises ` +
        "with each batch's; only running statistics export",
    );
  }
  const c = m.numFeatures;
  const scale = m.weight
    ? graph.parameter(param(path, "weight"), m.weight)
    : graph.floats(`${path}/ones`, [c], new Float32Array(c).fill(1));
  const bias = m.bias
    ? graph.parameter(param(path, "bias"), m.bias)
    : graph.floats(`${path}/zeros`, [c], new Float32Array(c));
  const mean = graph.parameter(param(path, "runningMean"), m.runningMean);
  const variance = graph.parameter(param(path, "runningVar"), m.runningVar);
  const name = graph.node("BatchNormalization", [x.name, scale, bias, mean, variance], path, [
    floatAttr("epsilon", m.eps),
  ]);
  return { ...x, name };
}

// Input already of the unflattened shape passes through, as the layer's forward does.
function unflatten(m: nn.Unflatten, x: Value, graph: Graph, path: string): Value {
  const { dim, sizes } = m;
  const n = sizes.reduce((a, b) => a * b, 1);
  if (x.shape.length >= dim + sizes.length && sizes.every((s, i) => x.shape[dim + i] === s)) return x;
  if (dim === 0 || x.shape.length <= dim || x.shape[dim] !== n) {
    throw new Error(
      `exportOnnx: ${where(m, path)} cannot split dim ${dim} of ${fmtDims(x.shape)} into ${fmtDims([...sizes])}`,
    );
  }
  const shape = [...x.shape.slice(0, dim), ...sizes, ...x.shape.slice(dim + 1)];
  const target = shape.map((d) => d ?? 0);
  const name = graph.node("Reshape", [x.name, graph.int64s(`${path}/shape`, target)], path);
  return { ...x, name, shape };
}

// GroupNormalization is opset 18: the samples as [N, groups, rest], InstanceNormalization (each row of
// a group normalised, unit scale and no shift), back to the input's shape, then the per-channel affine.
function groupNorm(m: nn.GroupNorm, x: Value, graph: Graph, path: string): Value {
  requireFloat(m, x, path);
  if (x.shape.length < 2 || x.shape[1] !== m.numChannels) {
    throw new Error(`exportOnnx: ${where(m, path)} expects [batch, ${m.numChannels}, ...], got ${fmtDims(x.shape)}`);
  }
  const g = m.numGroups;
  const grouped = graph.node("Reshape", [x.name, graph.int64s(`${path}/grouped_shape`, [0, g, -1])], path);
  const ones = graph.floats(`${path}/ones`, [g], new Float32Array(g).fill(1));
  const zeros = graph.floats(`${path}/zeros`, [g], new Float32Array(g));
  const attrs = [floatAttr("epsilon", m.eps)];
  const normed = graph.node("InstanceNormalization", [grouped, ones, zeros], path, attrs);
  const back = graph.int64s(
    `${path}/shape`,
    x.shape.map((d) => d ?? 0),
  );
  let y = graph.node("Reshape", [normed, back], path);
  // weight and bias as [C, 1, ...] so they broadcast over the spatial dims.
  const perChannel = [m.numChannels, ...x.shape.slice(2).map(() => 1)];
  if (m.weight) y = graph.node("Mul", [y, graph.floats(param(path, "weight"), perChannel, m.weight.data)], path);
  if (m.bias) y = graph.node("Add", [y, graph.floats(param(path, "bias"), perChannel, m.bias.data)], path);
  return { ...x, name: y };
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
  [nn.Conv2d, conv],
  [nn.Conv1d, conv],
  [nn.MaxPool2d, pool],
  [nn.AvgPool2d, pool],
  [nn.AdaptiveAvgPool2d, adaptiveAvgPool],
  [nn.BatchNorm1d, batchNorm],
  [nn.BatchNorm2d, batchNorm],
  [nn.Unflatten, unflatten],
  [nn.GroupNorm, groupNorm],
]);
