// Finite-difference check of a gradient: the directional derivative along a random direction,
// by a 4-point central difference, against the dot product of the computed gradient with it.

import { mulberry32 } from "@threadgrad/core";

export type Weights = { w: Float32Array; b: Float32Array }[];

export interface GradProblem {
  value(weights: Weights): number;
  grad(weights: Weights): Weights;
}

export interface FdResult {
  /** directional derivative by finite differences */
  fd: number;
  /** the same from the computed gradient */
  analytic: number;
  relErr: number;
  ok: boolean;
}

/** Mulberry32 → Box-Muller normals; a fixed direction for every implementation. */
function normals(seed: number): () => number {
  const u = mulberry32(seed);
  return () => Math.sqrt(-2 * Math.log(u() + 1e-12)) * Math.cos(2 * Math.PI * u());
}

const rms = (v: Float32Array) => Math.sqrt(v.reduce((s, x) => s + x * x, 0) / Math.max(1, v.length));

/** A direction with each tensor's entries scaled to that tensor's RMS (a relative perturbation). */
export function direction(weights: Weights, seed = 7): Weights {
  const n = normals(seed);
  const make = (t: Float32Array) => {
    const s = rms(t) || 1;
    return Float32Array.from(t, () => n() * s);
  };
  return weights.map(({ w, b }) => ({ w: make(w), b: make(b) }));
}

const axpy = (ws: Weights, v: Weights, h: number): Weights =>
  ws.map(({ w, b }, i) => ({ w: w.map((x, k) => x + h * v[i]!.w[k]!), b: b.map((x, k) => x + h * v[i]!.b[k]!) }));

const dot = (a: Weights, b: Weights) =>
  a.reduce(
    (s, { w, b: bias }, i) =>
      s + w.reduce((t, x, k) => t + x * b[i]!.w[k]!, 0) + bias.reduce((t, x, k) => t + x * b[i]!.b[k]!, 0),
    0,
  );

/**
 * Compares `p.grad` with finite differences of `p.value` along one random direction; `ok` when
 * they agree to `tol` (float32 arithmetic limits the agreement to about 1e-3).
 * @example const r = fdCheck(problem, weights); console.log(r.ok, r.relErr);
 */
export function fdCheck(
  p: GradProblem,
  weights: Weights,
  opts: { eps?: number; tol?: number; seed?: number } = {},
): FdResult {
  const eps = opts.eps ?? 1e-2,
    tol = opts.tol ?? 1e-2;
  const v = direction(weights, opts.seed);
  const f = (h: number) => p.value(axpy(weights, v, h));
  const fd = (8 * (f(eps) - f(-eps)) - (f(2 * eps) - f(-2 * eps))) / (12 * eps);
  const analytic = dot(p.grad(weights), v);
  const relErr = Math.abs(fd - analytic) / Math.max(Math.abs(fd), Math.abs(analytic), 1e-30);
  return { fd, analytic, relErr, ok: relErr <= tol };
}
