// TensorFlow.js 4.22 versions of W1, W3 and W4, on its pure-JavaScript CPU backend and its
// WebAssembly backend, written as users write them, plus the labelled rewrites that make a form
// faster or correct:
//   /T   transposes hoisted: every matmul (and its gradient) runs on explicitly transposed copies,
//        because tfjs-backend-wasm's transposed matmul (what matMul's gradient uses) is far slower
//   /dx  W4 with dCE/dx written out by hand (softmax − onehot, back through the layers), because
//        tfjs's second-order gradients through tanh, exp and softmax cross-entropy are wrong
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type * as TF from "@tensorflow/tfjs";
import type { Tensor, Tensor2D, Variable } from "@tensorflow/tfjs";

export type TfBackend = "cpu" | "wasm";
/** "plain": as users write it; "T": transposes hoisted; "dx": W4 with a hand-written dCE/dx. */
export type TfForm = "plain" | "T" | "dx" | "dx+T";

export interface TfSession {
  tf: typeof TF;
  backend: TfBackend;
  /** threads the backend computes on */
  threads: number;
  version: string;
}

/** The MLP and a batch, in threadgrad's layout: weight i is [out, in] row-major. */
export interface MlpInputs {
  sizes: number[];
  weights: { w: Float32Array; b: Float32Array }[];
  x: Float32Array;
  y: Int32Array;
  batch: number;
  activation: "relu" | "tanh";
  lr: number;
}

let tfModule: typeof TF | null = null;

/** Loads tfjs and switches it to `backend`; a string says why it could not. */
export async function tfSession(backend: TfBackend): Promise<TfSession | string> {
  try {
    if (tfModule === null) {
      const tf = await import("@tensorflow/tfjs");
      const wasm = await import("@tensorflow/tfjs-backend-wasm");
      const require = createRequire(import.meta.url);
      wasm.setWasmPaths(`${join(dirname(require.resolve("@tensorflow/tfjs-backend-wasm/package.json")), "dist")}/`);
      tf.enableProdMode(); // silences the "install tfjs-node" banner; changes no kernel
      tfModule = tf;
    }
    const tf = tfModule;
    if (!(await tf.setBackend(backend))) return `tfjs backend '${backend}' failed to initialise`;
    await tf.ready();
    let threads = 1; // the CPU backend computes on the calling thread
    if (backend === "wasm") threads = (await import("@tensorflow/tfjs-backend-wasm")).getThreadsCount();
    return { tf, backend, threads, version: tf.version.tfjs };
  } catch (err) {
    return `tfjs unavailable: ${(err as Error).message.split("\n")[0]}`;
  }
}

