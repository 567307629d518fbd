// Option checks shared by optimizers and schedulers. Each bad value gets exactly one message that
// names the owner, the option and the value: `Adam: lr must be >= 0, got -0.1`.

const show = (v: unknown): string =>
  typeof v === "number" || typeof v === "boolean" || v === undefined ? String(v) : JSON.stringify(v);

/** Throws unless `v` is a number >= 0 (NaN fails). */
export function checkNonNegative(owner: string, name: string, v: unknown): void {
  if (typeof v !== "number" || !(v >= 0)) throw new Error(`${owner}: ${name} must be >= 0, got ${show(v)}`);
}

/** Throws unless `v` is a number > 0. */
export function checkPositive(owner: string, name: string, v: unknown): void {
  if (typeof v !== "number" || !(v > 0)) throw new Error(`${owner}: ${name} must be > 0, got ${show(v)}`);
}

/** Throws unless `v` is a number in [0, 1). */
export function checkUnitInterval(owner: string, name: string, v: unknown): void {
  if (typeof v !== "number" || !(v >= 0 && v < 1)) {
    throw new Error(`${owner}: ${name} must be in [0, 1), got ${show(v)}`);
  }
}

/** Throws unless `v` is an integer >= `min`. */
export function checkInteger(owner: string, name: string, v: unknown, min: number): void {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min) {
    throw new Error(`${owner}: ${name} must be an integer >= ${min}, got ${show(v)}`);
  }
}

/** Throws unless `v` is a boolean. */
export function checkBoolean(owner: string, name: string, v: unknown): void {
  if (typeof v !== "boolean") throw new Error(`${owner}: ${name} must be a boolean, got ${show(v)}`);
}

/** Throws unless `v` is one of `allowed`. */
export function checkOneOf(owner: string, name: string, v: unknown, allowed: readonly unknown[]): void {
  if (!allowed.includes(v)) {
    throw new Error(`${owner}: ${name} must be one of ${allowed.map(show).join(", ")}, got ${show(v)}`);
  }
}

/**
 * Throws on a key not in `known`. Catches snake_case carried over from PyTorch (`weight_decay`),
 * which would otherwise be silently ignored.
 */
export function checkKnownKeys(owner: string, options: object, known: readonly string[]): void {
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new Error(`${owner}: unknown option "${key}" (expected one of ${known.join(", ")})`);
    }
  }
}
