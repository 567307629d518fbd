// Value parsers shared by flags (always strings) and config files (JSON values). Each returns the
// parsed value or throws a ValueError whose message reads after the flag's name:
// "--lr" + " must be >= 0, got -1".
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import {
  CHARGPT,
  GPT_LIMITS,
  type GptModelSpec,
  MAX_PARAMETERS,
  gptParameterCount,
  gptSpecProblem,
} from "@threadgrad/workers";

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

/** A built-in gpt over bytes (vocab 256), from `gpt:KEY=N,...` or the `chargpt` preset. */
export type GptChoice = GptModelSpec & { vocab: 256 };

/** What `--model` chose: mlp layer widths, a built-in image model, a gpt, or a user module. */
export type ModelChoice = number[] | ModelPreset | GptChoice | ModuleModel;

/** Whether `--model` chose a user module (not mlp widths, an image preset or a gpt). */
export const isModuleModel = (m: ModelChoice | null | undefined): m is ModuleModel =>
  typeof m === "object" && m !== null && !Array.isArray(m) && "module" in m;

const MODEL_FORMS =
  "mlp:IN,HIDDEN...,OUT, cnn, lenet5, chargpt, gpt:layers=2,heads=4,dim=128,context=64, " +
  "or a JavaScript module path such as ./net.mjs or ./net.mjs#build";

/** The keys `gpt:...` takes, in the order describeModel writes them; a missing key takes chargpt's value. */
const GPT_KEYS = ["layers", "heads", "dim", "context"] as const;

/**
 * A gpt over bytes: `chargpt`, `gpt:layers=2,heads=4,dim=128,context=64` (keys in any order, missing
 * keys as chargpt), or `{ kind: "gpt", ... }` in a config file (as a run's settings store it).
 */
export function parseGpt(v: unknown): GptChoice {
  const form = "gpt:KEY=N,... with keys layers, heads, dim and context, as in gpt:layers=2,heads=4,dim=128,context=64";
  const given = new Map<string, unknown>();
  if (v === "chargpt") return { ...CHARGPT };
  if (typeof v === "string" && /^gpt:/.test(v.trim())) {
    const body = v.trim().slice(4);
    for (const part of body === "" ? [] : body.split(",")) {
      const eq = part.indexOf("=");
      const key = eq < 0 ? part.trim() : part.slice(0, eq).trim();
      if (eq < 0) throw new ValueError(`must be ${form}: '${key}' has no =N, got ${show(v)}`);
      if (given.has(key)) throw new ValueError(`must be ${form}: ${key} is given twice, got ${show(v)}`);
      given.set(key, part.slice(eq + 1).trim());
    }
  } else if (v !== null && typeof v === "object" && !Array.isArray(v) && (v as { kind?: unknown }).kind === "gpt") {
    for (const [key, value] of Object.entries(v)) if (key !== "kind") given.set(key, value);
    if (given.has("vocab") && given.get("vocab") !== 256)
      throw new ValueError(`must be a gpt over bytes: vocab must be 256, got ${show(given.get("vocab"))}`);
    given.delete("vocab");
  } else throw new ValueError(`must be ${form}, got ${show(v)}`);
  for (const key of given.keys()) {
    if (!(GPT_KEYS as readonly string[]).includes(key))
      throw new ValueError(`must be ${form}: unknown key '${key}', got ${show(v)}`);
  }
  const spec: GptChoice = { ...CHARGPT };
  for (const key of GPT_KEYS) {
    if (!given.has(key)) continue;
    const raw = given.get(key);
    const n = typeof raw === "number" ? raw : /^\d+$/.test(String(raw)) ? Number(raw) : Number.NaN;
    if (!(Number.isInteger(n) && n >= 1 && n <= GPT_LIMITS[key]))
      throw new ValueError(`must be ${form}: ${key} must be an integer from 1 to ${GPT_LIMITS[key]}, got ${show(raw)}`);
    spec[key] = n;
  }
  const problem = gptSpecProblem(spec);
  if (problem !== null) throw new ValueError(`must be ${form}: ${problem}`);
  const count = gptParameterCount(spec);
  if (count > MAX_PARAMETERS)
    throw new ValueError(`makes a gpt of ${count} parameters, more than the ${MAX_PARAMETERS} allowed, got ${show(v)}`);
  return spec;
}

/** A path to a JavaScript module: relative or absolute, or any name ending .mjs, .js or .cjs. */
const isModulePath = (v: string): boolean =>
  v.startsWith("./") || v.startsWith("../") || isAbsolute(v) || /\.[mc]?js(#|$)/.test(v);

/**
 * `--model`: `mlp:784,128,10`, `cnn`, `lenet5`, `chargpt`, `gpt:layers=2,heads=4,dim=128,context=64`
 * (see parseGpt), or `./net.mjs[#export]` (a module whose export,
 * default `default`, returns an nn.Module; the path is made absolute against the current directory).
 * A config file may also give `{ kind: "mlp", sizes }`, a list of widths or `{ module, export }`.
 */
export function parseModel(v: unknown): ModelChoice {
  if (typeof v === "string") {
    const text = v.trim();
    if ((MODEL_PRESETS as readonly string[]).includes(text)) return text as ModelPreset;
    if (text === "chargpt" || text.startsWith("gpt:")) return parseGpt(text);
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
  if (v !== null && typeof v === "object" && !Array.isArray(v) && (v as { kind?: unknown }).kind === "gpt")
    return parseGpt(v);
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

/** The model as a user would write it: `mlp:784,128,10`, `cnn`, `gpt:layers=2,...`, `./net.mjs#build`. */
export function describeModel(m: ModelChoice | null): string {
  if (m === null) return "mlp:?";
  if (Array.isArray(m)) return `mlp:${m.join(",")}`;
  if (typeof m === "string") return m;
  if (!isModuleModel(m)) return `gpt:${GPT_KEYS.map((k) => `${k}=${m[k]}`).join(",")}`;
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
