// Value parsers shared by flags (always strings) and config files (JSON values). Each returns the
// parsed value or throws a ValueError whose message reads after the flag's name:
// "--lr" + " must be >= 0, got -1".
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";

export class ValueError extends Error {}

/** A value as the user wrote it: bare when it is a plain word or number, quoted otherwise. */
const show = (v: unknown): string =>
  typeof v === "string" && /^[\w.+:,-]+$/.test(v) ? v : (JSON.stringify(v) ?? String(v));

export interface NumberRule {
  min?: number;
  /** true: the value must be strictly greater than `min` */
  isMinExclusive?: boolean;
  max?: number;
  isMaxExclusive?: boolean;
  isInteger?: boolean;
}

function describe(rule: NumberRule): string {
  const kind = rule.isInteger ? "an integer" : "a number";
  const parts: string[] = [];
  if (rule.min !== undefined) parts.push(`${rule.isMinExclusive ? ">" : ">="} ${rule.min}`);
  if (rule.max !== undefined) parts.push(`${rule.isMaxExclusive ? "<" : "<="} ${rule.max}`);
  return parts.length ? `${kind} ${parts.join(" and ")}` : kind;
}

/** A finite number from a number or a numeric string (`"1e-3"`), checked against `rule`. */
export function parseNumber(v: unknown, rule: NumberRule = {}): number {
  const n = typeof v === "number" ? v : typeof v === "string" && v.trim() !== "" ? Number(v.trim()) : NaN;
  const ok =
    Number.isFinite(n) &&
    (!rule.isInteger || Number.isInteger(n)) &&
    (rule.min === undefined || (rule.isMinExclusive ? n > rule.min : n >= rule.min)) &&
    (rule.max === undefined || (rule.isMaxExclusive ? n < rule.max : n <= rule.max));
  if (!ok) throw new ValueError(`must be ${describe(rule)}, got ${show(v)}`);
  return n;
}

export function parseChoice<T extends string>(v: unknown, choices: readonly T[]): T {
  if (typeof v !== "string" || !choices.includes(v as T)) {
    throw new ValueError(`must be one of ${choices.join(", ")}, got ${show(v)}`);
  }
  return v as T;
}

export function parseBoolean(v: unknown): boolean {
  if (typeof v === "boolean") return v;
  if (v === "true") return true;
  if (v === "false") return false;
  throw new ValueError(`must be true or false, got ${show(v)}`);
}

export function parseString(v: unknown): string {
  if (typeof v !== "string" || v.trim() === "") throw new ValueError(`must be a non-empty string, got ${show(v)}`);
  return v;
}

/** `"a,b,c"` or `[a, b, c]` as numbers, each checked against `rule`. */
export function parseNumberList(v: unknown, rule: NumberRule, what: string): number[] {
  const items = Array.isArray(v) ? v : typeof v === "string" ? v.split(",") : null;
  if (items === null || items.length === 0) throw new ValueError(`must be ${what}, got ${show(v)}`);
  return items.map((item) => {
    try {
      return parseNumber(item, rule);
    } catch {
      throw new ValueError(`must be ${what}, got ${show(v)}`);
    }
  });
}

/**
 * An MLP spec: `mlp:784,256,10` (layer widths, input first), `{ kind: "mlp", sizes: [...] }` in a
 * config file, or a bare array of widths.
 */
export function parseMlpSizes(v: unknown): number[] {
  const what = "mlp:SIZES with at least two positive integer widths, input first, as in mlp:784,128,10";
  let sizes: unknown = v;
  if (typeof v === "string") {
    const m = /^mlp:(.*)$/.exec(v.trim());
    if (m === null) throw new ValueError(`must be ${what} (the only built-in model is mlp), got ${show(v)}`);
    sizes = m[1]!.split(",");
  } else if (v !== null && typeof v === "object" && !Array.isArray(v)) {
    const o = v as { kind?: unknown; sizes?: unknown };
    if (o.kind !== "mlp") throw new ValueError(`must be ${what}, got ${show(v)}`);
    sizes = o.sizes;
  }
  let list: number[] = [];
  try {
    list = parseNumberList(sizes, { min: 1, isInteger: true }, what);
  } catch {
    // reported below with the value as given
  }
  if (list.length < 2) throw new ValueError(`must be ${what}, got ${show(v)}`);
  return list;
}

