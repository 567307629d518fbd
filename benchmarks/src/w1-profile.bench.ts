// Where does a W1 step's time go? One thread runs W1 steps under V8's sampling profiler (node's
// inspector), and every sample's function is sorted into: kernels (WebAssembly, the generated
// typed-array loops, the optimizer's flat update), garbage collection, and everything else
// (autograd bookkeeping, op dispatch, allocation): the "outside kernels" share.
import { Session } from "node:inspector";
import { nn } from "@threadgrad/core";
import { W1_SPEC as W1, mlpProblem } from "./inputs.js";
import type { Ctx } from "./measure.js";
import type { Row } from "./table.js";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

// Names of the JavaScript kernels: core's generated loops and matmul, optim's flat updates.
const JS_KERNELS = /^(binary|unary|reduce_\w+|stridedCopy|matmul|transposeCopy|reluForward|reluBackward|addBias|adamUpdate|sgdUpdate|rmspropUpdate|adagradUpdate|reduceSlices|partialNorm)$/;

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
  return new Promise((resolve, reject) => session.post(method, params, (err, res) => (err ? reject(err) : resolve(res as T))));
}

export async function w1Profile(ctx: Ctx): Promise<Row[]> {
  const steps = ctx.quick ? 10 : 60;
  const { model, opt, x, y } = mlpProblem(W1);
  const step = () => {
    opt.zeroGrad();
    nn.F.crossEntropy((model.forward as (t: typeof x) => typeof x)(x), y).backward();
    opt.step();
  };
  for (let i = 0; i < 10; i++) step(); // JIT and WebAssembly tier-up first
  ctx.log(`W1 profile, ${steps} steps`);
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
    const totals = new Map<Bucket, number>();
    profile.samples.forEach((id, i) => {
      const b = bucketOf(byId.get(id)!);
      totals.set(b, (totals.get(b) ?? 0) + (profile.timeDeltas[i] ?? 0));
    });
    const busy = [...totals].filter(([b]) => b !== "idle").reduce((s, [, v]) => s + v, 0);
    const share = (b: Bucket) => (100 * (totals.get(b) ?? 0)) / busy;
    const note = `wasm kernels ${share("wasm kernels").toFixed(1)}%, JS kernels ${share("js kernels").toFixed(1)}%, GC ${share("gc").toFixed(1)}%, ` +
      `outside kernels ${share("outside kernels").toFixed(1)}% (autograd, op dispatch, allocation); ${ms.toFixed(2)} ms/step under the profiler`;
    return [{
      workload: "W1 profile", config: `batch ${W1.batch}, 1 thread, ${steps} steps`, impl: "threadgrad", peer: false, threads: 1,
      unit: "% outside", better: "lower", median: share("outside kernels") + share("gc"), min: null, max: null, samples: profile.samples.length, note,
      extra: { wasm: share("wasm kernels"), js: share("js kernels"), gc: share("gc"), outside: share("outside kernels") },
    }];
  } finally {
    session.disconnect();
  }
}
