// What a trainer checkpoint's fields may hold. Every value read back is checked here, once, and
// copied into a typed object; nothing is defaulted, and no name in the file is imported or called.
// Errors read `checkpoint: FILE: field 'progress.epoch' must be a non-negative integer, got NaN`.
import type { ScheduleConfig } from "@threadgrad/optim";
import type { StoredTensor } from "./checkpoint.js";
import type { LossSpec, ModelSpec } from "./spec.js";
import { GPT_LIMITS, gptParameterCount } from "./gpt.js";
import { MAX_PARAMETERS, MODEL_KINDS, imageModelParameterShapes, mlpParameterCount, parameterCount } from "./spec.js";

/** Checks fields of one file; every message names the file and the field. */
export class FieldReader {
  constructor(readonly path: string) {}

  fail(field: string, rule: string, got: unknown): never {
    const what = got === undefined ? "is missing; it " : "";
    // A rule may quote another library's message about a value from the file: escape it too.
    const text = `field '${safeText(field)}' ${what}${escapeControls(rule)}, got ${show(got)}`;
    throw new Error(`checkpoint: ${this.path}: ${text}`);
  }

  /** A field that must not be there at all. */
  reject(field: string, why: string): never {
    throw new Error(`checkpoint: ${this.path}: field '${safeText(field)}' ${escapeControls(why)}`);
  }

  object(v: unknown, field: string): Record<string, unknown> {
    if (v === null || typeof v !== "object" || Array.isArray(v) || v instanceof Uint8Array)
      this.fail(field, "must be a map of fields", v);
    return v as Record<string, unknown>;
  }

  int(v: unknown, field: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? (min === 0 ? "non-negative" : `>= ${min}`) : `${min}..${max}`;
      this.fail(field, `must be ${range === "non-negative" ? "a non-negative integer" : `an integer ${range}`}`, v);
    }
    return v;
  }

  /** A finite number in the range; `above` makes `min` exclusive. */
  num(v: unknown, field: string, rule: { min?: number; max?: number; above?: boolean } = {}): number {
    const { min, max, above } = rule;
    const ok =
      typeof v === "number" &&
      Number.isFinite(v) &&
      (min === undefined || (above ? v > min : v >= min)) &&
      (max === undefined || v < max);
    if (!ok) {
      const parts = [min === undefined ? "" : `${above ? ">" : ">="} ${min}`, max === undefined ? "" : `< ${max}`];
      this.fail(field, `must be a finite number ${parts.filter(Boolean).join(" and ")}`.trimEnd(), v);
    }
    return v as number;
  }

  bool(v: unknown, field: string): boolean {
    if (typeof v !== "boolean") this.fail(field, "must be true or false", v);
    return v;
  }

  str(v: unknown, field: string): string {
    if (typeof v !== "string" || v === "" || v.length > 4096) this.fail(field, "must be a non-empty string", v);
    return v;
  }

  choice<T extends string>(v: unknown, field: string, choices: readonly T[]): T {
    if (!choices.includes(v as T)) this.fail(field, `must be one of ${choices.join(", ")}`, v);
    return v as T;
  }

  array(v: unknown, field: string, minLength: number, maxLength: number): unknown[] {
    if (!Array.isArray(v) || v.length < minLength || v.length > maxLength)
      this.fail(field, `must be a list of ${minLength} to ${maxLength} values`, v);
    return v;
  }

  /** A tensor stored as raw bytes, float32 unless `dtypes` allows more; `shape` (when given) must match. */
  tensor(
    v: unknown,
    field: string,
    shape?: readonly number[],
    dtypes: readonly StoredTensor["dtype"][] = ["float32"],
  ): StoredTensor {
    const t = this.object(v, field);
    const dtype = this.choice(own(t, "dtype"), `${field}.dtype`, dtypes);
    const size = dtype === "float64" ? 8 : 4;
    const dims = this.array(own(t, "shape"), `${field}.shape`, 0, 32).map((d, i) =>
      this.int(d, `${field}.shape[${i}]`, 0, MAX_PARAMETERS),
    );
    const numel = dims.reduce((a, b) => a * b, 1);
    if (numel > MAX_PARAMETERS) this.fail(`${field}.shape`, `must hold at most ${MAX_PARAMETERS} elements`, dims);
    if (shape !== undefined && dims.join() !== shape.join())
      this.fail(`${field}.shape`, `must be [${shape.join(", ")}] (the parameter's shape)`, dims);
    const bytes = own(t, "bytes");
    if (!(bytes instanceof Uint8Array) || bytes.byteLength !== numel * size)
      this.fail(`${field}.bytes`, `must be ${numel * size} bytes of ${dtype} for shape [${dims.join(", ")}]`, bytes);
    return { dtype, shape: dims, bytes };
  }
}

/** A field of a decoded map, only if the map itself holds it (never one inherited from Object.prototype). */
export const own = (o: Record<string, unknown>, key: string): unknown => (Object.hasOwn(o, key) ? o[key] : undefined);