/** op(a)·op(b); with hoist, on transposed copies, and so is its gradient (a custom gradient). */
function matmul(tf: typeof TF, hoist: boolean): (a: Tensor, b: Tensor, tA?: boolean, tB?: boolean) => Tensor2D {
  if (!hoist) return (a, b, tA = false, tB = false) => tf.matMul(a as Tensor2D, b as Tensor2D, tA, tB);
  const T = (t: Tensor) => tf.transpose(t as Tensor2D);
  const ops = new Map<string, (a: Tensor, b: Tensor) => Tensor2D>();
  return (a, b, tA = false, tB = false) => {
    const key = `${tA}${tB}`;
    let op = ops.get(key);
    if (op === undefined) {
      const f = (x: Tensor, y: Tensor, save: (ts: Tensor[]) => void) => {
        save([x, y]);
        const A = tA ? T(x) : x,
          B = tB ? T(y) : y;
        return {
          value: tf.matMul(A as Tensor2D, B as Tensor2D),
          gradFunc: (dy: Tensor, saved: Tensor[]) => {
            const A2 = tA ? T(saved[0]!) : saved[0]!,
              B2 = tB ? T(saved[1]!) : saved[1]!;
            const dA = tf.matMul(dy as Tensor2D, T(B2)),
              dB = tf.matMul(T(A2), dy as Tensor2D);
            return [tA ? T(dA) : dA, tB ? T(dB) : dB];
          },
        };
      };
      op = tf.customGrad(f as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (
        a: Tensor,
        b: Tensor,
      ) => Tensor2D;
      ops.set(key, op);
    }
    return op(a, b);
  };
}

/** W3: C = op(A)·op(B) read back with dataSync; inputs built by the caller. Returns the step. */
export function tfSgemm(
  s: TfSession,
  a: Float32Array,
  aShape: [number, number],
  b: Float32Array,
  bShape: [number, number],
  tA: boolean,
  tB: boolean,
  hoist: boolean,
) {
  const { tf } = s;
  const A = tf.tensor2d(a, aShape),
    B = tf.tensor2d(b, bShape);
  const mm = matmul(tf, hoist);
  return {
    run: () => {
      const c = tf.tidy(() => mm(A, B, tA, tB));
      c.dataSync();
      c.dispose();
    },
    dispose: () => tf.dispose([A, B]),
  };
}

interface Model {
  vars: Variable[];
  forward: (x: Tensor) => { logits: Tensor2D; hidden: Tensor2D[] };
  x: Tensor2D;
  labels: Tensor2D;
  mm: ReturnType<typeof matmul>;
  dispose: () => void;
}

function transposed(w: Float32Array, out: number, inn: number): Float32Array {
  const t = new Float32Array(w.length);
  for (let o = 0; o < out; o++) for (let i = 0; i < inn; i++) t[i * out + o] = w[o * inn + i]!;
  return t;
}

/** tfjs's usual dense layout: kernel [in, out], y = x·W + b. */
function buildModel(s: TfSession, inp: MlpInputs, hoist: boolean, weights = inp.weights): Model {
  const { tf } = s;
  const { vars, x, labels } = tf.tidy(() => {
    const vs: Variable[] = [];
    inp.sizes.slice(1).forEach((out, l) => {
      const inn = inp.sizes[l]!;
      vs.push(
        tf.variable(tf.tensor2d(transposed(weights[l]!.w, out, inn), [inn, out])),
        tf.variable(tf.tensor1d(weights[l]!.b)),
      );
    });
    const input = tf.tensor2d(inp.x, [inp.batch, inp.sizes[0]!]);
    const onehot = tf.oneHot(tf.tensor1d(inp.y, "int32"), inp.sizes.at(-1)!).toFloat() as Tensor2D;
    return { vars: vs, x: input, labels: onehot };
  });
  const mm = matmul(tf, hoist);
  const act = inp.activation === "tanh" ? tf.tanh : tf.relu;
  const forward = (input: Tensor) => {
    const hidden: Tensor2D[] = [];
    let h = input as Tensor2D;
    for (let l = 0; l < vars.length / 2; l++) {
      h = tf.add(mm(h, vars[2 * l]!), vars[2 * l + 1]!);
      if (l + 1 < vars.length / 2) {
        h = act(h);
        hidden.push(h);
      }
    }
    return { logits: h, hidden };
  };
  return { vars, forward, x, labels, mm, dispose: () => tf.dispose([...vars, x, labels]) };
}

/** The W4 loss: CE + 0.1 · mean over the batch of ||dCE/dx||², the gradient by `form`. */
function w4Loss(s: TfSession, m: Model, form: TfForm, ceCoef = 1): () => Tensor {
  const { tf } = s;
  const ce = (input: Tensor) => tf.losses.softmaxCrossEntropy(m.labels, m.forward(input).logits);
  if (form === "plain" || form === "T") {
    // as users write it: the input gradient by tf.grad inside the optimizer's tape
    return () => {
      const dx = tf.grad(ce)(m.x);
      return tf.add(tf.mul(ce(m.x), ceCoef), tf.mul(0.1, tf.mean(tf.sum(tf.square(dx), 1))));
    };
  }
  return () => {
    const { logits, hidden } = m.forward(m.x);
    const n = m.x.shape[0];
    // dCE/dlogits = (softmax − onehot) / n, then back through the layers with first-order ops only
    let g = tf.div(tf.sub(tf.softmax(logits), m.labels), n) as Tensor2D;
    for (let l = m.vars.length / 2 - 1; l >= 0; l--) {
      g = m.mm(g, m.vars[2 * l]!, false, true);
      if (l > 0) {
        const h = hidden[l - 1]!;
        g = tf.mul(g, tf.sub(1, tf.square(h))) as Tensor2D; // tanh' = 1 − tanh²
      }
    }
    const c = tf.losses.softmaxCrossEntropy(m.labels, logits);
    return tf.add(tf.mul(c, ceCoef), tf.mul(0.1, tf.mean(tf.sum(tf.square(g), 1))));
  };
}

const hoisted = (form: TfForm) => form === "T" || form === "dx+T";

/**
 * One training step (zero grads is implicit in tfjs: minimize computes fresh gradients), W1
 * (`w4: false`) or W4; the loss is read back so the step has finished when it returns.
 */
export function tfTrainStep(s: TfSession, inp: MlpInputs, form: TfForm, w4: boolean) {
  const { tf } = s;
  const m = buildModel(s, inp, hoisted(form));
  const opt = tf.train.adam(inp.lr, 0.9, 0.999, 1e-8); // tfjs's default ε is 1e-7; threadgrad's (PyTorch's) 1e-8
  const loss = w4 ? w4Loss(s, m, form) : () => tf.losses.softmaxCrossEntropy(m.labels, m.forward(m.x).logits);
  return {
    run: () => {
      const cost = opt.minimize(loss as () => TF.Scalar, true, m.vars)!;
      cost.dataSync();
      cost.dispose();
    },
    dispose: () => {
      opt.dispose();
      m.dispose();
    },
  };
}

/**
 * W4's loss (`part` 'total') or only its penalty term ('penalty') at the given weights, and the
 * gradient `form` computes for it, in threadgrad's layout (for the finite-difference check).
 */
export function tfW4Problem(s: TfSession, inp: MlpInputs, form: TfForm, part: "total" | "penalty") {
  const { tf } = s;
  const build = (weights: MlpInputs["weights"]) => buildModel(s, inp, hoisted(form), weights);
  const ceCoef = part === "total" ? 1 : 0;
  return {
    value(weights: MlpInputs["weights"]): number {
      const m = build(weights);
      try {
        const v = tf.tidy(() => w4Loss(s, m, form, ceCoef)());
        const out = v.dataSync()[0]!;
        v.dispose();
        return out;
      } finally {
        m.dispose();
      }
    },
    grad(weights: MlpInputs["weights"]): { w: Float32Array; b: Float32Array }[] {
      const m = build(weights);
      try {
        const { grads, value } = tf.variableGrads(w4Loss(s, m, form, ceCoef) as () => TF.Scalar, m.vars);
        value.dispose();
        const out = inp.sizes.slice(1).map((o, l) => ({
          w: transposed(grads[m.vars[2 * l]!.name]!.dataSync() as Float32Array, inp.sizes[l]!, o),
          b: Float32Array.from(grads[m.vars[2 * l + 1]!.name]!.dataSync()),
        }));
        tf.dispose(Object.values(grads));
        return out;
      } finally {
        m.dispose();
      }
    },
  };
}
