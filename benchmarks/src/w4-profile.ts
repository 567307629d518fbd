// Where does a W4 step's time go? W4 steps (the tanh MLP, loss = CE + 0.1 · mean ||dCE/dx||², see
// w4-model.ts) run under V8's sampling profiler, and every sample is attributed to the kernel it was
// in (WebAssembly exports by name, JavaScript functions by name and file), to the innermost op frame
// above it, and to the phase of the step: forward, grad(createGraph) (the first backward, which
// builds the graph of dCE/dx), the penalty, backward (the double backward to the weights), and Adam.
// Two forms: the object API on one thread as the W4 suite runs it (parameters on the JavaScript
// heap, Adam in JavaScript), and a rank's step as DataParallel runs it (parameters and bound
// gradients in wasm memory, the step region, w4ShardLoss, the float32 SIMD Adam) at a shard of 256
// and of 128 rows (2 workers). Not part of `pnpm bench`: run it by hand,
//   node benchmarks/dist/w4-profile.js [steps=40] [form=all|object|rank256|rank128]
// and compare shares within one run (the machine's load moves absolute times).
import { readFileSync } from "node:fs";
import { Session } from "node:inspector";
import { fileURLToPath } from "node:url";
import {
  type Tensor,
  adamScalarsF32,
  adamUpdateF32,
  createWasmKernels,
  grad,
  nn,
  runInStepRegion,
  setDefaultWasmKernels,
  setKernelBackend,
  tensor,
} from "@threadgrad/core";
import { W1_SPEC, mlpProblem } from "./inputs.js";
import { W4, createModel, w4ShardLoss } from "./w4-model.js";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

type Phase = "forward" | "grad(createGraph)" | "penalty" | "backward" | "adam" | "other";
let phase: Phase = "other";
/** Sampled phase: the profiler cannot see a variable, so each phase runs inside a named function. */
const inPhase: Record<Phase, <T>(f: () => T) => T> = {
  forward: function phase_forward(f) {
    phase = "forward";
    return f();
  },
  "grad(createGraph)": function phase_grad(f) {
    phase = "grad(createGraph)";
    return f();
  },
  penalty: function phase_penalty(f) {
    phase = "penalty";
    return f();
  },
  backward: function phase_backward(f) {
    phase = "backward";
    return f();
  },
  adam: function phase_adam(f) {
    phase = "adam";
    return f();
  },
  other: (f) => f(),
};
const PHASE_OF_FRAME: Record<string, Phase> = {
  phase_forward: "forward",
  phase_grad: "grad(createGraph)",
  phase_penalty: "penalty",
  phase_backward: "backward",
  phase_adam: "adam",
};

/** The W4 step as the W4 suite runs it: object API, one thread, the default kernels. */
function objectStep(): () => void {
  const spec = { ...W4, sizes: [...W4.sizes], activation: "tanh" as const };
  const { model, opt, x, y } = mlpProblem(spec);
  const fwd = (t: Tensor) => (model.forward as (t: Tensor) => Tensor).call(model, t);
  return () => {
    opt.zeroGrad();
    const xi = x.detach().requiresGrad_();
    const ce = inPhase.forward(() => nn.F.crossEntropy(fwd(xi), y));
    const [dx] = inPhase["grad(createGraph)"](() => grad(ce, [xi], { createGraph: true }));
    const loss = inPhase.penalty(() => ce.add(dx!.pow(2).sum(1).mean().mul(W4.penalty)));
    inPhase.backward(() => loss.backward());
    inPhase.adam(() => opt.step());
  };
}

const ADAM = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maximize: false, decoupledWeightDecay: false };

/** A rank's W4 step on a shard of `rows`, as DataParallel runs it (see w1-profile's rankStep). */
function rankStep(rows: number): () => void {
  const { x: x0, y: y0 } = mlpProblem({ ...W1_SPEC, batch: rows });
  const model = createModel();
  const params = model.parameters();
  const n = params.reduce((s, p) => s + p.numel, 0);
  const k = createWasmKernels({ heapBytes: (4 * n + rows * W4.sizes[0]!) * 4 + (1 << 20) });
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
  const fwd = (t: Tensor) => (model.forward as (t: Tensor) => Tensor).call(model, t);
  let t = 0;
  return () => {
    runInStepRegion(k, () => {
      for (const q of params) q.grad = null;
      const x = tensor(xs, { shape: x0.shape });
      const out = inPhase.forward(() => fwd(x));
      // w4ShardLoss is one call: its grad(createGraph) and penalty share the "grad" phase here.
      const loss = inPhase["grad(createGraph)"](() => w4ShardLoss(out, y0));
      loss.item();
      inPhase.backward(() => loss.div(W4.batch).backward());
      for (const q of params) q.syncGrad();
    });
    t++;
    inPhase.adam(() => adamUpdateF32(k, p, g, m, v, null, 0, n, adamScalarsF32(t, { ...ADAM, lr: W4.lr })));
  };
}

/** Export names by function index, read from the module's export section (no imported functions). */
function wasmExportNames(path: string): Map<number, string> {
  const b = readFileSync(path);
  const names = new Map<number, string>();
  let i = 8;
  const leb = (): number => {
    let r = 0,
      s = 0,
      x: number;
    do {
      x = b[i++]!;
      r += (x & 0x7f) * 2 ** s;
      s += 7;
    } while (x & 0x80);
    return r;
  };
  while (i < b.length) {
    const id = b[i++]!;
    const end = leb() + i;
    if (id === 7) {
      for (let count = leb(); count > 0; count--) {
        const len = leb();
        const name = b.subarray(i, i + len).toString();
        i += len;
        const kind = b[i++]!;
        const index = leb();
        if (kind === 0) names.set(index, name);
      }
    }
    i = end;
  }
  return names;
}