/** A value as an error message shows it: short, and with control characters escaped. */
export function show(v: unknown): string {
  if (v instanceof Uint8Array) return `${v.byteLength} bytes`;
  if (typeof v === "number" || typeof v === "boolean" || v === null) return String(v);
  if (v === undefined) return "nothing";
  if (typeof v === "bigint") return `${v}n`;
  let text: string;
  try {
    text =
      JSON.stringify(v, (_k, x: unknown) => (x instanceof Uint8Array ? `<${x.byteLength} bytes>` : x)) ?? String(v);
  } catch {
    text = String(typeof v);
  }
  return safeText(text);
}

/**
 * Text from a file made safe to print: control characters (C0, C1: terminal escapes) and
 * direction overrides escaped as \\uXXXX, and at most 120 characters.
 */
export function safeText(text: string): string {
  return escapeControls(text.length > 120 ? `${text.slice(0, 117)}...` : text);
}

function escapeControls(text: string): string {
  let out = "";
  for (const c of text) {
    const code = c.codePointAt(0)!;
    const isUnsafe =
      code < 0x20 ||
      (code >= 0x7f && code <= 0x9f) ||
      code === 0x2028 ||
      code === 0x2029 ||
      (code >= 0x202a && code <= 0x202e) ||
      (code >= 0x2066 && code <= 0x2069);
    out += isUnsafe ? `\\u${code.toString(16).padStart(4, "0")}` : c;
  }
  return out;
}

const ACTIVATIONS = ["relu", "tanh", "gelu"] as const;

/** A built-in model spec (sizes bounded before anything is allocated), or a module spec kept as data only. */
export function readModelSpec(r: FieldReader, v: unknown, field: string): ModelSpec {
  const m = r.object(v, field);
  if (own(m, "kind") === undefined) {
    const module = r.str(own(m, "module"), `${field}.module`);
    const name = own(m, "export") === undefined ? undefined : r.str(own(m, "export"), `${field}.export`);
    const args = own(m, "args") === undefined ? undefined : r.array(own(m, "args"), `${field}.args`, 0, 1024);
    return { module, ...(name === undefined ? {} : { export: name }), ...(args === undefined ? {} : { args }) };
  }
  const kind = r.choice(own(m, "kind"), `${field}.kind`, MODEL_KINDS);
  if (kind === "gpt") return readGptSpec(r, m, field);
  if (kind !== "mlp") {
    // A built-in image model: its sizes decide its parameters, so they are bounded like an mlp's widths.
    const size = (key: "inChannels" | "height" | "width" | "classes") =>
      r.int(own(m, key), `${field}.${key}`, 1, 1 << 16);
    const spec = {
      kind,
      inChannels: size("inChannels"),
      height: size("height"),
      width: size("width"),
      classes: size("classes"),
    };
    const shapes = imageModelParameterShapes(spec);
    if (typeof shapes === "string") r.fail(`${field}.height`, `is too small: ${shapes}`, spec.height);
    const count = parameterCount(shapes);
    if (count > MAX_PARAMETERS)
      r.fail(`${field}`, `must make at most ${MAX_PARAMETERS} parameters (it makes ${count})`, spec);
    return spec;
  }
  const sizes = r
    .array(own(m, "sizes"), `${field}.sizes`, 2, 1024)
    .map((s, i) => r.int(s, `${field}.sizes[${i}]`, 1, MAX_PARAMETERS));
  if (mlpParameterCount(sizes) > MAX_PARAMETERS)
    r.fail(
      `${field}.sizes`,
      `must make at most ${MAX_PARAMETERS} parameters (it makes ${mlpParameterCount(sizes)})`,
      sizes,
    );
  const spec: ModelSpec = { kind: "mlp", sizes };
  if (own(m, "activation") !== undefined)
    spec.activation = r.choice(own(m, "activation"), `${field}.activation`, ACTIVATIONS);
  if (own(m, "dropout") !== undefined) spec.dropout = r.num(own(m, "dropout"), `${field}.dropout`, { min: 0, max: 1 });
  return spec;
}

/** The built-in losses a checkpoint may name by a string. */
const LOSS_NAMES = ["crossEntropy", "sequenceCrossEntropy", "mse"] as const;

/** A gpt's sizes: positive integers within GPT_LIMITS, dim a multiple of heads, at most MAX_PARAMETERS in all. */
function readGptSpec(r: FieldReader, m: Record<string, unknown>, field: string): ModelSpec {
  const size = (key: keyof typeof GPT_LIMITS) => r.int(own(m, key), `${field}.${key}`, 1, GPT_LIMITS[key]);
  const spec = {
    kind: "gpt" as const,
    vocab: size("vocab"),
    context: size("context"),
    dim: size("dim"),
    heads: size("heads"),
    layers: size("layers"),
  };
  if (spec.dim % spec.heads !== 0) r.fail(`${field}.dim`, `must be divisible by heads (${spec.heads})`, spec.dim);
  const count = gptParameterCount(spec);
  if (count > MAX_PARAMETERS)
    r.fail(`${field}`, `must make at most ${MAX_PARAMETERS} parameters (it makes ${count})`, spec);
  return spec;
}

