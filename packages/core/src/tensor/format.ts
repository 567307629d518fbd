import { getDefaultDtype } from "./dtype.js";
import type { Tensor } from "./tensor.js";

/** Renders a tensor the way PyTorch prints one: `tensor([[1., 2.]], requires_grad=True)`. */
export function formatTensor(t: Tensor): string {
  const values = Array.from(t.data, Number);
  const isFloatType = t.dtype === "float32" || t.dtype === "float64";
  const finite = values.filter(Number.isFinite);
  const allInts = finite.every(Number.isInteger);
  const maxAbs = finite.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  const sci =
    isFloatType && !allInts && (maxAbs >= 1e8 || (maxAbs > 0 && finite.some((v) => v !== 0 && Math.abs(v) < 1e-4)));
  const fmt = (v: number): string => {
    if (t.dtype === "bool") return v ? "True" : "False";
    if (!isFloatType) return String(v);
    if (Number.isNaN(v)) return "nan";
    if (!Number.isFinite(v)) return v > 0 ? "inf" : "-inf";
    if (sci) return v.toExponential(4).replace(/e([+-])(\d)$/, "e$10$2");
    if (allInts) return `${v}.`;
    return v.toFixed(4);
  };
  const cells = values.map(fmt);
  const width = cells.reduce((w, c) => Math.max(w, c.length), 0);
  const pad = (c: string) => c.padStart(width);
  const indent = "tensor(".length;
  const build = (dim: number, offset: number): string => {
    if (t.ndim === 0) return cells[0]!;
    const n = t.shape[dim]!;
    const stride = t.shape.slice(dim + 1).reduce((a, b) => a * b, 1);
    if (dim === t.ndim - 1) return `[${Array.from({ length: n }, (_, i) => pad(cells[offset + i]!)).join(", ")}]`;
    const sep = `,${"\n".repeat(t.ndim - dim - 1)}${" ".repeat(indent + dim + 1)}`;
    return `[${Array.from({ length: n }, (_, i) => build(dim + 1, offset + i * stride)).join(sep)}]`;
  };
  const extras: string[] = [];
  // As PyTorch: the dtype is shown unless it is the default float dtype (or bool).
  if (t.dtype === "int32" || ((t.dtype === "float32" || t.dtype === "float64") && t.dtype !== getDefaultDtype()))
    extras.push(`dtype=${t.dtype}`);
  if (t.numel === 0) extras.unshift(`size=(${t.shape.join(", ")})`);
  if (t.gradFn !== null) extras.push(`grad_fn=${t.gradFn.toString()}`);
  else if (t.requiresGrad) extras.push("requires_grad=True");
  const body = t.numel === 0 ? "[]" : build(0, 0);
  return `tensor(${[body, ...extras].join(", ")})`;
}
