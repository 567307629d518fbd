// Value parsers shared by flags (always strings) and config files (JSON values). Each returns the
// parsed value or throws a ValueError whose message reads after the flag's name:
// "--lr" + " must be >= 0, got -1".

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