export function readLossSpec(r: FieldReader, v: unknown, field: string): LossSpec {
  if (typeof v === "string") return r.choice(v, field, LOSS_NAMES);
  const l = r.object(v, field);
  if (own(l, "module") !== undefined) {
    const module = r.str(own(l, "module"), `${field}.module`);
    return own(l, "export") === undefined ? { module } : { module, export: r.str(own(l, "export"), `${field}.export`) };
  }
  r.choice(own(l, "name"), `${field}.name`, ["crossEntropy"] as const);
  const spec: { name: "crossEntropy"; labelSmoothing?: number; weight?: number[] } = { name: "crossEntropy" };
  if (own(l, "labelSmoothing") !== undefined)
    spec.labelSmoothing = r.num(own(l, "labelSmoothing"), `${field}.labelSmoothing`, { min: 0, max: 1 });
  if (own(l, "weight") !== undefined) {
    spec.weight = r
      .array(own(l, "weight"), `${field}.weight`, 1, 1 << 20)
      .map((w, i) => r.num(w, `${field}.weight[${i}]`, { min: 0 }));
  }
  return spec;
}

const SCHEDULE_KINDS = ["step", "multistep", "exponential", "cosine", "linear", "onecycle", "sequential"] as const;

/** A learning-rate schedule; a sequential one nests at most `depth` levels. */
export function readSchedule(r: FieldReader, v: unknown, field: string, depth = 0): ScheduleConfig {
  const s = r.object(v, field);
  const kind = r.choice(own(s, "kind"), `${field}.kind`, SCHEDULE_KINDS);
  const opt = <T>(key: string, read: (x: unknown, f: string) => T): T | undefined =>
    own(s, key) === undefined ? undefined : read(own(s, key), `${field}.${key}`);
  const finite = (x: unknown, f: string) => r.num(x, f);
  const positive = (x: unknown, f: string) => r.num(x, f, { min: 0, above: true });
  const count = (x: unknown, f: string) => r.int(x, f, 1);
  const steps = (x: unknown, f: string) => r.array(x, f, 0, 4096).map((t, i) => r.int(t, `${f}[${i}]`, 0));
  const defined = <T extends object>(o: T): T =>
    Object.fromEntries(Object.entries(o).filter(([, x]) => x !== undefined)) as T;
  switch (kind) {
    case "step":
      return defined({ kind, stepSize: count(own(s, "stepSize"), `${field}.stepSize`), gamma: opt("gamma", finite) });
    case "multistep":
      return defined({
        kind,
        milestones: steps(own(s, "milestones"), `${field}.milestones`),
        gamma: opt("gamma", finite),
      });
    case "exponential":
      return { kind, gamma: finite(own(s, "gamma"), `${field}.gamma`) };
    case "cosine":
      return defined({ kind, tMax: positive(own(s, "tMax"), `${field}.tMax`), etaMin: opt("etaMin", finite) });
    case "linear":
      return defined({
        kind,
        startFactor: opt("startFactor", finite),
        endFactor: opt("endFactor", finite),
        totalIters: opt("totalIters", count),
      });
    case "onecycle":
      return defined({
        kind,
        maxLr: r.num(own(s, "maxLr"), `${field}.maxLr`, { min: 0 }),
        totalSteps: count(own(s, "totalSteps"), `${field}.totalSteps`),
        pctStart: opt("pctStart", (x, f) =>
          r.num(x, f, { min: 0 }) > 1 ? r.fail(f, "must be in [0, 1]", x) : (x as number),
        ),
        annealStrategy: opt("annealStrategy", (x, f) => r.choice(x, f, ["cos", "linear"] as const)),
        divFactor: opt("divFactor", positive),
        finalDivFactor: opt("finalDivFactor", positive),
        threePhase: opt("threePhase", (x, f) => r.bool(x, f)),
      });
    case "sequential": {
      if (depth >= 8) r.fail(field, "must nest sequential schedules at most 8 deep", "a deeper one");
      const schedules = r
        .array(own(s, "schedules"), `${field}.schedules`, 1, 64)
        .map((x, i) => readSchedule(r, x, `${field}.schedules[${i}]`, depth + 1));
      const milestones = steps(own(s, "milestones"), `${field}.milestones`);
      if (milestones.length !== schedules.length - 1 || milestones.some((m, i) => i > 0 && m <= milestones[i - 1]!))
        r.fail(`${field}.milestones`, `must be ${schedules.length - 1} increasing steps (one per switch)`, milestones);
      return { kind, schedules, milestones };
    }
  }
}