function post<T>(session: Session, method: string, params: object = {}): Promise<T> {
  return new Promise((resolve, reject) =>
    session.post(method, params, (err, res) => (err ? reject(err) : resolve(res as T))),
  );
}

const IDLE = new Set(["(idle)", "(program)", "(root)"]);

interface Attribution {
  /** percent of busy time per key, for each view */
  byPhase: Map<string, number>;
  byKind: Map<string, number>;
  byKernel: Map<string, number>;
  byPhaseKernelOp: Map<string, number>;
}

/** Sorts the busy samples by phase, kind (wasm, GC, JavaScript), kernel and op. */
function attribute(profile: Profile, names: Map<number, string>): Attribution {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const c of node.children ?? []) parent.set(c, node.id);
  const label = (node: ProfileNode): string => {
    const { functionName: f, url, lineNumber } = node.callFrame;
    const wasm = /^wasm-function\[(\d+)\]$/.exec(f);
    if (wasm) return `wasm ${names.get(Number(wasm[1])) ?? "(inner)"}`;
    return `${f || "(anonymous)"} ${url.split("/").slice(-2).join("/")}:${lineNumber + 1}`;
  };
  const views: Attribution = { byPhase: new Map(), byKind: new Map(), byKernel: new Map(), byPhaseKernelOp: new Map() };
  const add = (m: Map<string, number>, key: string, dt: number) => m.set(key, (m.get(key) ?? 0) + dt);
  let busy = 0;
  profile.samples.forEach((id, i) => {
    const leaf = byId.get(id)!;
    if (IDLE.has(leaf.callFrame.functionName)) return;
    const stack: ProfileNode[] = [];
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) stack.push(byId.get(at)!);
    if (stack.some((node) => node.callFrame.url === "node:inspector")) return;
    const dt = profile.timeDeltas[i] ?? 0;
    busy += dt;
    const phaseFrame = stack.find((node) => PHASE_OF_FRAME[node.callFrame.functionName] !== undefined);
    // GC samples have no JavaScript stack: they go to the phase that was running.
    const ph = phaseFrame ? PHASE_OF_FRAME[phaseFrame.callFrame.functionName]! : leaf.callFrame.url ? "other" : phase;
    const isWasm = leaf.callFrame.url.startsWith("wasm") || leaf.callFrame.functionName.startsWith("wasm-function");
    const exported = isWasm
      ? stack.find((node) => /^wasm-function/.test(node.callFrame.functionName) && !label(node).endsWith("(inner)"))
      : leaf;
    const kernel = exported === undefined ? "wasm (inner function)" : label(exported);
    const kind = isWasm
      ? "wasm kernels"
      : leaf.callFrame.functionName === "(garbage collector)"
        ? "GC"
        : "JavaScript (JS kernels, autograd, dispatch, allocation)";
    const op = stack.find((node) => /\/dist\/(ops|nn|losses)\//.test(node.callFrame.url));
    add(views.byPhase, ph, dt);
    add(views.byKind, kind, dt);
    add(views.byKernel, kernel, dt);
    add(views.byPhaseKernelOp, `${ph.padEnd(17)} ${kernel.padEnd(40)} <- ${op ? label(op) : "(step)"}`, dt);
  });
  for (const m of Object.values(views) as Map<string, number>[]) for (const [key, v] of m) m.set(key, (100 * v) / busy);
  return views;
}

const table = (m: Map<string, number>, top: number) =>
  [...m]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, v]) => `${v.toFixed(1).padStart(5)}%  ${k}`)
    .join("\n");

async function profileForm(name: string, step: () => void, steps: number): Promise<void> {
  for (let i = 0; i < 30; i++) step(); // JIT and WebAssembly tier-up
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) step();
  const plain = (performance.now() - t0) / steps;
  const session = new Session();
  session.connect();
  await post(session, "Profiler.enable");
  await post(session, "Profiler.setSamplingInterval", { interval: 200 });
  await post(session, "Profiler.start");
  const t1 = performance.now();
  for (let i = 0; i < steps; i++) step();
  const ms = (performance.now() - t1) / steps;
  const { profile } = await post<{ profile: Profile }>(session, "Profiler.stop");
  session.disconnect();
  // Both builds (plain and relaxed SIMD) export the same functions at the same indices.
  const a = attribute(
    profile,
    wasmExportNames(fileURLToPath(new URL("kernels.wasm", import.meta.resolve("@threadgrad/core")))),
  );
  console.log(`\n=== W4 ${name}: ${plain.toFixed(1)} ms/step (${ms.toFixed(1)} under the profiler, ${steps} steps)`);
  console.log(`by phase:\n${table(a.byPhase, 8)}\n\nby kind:\n${table(a.byKind, 4)}`);
  console.log(`\nby kernel:\n${table(a.byKernel, 20)}\n\nby phase, kernel and op:\n${table(a.byPhaseKernelOp, 40)}`);
}

const steps = Number(process.argv[2] ?? 40);
const form = process.argv[3] ?? "all";
setKernelBackend("wasm");
if (form === "all" || form === "object") await profileForm("object API, one thread", objectStep(), steps);
if (form === "all" || form === "rank256") await profileForm("rank step, shard 256 (1 worker)", rankStep(256), steps);
if (form === "all" || form === "rank128") await profileForm("rank step, shard 128 (2 workers)", rankStep(128), steps);