/** Built-in image models `--model` takes by name; they size themselves from the data's images. */
export const MODEL_PRESETS = ["cnn", "lenet5"] as const;
export type ModelPreset = (typeof MODEL_PRESETS)[number];

/** A model from a user module: its absolute path and the export that builds it. */
export interface ModuleModel {
  module: string;
  export: string;
}

/** What `--model` chose: mlp layer widths, a built-in image model, or a user module. */
export type ModelChoice = number[] | ModelPreset | ModuleModel;

const MODEL_FORMS =
  "mlp:IN,HIDDEN...,OUT, cnn, lenet5, or a JavaScript module path such as ./net.mjs or ./net.mjs#build";

/** A path to a JavaScript module: relative or absolute, or any name ending .mjs, .js or .cjs. */
const isModulePath = (v: string): boolean =>
  v.startsWith("./") || v.startsWith("../") || isAbsolute(v) || /\.[mc]?js(#|$)/.test(v);

/**
 * `--model`: `mlp:784,128,10`, `cnn`, `lenet5`, or `./net.mjs[#export]` (a module whose export,
 * default `default`, returns an nn.Module; the path is made absolute against the current directory).
 * A config file may also give `{ kind: "mlp", sizes }`, a list of widths or `{ module, export }`.
 */
export function parseModel(v: unknown): ModelChoice {
  if (typeof v === "string") {
    const text = v.trim();
    if ((MODEL_PRESETS as readonly string[]).includes(text)) return text as ModelPreset;
    if (isModulePath(text)) {
      const hash = text.lastIndexOf("#");
      const path = hash < 0 ? text : text.slice(0, hash);
      const name = hash < 0 ? "default" : text.slice(hash + 1);
      if (path === "" || !/^[A-Za-z_$][\w$]*$/.test(name))
        throw new ValueError(
          `must be a module path with an optional #export name, as in ./net.mjs#build, got ${show(v)}`,
        );
      return { module: resolve(path), export: name };
    }
    if (!text.startsWith("mlp:")) throw new ValueError(`must be ${MODEL_FORMS}, got ${show(v)}`);
  }
  if (v !== null && typeof v === "object" && !Array.isArray(v) && "module" in v) {
    const o = v as { module?: unknown; export?: unknown };
    if (
      typeof o.module !== "string" ||
      !isAbsolute(o.module) ||
      (o.export !== undefined && typeof o.export !== "string")
    )
      throw new ValueError(`must be { module: absolute path, export: name }, got ${show(v)}`);
    return { module: o.module, export: o.export ?? "default" };
  }
  return parseMlpSizes(v);
}

/** The trainer's spec for a user module chosen with --model: its file URL and export. */
export const moduleSpecOf = (m: ModuleModel): { module: string; export: string } => ({
  module: pathToFileURL(m.module).href,
  export: m.export,
});

/** The model as a user would write it: `mlp:784,128,10`, `cnn`, `./net.mjs#build`. */
export function describeModel(m: ModelChoice | null): string {
  if (m === null) return "mlp:?";
  if (Array.isArray(m)) return `mlp:${m.join(",")}`;
  if (typeof m === "string") return m;
  return m.export === "default" ? m.module : `${m.module}#${m.export}`;
}

/** `auto` or a worker count from 1 to 256. */
export function parseWorkers(v: unknown): number | "auto" {
  if (v === "auto") return "auto";
  try {
    return parseNumber(v, { min: 1, max: 256, isInteger: true });
  } catch {
    throw new ValueError(`must be auto or an integer from 1 to 256, got ${show(v)}`);
  }
}

export interface EvalEvery {
  every: number;
  unit: "epoch" | "step";
}

/** `2` or `2epochs` (every two epochs), `500steps` (every 500 training steps). */
export function parseEvalEvery(v: unknown): EvalEvery {
  const m = /^\s*(\d+)\s*(epochs?|steps?)?\s*$/.exec(
    typeof v === "number" ? String(v) : typeof v === "string" ? v : "",
  );
  const every = m ? Number(m[1]) : NaN;
  if (m === null || !(every >= 1)) {
    throw new ValueError(`must be a positive number of epochs (2, 2epochs) or steps (500steps), got ${show(v)}`);
  }
  return { every, unit: m[2]?.startsWith("step") ? "step" : "epoch" };
}
