import type { Tensor } from "../tensor/tensor.js";
import { stack } from "../ops/shape.js";
import { zerosLike } from "../tensor/creation.js";
import { grad } from "./engine.js";
import { enableGrad } from "./grad-mode.js";

type Fn = (...xs: Tensor[]) => Tensor;

function prepare(inputs: Tensor | Tensor[]): Tensor[] {
  return (Array.isArray(inputs) ? inputs : [inputs]).map((x) => x.detach().requiresGrad_(true));
}

const orZeros = (gs: (Tensor | null)[], xs: Tensor[]): Tensor[] => gs.map((g, i) => g ?? zerosLike(xs[i]!));

/** Vector-Jacobian product: `[f(inputs), vᵀ·J]`. */
export function vjp(
  fn: Fn,
  inputs: Tensor | Tensor[],
  v?: Tensor,
  opts: { createGraph?: boolean } = {},
): [Tensor, Tensor[]] {
  const xs = prepare(inputs);
  const out = enableGrad(() => fn(...xs));
  const gs = grad(out, xs, { gradOutputs: v ?? null, allowUnused: true, createGraph: opts.createGraph ?? false });
  return [out.detach(), orZeros(gs, xs)];
}

/** Jacobian of `fn` at `inputs`: shape `[...out.shape, ...input.shape]` per input. */
export function jacobian(fn: Fn, inputs: Tensor | Tensor[], opts: { createGraph?: boolean } = {}): Tensor[] {
  const xs = prepare(inputs);
  const out = enableGrad(() => fn(...xs));
  const rows: Tensor[][] = xs.map(() => []);
  for (let i = 0; i < out.numel; i++) {
    const e = zerosLike(out);
    e.data[i] = 1;
    const gs = orZeros(
      grad(out, xs, { gradOutputs: e, retainGraph: true, allowUnused: true, createGraph: opts.createGraph ?? false }),
      xs,
    );
    gs.forEach((g, k) => {
      rows[k]!.push(g);
    });
  }
  return rows.map((r, k) =>
    out.numel === 0 ? zerosLike(xs[k]!) : stack(r, 0).reshape([...out.shape, ...xs[k]!.shape]),
  );
}

/** Hessian of a scalar `fn` at one input: shape `[...x.shape, ...x.shape]`. */
export function hessian(fn: (x: Tensor) => Tensor, input: Tensor): Tensor {
  return jacobian((x) => {
    const [g] = grad(fn(x), [x], { createGraph: true });
    return g!;
  }, input)[0]!;
}

/** Hessian-vector product of a scalar `fn` at `input` with `v`: `[f(x), H·v]`, by double backward. */
export function hvp(fn: (x: Tensor) => Tensor, input: Tensor, v: Tensor): [Tensor, Tensor] {
  const [x] = prepare(input);
  const out = enableGrad(() => fn(x!));
  const [g] = grad(out, [x!], { createGraph: true });
  const [hv] = grad(g!, [x!], { gradOutputs: v, allowUnused: true });
  return [out.detach(), hv ?? zerosLike(x!)];
}
