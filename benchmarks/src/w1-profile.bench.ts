// Where does a W1 step's time go? One thread runs W1 steps under V8's sampling profiler (node's
// inspector), and every sample's function is sorted into: kernels (WebAssembly, the generated
// typed-array loops, the optimizer's flat update), garbage collection, and everything else
// (autograd bookkeeping, op dispatch, allocation): the "outside kernels" share.
import { Session } from "node:inspector";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import {
  type Tensor,
  adamScalarsF32,
  adamUpdateF32,
  createWasmKernels,
  isWasmSimdSupported,
  nn,
  runInStepRegion,
  setDefaultWasmKernels,
  tensor,
} from "@threadgrad/core";
import { W1_SPEC as W1, mlpProblem } from "./inputs.js";
import type { Ctx } from "./measure.js";
import type { Row } from "./table.js";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

// Names of the JavaScript kernels: core's generated loops and matmul, optim's flat updates.
const JS_KERNEL_NAMES = [
  "binary",
  "unary",
  "reduce_\\w+",
  "stridedCopy",
  "matmul",
  "transposeCopy",
  "reluForward",
  "reluBackward",
  "addBias",
  "adamUpdate",
  "adamUpdateF32",
  "sgdUpdate",
  "sgdUpdateF32",
  "rmspropUpdate",
  "adagradUpdate",
  "reduceSlices",
  "partialNorm",
  "logSoftmaxKernel",
  "logSoftmaxBackwardKernel",
];
const JS_KERNELS = new RegExp(`^(${JS_KERNEL_NAMES.join("|")})$`);

const ADAM = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maximize: false, decoupledWeightDecay: false };

/**
 * W1 as one rank of DataParallel runs it: parameters and bound gradients in the wasm memory, every
 * tensor of the step in the step region, the loss as a sum over the shard divided by the batch,
 * and the float32 SIMD Adam update over all parameters (what a rank does for its segment).
 */
function rankStep(batch: number): () => void {
  const { model, x: x0, y: y0 } = mlpProblem({ ...W1, batch });
  const params = model.parameters();
  const n = params.reduce((s, p) => s + p.numel, 0);
  const k = createWasmKernels({ heapBytes: (4 * n + batch * W1.sizes[0]!) * 4 + (1 << 20) });
  setDefaultWasmKernels(k);
  const [p, g, m, v] = [0, 1, 2, 3].map(() => k.allocF32(n)) as [
    Float32Array,
    Float32Array,
    Float32Array,
    Float32Array,
  ];
  let off = 0;
  for (const t of params) {
    const view = p.subarray(off, off + t.numel);
    view.set(t.data as Float32Array);
    t.setStorage(view);
    t.bindGrad(g.subarray(off, off + t.numel));
    off += t.numel;
  }
  const xs = k.allocF32(x0.numel);
  xs.set(x0.data as Float32Array);
  let t = 0;
  return () => {
    runInStepRegion(k, () => {
      for (const q of params) q.grad = null;
      const x = tensor(xs, { shape: x0.shape });
      const loss = nn.F.crossEntropy((model.forward as (x: Tensor) => Tensor)(x), y0, { reduction: "sum" });
      loss.item();
      loss.div(batch).backward();
      for (const q of params) q.syncGrad();
    });
    t++;
    adamUpdateF32(k, p, g, m, v, null, 0, n, adamScalarsF32(t, { ...ADAM, lr: W1.lr }));
  };
}

type Bucket = "wasm kernels" | "js kernels" | "gc" | "outside kernels" | "idle";

function bucketOf(node: ProfileNode): Bucket {
  const { functionName: f, url } = node.callFrame;
  if (f.startsWith("wasm-function") || url.startsWith("wasm://")) return "wasm kernels";
  if (f === "(garbage collector)") return "gc";
  if (f === "(idle)" || f === "(root)" || f === "(program)") return "idle";
  if (JS_KERNELS.test(f)) return "js kernels";
  return "outside kernels";
}

function post<T>(session: Session, method: string, params: object = {}): Promise<T> {
  return new Promise((resolve, reject) =>
    session.post(method, params, (err, res) => (err ? reject(err) : resolve(res as T))),
  );
}

interface Shares {
  ms: number;
  samples: number;
  /** percent of the busy samples per bucket */
  shares: Record<Bucket, number>;
  /** the largest functions outside kernels: "name (file) percent" */
  topOutside: string[];
}

