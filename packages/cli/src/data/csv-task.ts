import type { Task } from "./types.js";

// Auto-detection caps the class count: integer prices or years would otherwise become a
// classification problem with hundreds of thousands of outputs. task: "classification" lifts it.
export const MAX_AUTO_CLASSES = 1000;
/**
 * When at least this share of the targets, but not all, are class indices (integers in
 * 0..MAX_AUTO_CLASSES-1), the task is refused as unclear rather than guessed: a few stray labels
 * (5000, -1, 1.5) among class indices must not silently turn a classification set into regression.
 */
export const UNCLEAR_TASK_SHARE = 0.9;
/** A guessed classification with more distinct labels than this gets a warning: it may be a count or a price. */
export const MANY_CLASSES = 50;
const MAX_LABEL = 2 ** 31 - 1;
const LINES_SHOWN = 3;

// Header names shown in messages: short, and made of what column names are made of. Anything else
// (a file that is no CSV, say /etc/passwd named by a checkpoint) is referred to by column number.
const COLUMN_NAME = /^[\p{L}\p{N} _.,()[\]%#/+*-]{1,64}$/u;

/** Whether a header name may appear in a message (see COLUMN_NAME). */
export function isShownName(name: string): boolean {
  return COLUMN_NAME.test(name);
}

/** `column 2 ("height")`, or `column 2` for a name that is not shown. */
export function describeColumn(names: string[], index: number): string {
  const name = names[index];
  return name !== undefined && isShownName(name) ? `column ${index + 1} ("${name}")` : `column ${index + 1}`;
}

type Kind = "class" | "fractional" | "negative" | "large";

function kindOf(t: number, largest: number): Kind {
  if (!Number.isInteger(t)) return "fractional";
  if (t < 0) return "negative";
  return t > largest ? "large" : "class";
}

const KIND_TEXT: Record<Exclude<Kind, "class">, string> = {
  fractional: "is not an integer",
  negative: "is negative",
  large: `is ${MAX_AUTO_CLASSES} or more`,
};

function requireLabels(targets: Float64Array, lines: Int32Array, source: string, column: string): void {
  targets.forEach((t, i) => {
    const kind = kindOf(t, MAX_LABEL);
    if (kind !== "class") {
      const problem = kind === "large" ? `is above ${MAX_LABEL}` : KIND_TEXT[kind];
      throw new Error(
        `${source} line ${lines[i]}, ${column}: classification labels must be integers >= 0; this one ${problem}`,
      );
    }
  });
}

function unclear(targets: Float64Array, lines: Int32Array, source: string, column: string, classLike: number): Error {
  const shown: string[] = [];
  targets.forEach((t, i) => {
    const kind = kindOf(t, MAX_AUTO_CLASSES - 1);
    if (kind !== "class" && shown.length < LINES_SHOWN) shown.push(`line ${lines[i]} ${KIND_TEXT[kind]}`);
  });
  const others = targets.length - classLike;
  const rest = others > shown.length ? ` (and ${others - shown.length} more)` : "";
  return new Error(
    `${source} ${column}: cannot tell the task: ${classLike} of ${targets.length} targets are class indices ` +
      `(integers 0..${MAX_AUTO_CLASSES - 1}), but ${shown.join(", ")}${rest}; ` +
      `pass --task classification or --task regression`,
  );
}

/**
 * The task: `requested` if given (classification then needs integer labels >= 0), else
 * classification when every target is an integer in 0..MAX_AUTO_CLASSES-1, regression when fewer
 * than UNCLEAR_TASK_SHARE of them are, and an error naming the odd lines in between.
 * Messages start with `source` (e.g. `csv: f.csv`) and name lines and `column` (e.g. `column 3 ("y")`).
 * @example chooseTask(Float64Array.of(0, 2, 1), Int32Array.of(2, 3, 4), undefined, "t", "column 2").numClasses // 3
 */
export function chooseTask(
  targets: Float64Array,
  lines: Int32Array,
  requested: Task | undefined,
  source: string,
  column: string,
): { task: Task; numClasses: number; warning?: string } {
  if (requested === "regression") return { task: "regression", numClasses: 0 };
  if (requested === "classification") requireLabels(targets, lines, source, column);
  else {
    let classLike = 0;
    for (const t of targets) if (kindOf(t, MAX_AUTO_CLASSES - 1) === "class") classLike++;
    if (classLike < targets.length) {
      if (classLike >= UNCLEAR_TASK_SHARE * targets.length) throw unclear(targets, lines, source, column, classLike);
      return { task: "regression", numClasses: 0 };
    }
  }
  let largest = 0;
  for (const t of targets) largest = Math.max(largest, t);
  const numClasses = largest + 1;
  if (requested === "classification") return { task: "classification", numClasses };
  const warning = guessWarning(targets, numClasses, source, column);
  return warning === null ? { task: "classification", numClasses } : { task: "classification", numClasses, warning };
}

/**
 * The warning for a guessed classification that may be a quantity: many distinct labels, or
 * labels that skip classes (1-based ratings, years, ids). Null when the labels are 0..k-1, k small.
 */
function guessWarning(targets: Float64Array, numClasses: number, source: string, column: string): string | null {
  const seen = new Uint8Array(numClasses);
  for (const t of targets) seen[t] = 1;
  const missing: number[] = [];
  seen.forEach((isSeen, label) => {
    if (!isSeen) missing.push(label);
  });
  const distinct = numClasses - missing.length;
  if (missing.length === 0 && distinct <= MANY_CLASSES) return null;
  const shown = missing.slice(0, LINES_SHOWN).join(", ") + (missing.length > LINES_SHOWN ? ", ..." : "");
  // The classes are the sorted distinct labels (csv.ts maps them to 0..K-1), so a gap makes no empty
  // class; it still hints at a quantity, such as 1-based ratings or counts.
  const gaps =
    missing.length === 0
      ? ""
      : `; ${missing.length} of the labels 0..${numClasses - 1} never occur (${shown}), ` +
        `so the ${distinct} labels become classes 0..${distinct - 1}`;
  const many = distinct > MANY_CLASSES ? ` (more than ${MANY_CLASSES})` : "";
  return (
    `${source} ${column}: guessed classification from integer targets: ` +
    `${distinct} distinct labels${many}${gaps}. If the column is a quantity, pass --task regression; ` +
    "--task classification keeps the classes and silences this warning"
  );
}
