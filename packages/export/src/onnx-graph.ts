import type { Tensor } from "@threadgrad/core";
import { ATTR_FLOAT, ATTR_INT, ATTR_INTS, ONNX_FLOAT, ONNX_INT32, ONNX_INT64 } from "./onnx-schema.js";

/** A dimension: its size, or null for the batch (a named, free dimension in the graph). */
export type Dim = number | null;

/** A value flowing through the graph: its name, static shape and element type. */
export interface Value {
  name: string;
  shape: Dim[];
  dtype: "float32" | "int32" | "int64";
}

export interface Attribute {
  name: string;
  type: number;
  f?: number;
  i?: number;
  ints?: number[];
}

export const intAttr = (name: string, i: number): Attribute => ({ name, type: ATTR_INT, i });
export const floatAttr = (name: string, f: number): Attribute => ({ name, type: ATTR_FLOAT, f });
export const intsAttr = (name: string, ints: number[]): Attribute => ({ name, type: ATTR_INTS, ints });

export const fmtDims = (shape: readonly Dim[]): string => `[${shape.map((d) => d ?? "batch").join(", ")}]`;

const ELEM_TYPE = { float32: ONNX_FLOAT, int32: ONNX_INT32, int64: ONNX_INT64 } as const;

/** A graph input or output declaration; the batch dimension is the free dimension `batch`. */
export function valueInfo(name: string, v: Value): object {
  const dim = v.shape.map((d) => (d === null ? { dimParam: "batch" } : { dimValue: d }));
  return { name, type: { tensorType: { elemType: ELEM_TYPE[v.dtype], shape: { dim } } } };
}

/** Collects nodes and initializers (as plain objects for protobufjs) under unique names. */
export class Graph {
  readonly nodes: { opType: string; name: string; input: string[]; output: string[]; attribute: Attribute[] }[] = [];
  readonly initializers: object[] = [];
  private readonly valueNames = new Set<string>();
  private readonly nodeNames = new Set<string>();
  private readonly parameters = new Map<Tensor, string>();

  /** `reserved`: names the graph's input and output own. */
  constructor(reserved: string[]) {
    for (const n of reserved) this.valueNames.add(n);
  }

  private unique(names: Set<string>, base: string): string {
    let name = base;
    for (let k = 1; names.has(name); k++) name = `${base}_${k}`;
    names.add(name);
    return name;
  }

  /** A module parameter as an initializer; a parameter shared by two layers (tied weights) is stored once. */
  parameter(name: string, t: Tensor): string {
    let stored = this.parameters.get(t);
    if (stored === undefined) {
      stored = this.floats(name, t.shape, t.data);
      this.parameters.set(t, stored);
    }
    return stored;
  }

  /** A float32 initializer; float64 values are rounded to float32 (the graph computes in float32). */
  floats(name: string, shape: readonly number[], data: ArrayLike<number>): string {
    const bytes = new Uint8Array(4 * data.length);
    const view = new DataView(bytes.buffer);
    for (let i = 0; i < data.length; i++) view.setFloat32(4 * i, data[i]!, true);
    return this.initializer(name, shape, ONNX_FLOAT, bytes);
  }

  /** A one-dimensional int64 initializer (shapes for Reshape). */
  int64s(name: string, data: readonly number[]): string {
    const bytes = new Uint8Array(8 * data.length);
    const view = new DataView(bytes.buffer);
    for (const [i, v] of data.entries()) view.setBigInt64(8 * i, BigInt(v), true);
    return this.initializer(name, [data.length], ONNX_INT64, bytes);
  }

  private initializer(name: string, dims: readonly number[], dataType: number, rawData: Uint8Array): string {
    const unique = this.unique(this.valueNames, name);
    this.initializers.push({ name: unique, dims: [...dims], dataType, rawData });
    return unique;
  }

  /** Adds `opType(inputs)` for the module at `path` and returns the name of its single output. */
  node(opType: string, inputs: string[], path: string, attribute: Attribute[] = []): string {
    const name = this.unique(this.nodeNames, `/${path ? `${path.replaceAll(".", "/")}/` : ""}${opType}`);
    const output = this.unique(this.valueNames, `${name}_output_0`);
    this.nodes.push({ opType, name, input: inputs, output: [output], attribute });
    return output;
  }

  /** Gives the value `name` the graph output's name: renames the node that made it, or adds an Identity. */
  nameOutput(name: string, outputName: string): void {
    const maker = this.nodes.find((n) => n.output[0] === name);
    if (maker !== undefined) maker.output[0] = outputName;
    else this.nodes.push({ opType: "Identity", name: "/Identity", input: [name], output: [outputName], attribute: [] });
  }
}