/** Runs `step` `steps` times under the sampling profiler and sorts the samples into buckets. */
async function profileSteps(step: () => void, steps: number, warmup: number): Promise<Shares> {
  for (let i = 0; i < warmup; i++) step(); // JIT and WebAssembly tier-up first
  const session = new Session();
  session.connect();
  try {
    await post(session, "Profiler.enable");
    await post(session, "Profiler.setSamplingInterval", { interval: 100 });
    await post(session, "Profiler.start");
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) step();
    const ms = (performance.now() - t0) / steps;
    const { profile } = await post<{ profile: Profile }>(session, "Profiler.stop");
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    const parent = new Map<number, number>();
    for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    // Samples taken inside node:inspector's own calls (Profiler.stop serialising the profile) are
    // the profiler's cost, not the step's.
    const inProfiler = (id: number): boolean => {
      for (let at: number | undefined = id; at !== undefined; at = parent.get(at))
        if (byId.get(at)!.callFrame.url === "node:inspector") return true;
      return false;
    };
    const totals = new Map<Bucket, number>();
    const outside = new Map<string, number>();
    profile.samples.forEach((id, i) => {
      const node = byId.get(id)!;
      const b = inProfiler(id) ? "idle" : bucketOf(node);
      const dt = profile.timeDeltas[i] ?? 0;
      totals.set(b, (totals.get(b) ?? 0) + dt);
      if (b === "outside kernels") {
        const where = node.callFrame.url.split("/").slice(-2).join("/") || "native";
        const key = `${node.callFrame.functionName || "(anonymous)"} (${where})`;
        outside.set(key, (outside.get(key) ?? 0) + dt);
      }
    });
    const busy = [...totals].filter(([b]) => b !== "idle").reduce((s, [, v]) => s + v, 0);
    const buckets: Bucket[] = ["wasm kernels", "js kernels", "gc", "outside kernels", "idle"];
    const topOutside = [...outside]
      .sort((x, y) => y[1] - x[1])
      .slice(0, 6)
      .map(([k, v]) => `${k} ${((100 * v) / busy).toFixed(1)}%`);
    return {
      ms,
      samples: profile.samples.length,
      shares: Object.fromEntries(buckets.map((b) => [b, (100 * (totals.get(b) ?? 0)) / busy])) as Record<
        Bucket,
        number
      >,
      topOutside,
    };
  } finally {
    session.disconnect();
  }
}

function rowOf(config: string, r: Shares): Row {
  const share = (b: Bucket) => r.shares[b];
  const note =
    `wasm kernels ${share("wasm kernels").toFixed(1)}%, JS kernels ${share("js kernels").toFixed(1)}%, ` +
    `GC ${share("gc").toFixed(1)}%, ` +
    `outside kernels ${share("outside kernels").toFixed(1)}% (autograd, op dispatch, allocation); ` +
    `${r.ms.toFixed(2)} ms/step under the profiler`;
  return {
    workload: "W1 profile",
    config,
    impl: "threadgrad",
    peer: false,
    threads: 1,
    unit: "% outside",
    better: "lower",
    median: share("outside kernels") + share("gc"),
    min: null,
    max: null,
    samples: r.samples,
    note,
    extra: { wasm: share("wasm kernels"), js: share("js kernels"), gc: share("gc"), outside: share("outside kernels") },
  };
}

export async function w1Profile(ctx: Ctx): Promise<Row[]> {
  const steps = ctx.quick ? 10 : 100;
  const rows: Row[] = [];
  const { model, opt, x, y } = mlpProblem(W1);
  ctx.log(`W1 profile, object API, ${steps} steps`);
  rows.push(
    rowOf(
      `batch ${W1.batch}, 1 thread, object API, ${steps} steps`,
      await profileSteps(
        () => {
          opt.zeroGrad();
          nn.F.crossEntropy((model.forward as (t: typeof x) => typeof x)(x), y).backward();
          opt.step();
        },
        steps,
        30,
      ),
    ),
  );
  if (isWasmSimdSupported()) {
    // A rank's step as DataParallel runs it, on the whole batch and on a 2-worker shard, each in a
    // fresh worker thread as a rank is: its own isolate, so the JIT has seen only this step (in this
    // process the suites before it leave V8's feedback polymorphic).
    for (const batch of [W1.batch, W1.batch / 2]) {
      ctx.log(`W1 profile, a rank's step, batch ${batch}, ${steps} steps in a worker thread`);
      const worker = new Worker(new URL(import.meta.url), {
        workerData: { w1ProfileRank: { batch, steps, warmup: ctx.quick ? 10 : 300 } },
      });
      try {
        const r = await new Promise<Shares>((resolve, reject) => {
          worker.once("message", resolve);
          worker.once("error", reject);
        });
        rows.push(rowOf(`batch ${batch}, a rank's step (wasm arena, step region, SIMD Adam), ${steps} steps`, r));
        ctx.log(`  largest outside kernels: ${r.topOutside.join(", ")}`);
      } finally {
        await worker.terminate();
      }
    }
  }
  return rows;
}

// Inside the worker thread w1Profile starts for a rank's step.
const job = (workerData as { w1ProfileRank?: { batch: number; steps: number; warmup: number } } | null)?.w1ProfileRank;
if (!isMainThread && job !== undefined) {
  void profileSteps(rankStep(job.batch), job.steps, job.warmup).then((r) => parentPort!.postMessage(r));
}
