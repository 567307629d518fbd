// W4 double-backward: the W1 MLP with tanh; loss = CE + 0.1 · mean over the batch of ||dCE/dx||²,
// dCE/dx from grad(ce, [x], { createGraph: true }); then backward to the weights and an Adam step.
// Also the module DataParallel loads in every worker for W4 scaling (createModel, w4ShardLoss).
import { type Tensor, grad, nn } from "@threadgrad/core";
import { buildMlp } from "@threadgrad/workers";

export const W4 = {
  sizes: [784, 256, 256, 10],
  activation: "tanh",
  /** the global batch; w4ShardLoss needs it to scale the per-shard penalty */
  batch: 256,
  lr: 1e-3,
  penalty: 0.1,
  seed: 0,
} as const;

/**
 * The W4 loss of one batch (`ceCoef` 0 leaves only the penalty term, for the gradient check).
 * @example w4Loss(model, x, y).backward(); opt.step();
 */
export function w4Loss(model: nn.Module, x: Tensor, y: Tensor, ceCoef = 1): Tensor {
  const xi = x.detach().requiresGrad_();
  const ce = nn.F.crossEntropy((model.forward as (t: Tensor) => Tensor)(xi), y);
  const [dx] = grad(ce, [xi], { createGraph: true });
  const penalty = dx!.pow(2).sum(1).mean().mul(W4.penalty);
  return ceCoef === 1 ? ce.add(penalty) : ce.mul(ceCoef).add(penalty);
}

// DataParallel's loss function sees (output, target) only, so the model keeps the input it made
// differentiable; model and loss are the same module instance inside a worker.
let lastInput: Tensor | null = null;

class InputGradMlp extends nn.Module {
  net = buildMlp([...W4.sizes], W4.activation);

  forward(x: Tensor): Tensor {
    const xi = x.detach().requiresGrad_();
    lastInput = xi;
    return (this.net.forward as (t: Tensor) => Tensor)(xi);
  }
}

/** The W4 model for DataParallel: the tanh MLP, recording its input for the penalty. */
export function createModel(): nn.Module {
  return new InputGradMlp();
}

/**
 * W4's loss as DataParallel wants it: the SUM over the shard, which the trainer divides by the
 * global batch B. With ℓ_b the per-sample CE, dCE/dx_b = ∇ℓ_b / B, so the shard's share is
 * Σ ℓ_b + 0.1 · Σ ||∇ℓ_b||² / B²  (then / B: CE + 0.1 · mean_b ||dCE/dx_b||²).
 */
export function w4ShardLoss(out: Tensor, y: Tensor): Tensor {
  const xi = lastInput;
  if (xi === null) throw new Error("w4ShardLoss: the model did not run forward (use createModel from this module)");
  lastInput = null;
  const ceSum = nn.F.crossEntropy(out, y, { reduction: "sum" });
  const [g] = grad(ceSum, [xi], { createGraph: true });
  return ceSum.add(
    g!
      .pow(2)
      .sum()
      .mul(W4.penalty / (W4.batch * W4.batch)),
  );
}
