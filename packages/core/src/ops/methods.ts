import { type BackwardOptions, backward } from "../autograd/engine.js";
import type { DType } from "../tensor/dtype.js";
import { formatTensor } from "../tensor/format.js";
import { Tensor } from "../tensor/tensor.js";
import * as cmp from "./compare.js";
import * as comp from "./composite.js";
import * as ew from "./elementwise.js";
import * as ip from "./inplace.js";
import * as ix from "./indexing.js";
import * as la from "./linalg.js";
import * as mk from "./masking.js";
import type { TensorLike } from "./op.js";
import * as red from "./reduce.js";
import type { Dims } from "./reduce.js";
import * as sh from "./shape.js";
import * as sp from "./split.js";

// Tensor methods are attached here rather than in tensor.ts so that the tensor module does not
// depend on the ops (which depend on it).
declare module "../tensor/tensor.js" {
  interface Tensor {
    backward(gradient?: Tensor | null, options?: BackwardOptions): void;
    add(o: TensorLike, alpha?: number): Tensor;
    sub(o: TensorLike, alpha?: number): Tensor;
    mul(o: TensorLike): Tensor;
    div(o: TensorLike): Tensor;
    pow(o: TensorLike): Tensor;
    neg(): Tensor;
    exp(): Tensor;
    log(): Tensor;
    log1p(): Tensor;
    sqrt(): Tensor;
    abs(): Tensor;
    sign(): Tensor;
    erf(): Tensor;
    tanh(): Tensor;
    sigmoid(): Tensor;
    relu(): Tensor;
    gelu(opts?: { approximate?: "none" | "tanh" }): Tensor;
    softplus(beta?: number, threshold?: number): Tensor;
    maximum(o: TensorLike): Tensor;
    minimum(o: TensorLike): Tensor;
    clamp(min?: number | null, max?: number | null): Tensor;
    sum(dims?: Dims, keepdim?: boolean): Tensor;
    mean(dims?: Dims, keepdim?: boolean): Tensor;
    max(dims?: Dims, keepdim?: boolean): Tensor;
    min(dims?: Dims, keepdim?: boolean): Tensor;
    var(dims?: Dims, opts?: { correction?: number; keepdim?: boolean }): Tensor;
    std(dims?: Dims, opts?: { correction?: number; keepdim?: boolean }): Tensor;
    logsumexp(dims?: Dims, keepdim?: boolean): Tensor;
    softmax(dim?: number): Tensor;
    logSoftmax(dim?: number): Tensor;
    norm(p?: number, dims?: Dims, keepdim?: boolean): Tensor;
    argmax(dim?: number, keepdim?: boolean): Tensor;
    argmin(dim?: number, keepdim?: boolean): Tensor;
    reshape(...shape: number[] | [readonly number[]]): Tensor;
    view(...shape: number[] | [readonly number[]]): Tensor;
    transpose(dim0?: number, dim1?: number): Tensor;
    readonly T: Tensor;
    permute(...dims: number[] | [readonly number[]]): Tensor;
    narrow(dim: number, start: number, length: number): Tensor;
    slice(dim: number, start?: number, end?: number, step?: number): Tensor;
    expand(...shape: number[] | [readonly number[]]): Tensor;
    broadcastTo(shape: readonly number[]): Tensor;
    squeeze(dim?: number | readonly number[]): Tensor;
    unsqueeze(dim: number): Tensor;
    flatten(startDim?: number, endDim?: number): Tensor;
    gather(dim: number, index: Tensor): Tensor;
    scatterAdd(dim: number, index: Tensor, src: Tensor): Tensor;
    indexSelect(dim: number, index: Tensor): Tensor;
    indexAdd(dim: number, index: Tensor, source: Tensor): Tensor;
    matmul(o: Tensor): Tensor;
    mm(o: Tensor): Tensor;
    dot(o: Tensor): Tensor;
    outer(o: Tensor): Tensor;
    eq(o: TensorLike): Tensor;
    ne(o: TensorLike): Tensor;
    lt(o: TensorLike): Tensor;
    le(o: TensorLike): Tensor;
    gt(o: TensorLike): Tensor;
    ge(o: TensorLike): Tensor;
    where(cond: Tensor, other: TensorLike): Tensor;
    to(dtype: DType): Tensor;
    float(): Tensor;
    double(): Tensor;
    int(): Tensor;
    clone(): Tensor;
    add_(o: TensorLike, alpha?: number): Tensor;
    sub_(o: TensorLike, alpha?: number): Tensor;
    mul_(o: TensorLike): Tensor;
    div_(o: TensorLike): Tensor;
    clamp_(min?: number | null, max?: number | null): Tensor;
    zero_(): Tensor;
    fill_(value: number): Tensor;
    copy_(src: Tensor): Tensor;
    toString(): string;
    maskedFill(mask: Tensor, value: TensorLike): Tensor;
    tril(diagonal?: number): Tensor;
    triu(diagonal?: number): Tensor;
    split(sizeOrSections: number | readonly number[], dim?: number): Tensor[];
    chunk(chunks: number, dim?: number): Tensor[];
  }
}

const shapeArg = (args: number[] | [readonly number[]]): readonly number[] =>
  Array.isArray(args[0]) ? (args[0] as readonly number[]) : (args as number[]);

const P = Tensor.prototype;
P.backward = function (gradient = null, options = {}) {
  backward(this, gradient, options);
};
P.add = function (o, alpha) {
  return ew.add(this, o, alpha);
};
P.sub = function (o, alpha) {
  return ew.sub(this, o, alpha);
};
P.mul = function (o) {
  return ew.mul(this, o);
};
P.div = function (o) {
  return ew.div(this, o);
};
P.pow = function (o) {
  return ew.pow(this, o);
};
P.neg = function () {
  return ew.neg(this);
};
P.exp = function () {
  return ew.exp(this);
};
P.log = function () {
  return ew.log(this);
};
P.log1p = function () {
  return ew.log1p(this);
};
P.sqrt = function () {
  return ew.sqrt(this);
};
P.abs = function () {
  return ew.abs(this);
};
P.sign = function () {
  return ew.sign(this);
};
P.erf = function () {
  return ew.erf(this);
};
P.tanh = function () {
  return ew.tanh(this);
};
P.sigmoid = function () {
  return ew.sigmoid(this);
};
P.relu = function () {
  return ew.relu(this);
};
P.gelu = function (opts) {
  return comp.gelu(this, opts);
};
P.softplus = function (beta, threshold) {
  return ew.softplus(this, beta, threshold);
};
P.maximum = function (o) {
  return ew.maximum(this, o);
};
P.minimum = function (o) {
  return ew.minimum(this, o);
};
P.clamp = function (min, max) {
  return ew.clamp(this, min, max);
};
P.sum = function (dims, keepdim) {
  return red.sum(this, dims, keepdim);
};
P.mean = function (dims, keepdim) {
  return red.mean(this, dims, keepdim);
};
P.max = function (dims, keepdim) {
  return red.max(this, dims, keepdim);
};
P.min = function (dims, keepdim) {
  return red.min(this, dims, keepdim);
};
P.var = function (dims, opts) {
  return comp.variance(this, dims, opts);
};
P.std = function (dims, opts) {
  return comp.std(this, dims, opts);
};
P.logsumexp = function (dims, keepdim) {
  return red.logsumexp(this, dims, keepdim);
};
P.softmax = function (dim) {
  return comp.softmax(this, dim);
};
P.logSoftmax = function (dim) {
  return comp.logSoftmax(this, dim);
};
P.norm = function (p, dims, keepdim) {
  return comp.norm(this, p, dims, keepdim);
};
P.argmax = function (dim, keepdim) {
  return red.argmax(this, dim, keepdim);
};
P.argmin = function (dim, keepdim) {
  return red.argmin(this, dim, keepdim);
};
P.reshape = function (...shape) {
  return sh.reshape(this, shapeArg(shape));
};
P.view = function (...shape) {
  return sh.view(this, shapeArg(shape));
};
P.transpose = function (d0, d1) {
  return sh.transpose(this, d0, d1);
};
Object.defineProperty(P, "T", {
  get(this: Tensor) {
    return sh.permute(
      this,
      this.shape.map((_, i) => this.ndim - 1 - i),
    );
  },
});
P.permute = function (...dims) {
  return sh.permute(this, shapeArg(dims));
};
P.narrow = function (dim, start, length) {
  return sh.narrow(this, dim, start, length);
};
P.slice = function (dim, start, end, step) {
  return sh.slice(this, dim, start, end, step);
};
P.expand = function (...shape) {
  return sh.expand(this, shapeArg(shape));
};
P.broadcastTo = function (shape) {
  return sh.broadcastTo(this, shape);
};
P.squeeze = function (dim) {
  return sh.squeeze(this, dim);
};
P.unsqueeze = function (dim) {
  return sh.unsqueeze(this, dim);
};
P.flatten = function (s, e) {
  return sh.flatten(this, s, e);
};
P.gather = function (dim, index) {
  return ix.gather(this, dim, index);
};
P.scatterAdd = function (dim, index, src) {
  return ix.scatterAdd(this, dim, index, src);
};
P.indexSelect = function (dim, index) {
  return ix.indexSelect(this, dim, index);
};
P.indexAdd = function (dim, index, source) {
  return ix.indexAdd(this, dim, index, source);
};
P.matmul = function (o) {
  return la.matmul(this, o);
};
P.mm = function (o) {
  return la.mm(this, o);
};
P.dot = function (o) {
  return la.dot(this, o);
};
P.outer = function (o) {
  return la.outer(this, o);
};
P.eq = function (o) {
  return cmp.eq(this, o);
};
P.ne = function (o) {
  return cmp.ne(this, o);
};
P.lt = function (o) {
  return cmp.lt(this, o);
};
P.le = function (o) {
  return cmp.le(this, o);
};
P.gt = function (o) {
  return cmp.gt(this, o);
};
P.ge = function (o) {
  return cmp.ge(this, o);
};
P.where = function (cond, other) {
  return ew.where(cond, this, other);
};
P.to = function (dtype) {
  return ew.to(this, dtype);
};
P.float = function () {
  return ew.to(this, "float32");
};
P.double = function () {
  return ew.to(this, "float64");
};
P.int = function () {
  return ew.to(this, "int32");
};
P.clone = function () {
  return ew.clone(this);
};
P.add_ = function (o, alpha) {
  return ip.add_(this, o, alpha);
};
P.sub_ = function (o, alpha) {
  return ip.sub_(this, o, alpha);
};
P.mul_ = function (o) {
  return ip.mul_(this, o);
};
P.div_ = function (o) {
  return ip.div_(this, o);
};
P.clamp_ = function (min, max) {
  return ip.clamp_(this, min, max);
};
P.zero_ = function () {
  return ip.zero_(this);
};
P.fill_ = function (v) {
  return ip.fill_(this, v);
};
P.copy_ = function (src) {
  return ip.copy_(this, src);
};
P.toString = function () {
  return formatTensor(this);
};
P.maskedFill = function (mask, value) {
  return mk.maskedFill(this, mask, value);
};
P.tril = function (diagonal) {
  return mk.tril(this, diagonal);
};
P.triu = function (diagonal) {
  return mk.triu(this, diagonal);
};
P.split = function (sizeOrSections, dim) {
  return sp.split(this, sizeOrSections, dim);
};
P.chunk = function (chunks, dim) {
  return sp.chunk(this, chunks, dim);
};
