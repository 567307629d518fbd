// Where does a W7 step's time go, op by op? One thread runs a rank's W7 step (the chargpt model,
// 32 windows of 64 tokens, parameters and gradients in wasm memory, every tensor in the step
// region, the float32 SIMD Adam update) under V8's sampling profiler, and attributes each sample
// to the kernel it was in (WebAssembly exports by name, JavaScript kernels by function) and to the
// innermost op frame above it, forward or backward. Not part of `pnpm bench`: run it by hand,
//   node benchmarks/dist/w7-profile.js [steps=20]
// and compare shares within one run (the machine's load moves absolute times).
import { readFileSync } from "node:fs";
import { Session } from "node:inspector";
import { fileURLToPath } from "node:url";
import {
  adamScalarsF32,
  adamUpdateF32,
  createWasmKernels,
  runInStepRegion,
  setDefaultWasmKernels,
  tensor,
} from "@threadgrad/core";
import { CHARGPT, Gpt, sequenceCrossEntropy } from "@threadgrad/workers";
import { W7 } from "./w7-chargpt.bench.js";

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
      for (let n = leb(); n > 0; n--) {
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

/** A rank's W7 step on one thread, as DataParallel runs it with one worker. */
function rankStep(): () => void {
  const model = new Gpt(CHARGPT);
  const params = model.parameters();
  const n = params.reduce((s, p) => s + p.numel, 0);
  const k = createWasmKernels({ heapBytes: 16 * n + (1 << 20), scratchBytes: 256 << 20 });
  setDefaultWasmKernels(k);
  const [p, g, m, v] = [0, 1, 2, 3].map(() => k.allocF32(n)) as [
    Float32Array,
    Float32Array,
    Float32Array,
    Float32Array,
  ];
  let off = 0;
  for (const t of params) {
    p.set(t.data as Float32Array, off);
    t.setStorage(p.subarray(off, off + t.numel));
    t.bindGrad(g.subarray(off, off + t.numel));
    off += t.numel;
  }
  const tokens = W7.batch * W7.context;
  const [xs, ys] = [new Int32Array(tokens), new Int32Array(tokens)];
  let seed = 1;
  let step = 0;
  const adam = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maximize: false, decoupledWeightDecay: false };
  return () => {
    for (let i = 0; i < tokens; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      xs[i] = seed >>> 24;
      ys[i] = (seed >>> 16) & 255;
    }
    runInStepRegion(k, () => {
      for (const q of params) q.grad = null;
      const shape = [W7.batch, W7.context];
      const logits = model.forward(tensor(xs, { shape, dtype: "int32" }));
      const loss = sequenceCrossEntropy(logits, tensor(ys, { shape, dtype: "int32" }), { reduction: "sum" });
      loss.item();
      loss.div(tokens).backward();
      for (const q of params) q.syncGrad();
    });
    adamUpdateF32(k, p, g, m, v, null, 0, n, adamScalarsF32(++step, { ...adam, lr: W7.lr }));
  };
}

function post<T>(session: Session, method: string, params: object = {}): Promise<T> {
  return new Promise((resolve, reject) =>
    session.post(method, params, (err, res) => (err ? reject(err) : resolve(res as T))),
  );
}

const IDLE = new Set(["(idle)", "(program)", "(root)"]);

/** Percent of the busy samples per "phase kernel <- op" key, and ms per step under the profiler. */
function attribute(profile: Profile, names: Map<number, string>): Map<string, number> {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const c of node.children ?? []) parent.set(c, node.id);
  const label = (node: ProfileNode): string => {
    const { functionName: f, url, lineNumber } = node.callFrame;
    const wasm = /^wasm-function\[(\d+)\]$/.exec(f);
    if (wasm) return `wasm ${names.get(Number(wasm[1])) ?? "(inner)"}`;
    return `${f || "(anonymous)"} ${url.split("/").slice(-2).join("/")}:${lineNumber + 1}`;
  };
  const totals = new Map<string, number>();
  let busy = 0;
  profile.samples.forEach((id, i) => {
    const leaf = byId.get(id)!;
    if (IDLE.has(leaf.callFrame.functionName)) return;
    const stack: ProfileNode[] = [];
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) stack.push(byId.get(at)!);
    if (stack.some((node) => node.callFrame.url === "node:inspector")) return;
    const dt = profile.timeDeltas[i] ?? 0;
    busy += dt;
    // An inner wasm function (the matmul's micro-kernel) is named after the export that called it.
    const exported = leaf.callFrame.url.startsWith("wasm")
      ? stack.find((node) => /^wasm-function/.test(node.callFrame.functionName) && !label(node).endsWith("(inner)"))
      : leaf;
    const kernel = exported === undefined ? "wasm (inner function)" : label(exported);
    const op = stack.find((node) => /\/dist\/(ops|nn|losses)\//.test(node.callFrame.url));
    const backward = stack.some((node) => node.callFrame.url.includes("/autograd/engine"));
    const key = `${backward ? "B" : "F"} ${kernel.padEnd(34)} <- ${op ? label(op) : "(step)"}`;
    totals.set(key, (totals.get(key) ?? 0) + dt);
  });
  for (const [key, v] of totals) totals.set(key, (100 * v) / busy);
  return totals;
}

const steps = Number(process.argv[2] ?? 20);
const step = rankStep();
for (let i = 0; i < 5; i++) step(); // JIT and WebAssembly tier-up
const session = new Session();
session.connect();
await post(session, "Profiler.enable");
await post(session, "Profiler.setSamplingInterval", { interval: 200 });
await post(session, "Profiler.start");
const t0 = performance.now();
for (let i = 0; i < steps; i++) step();
const ms = (performance.now() - t0) / steps;
const { profile } = await post<{ profile: Profile }>(session, "Profiler.stop");
session.disconnect();
// Both builds (plain and relaxed SIMD) export the same functions at the same indices.
const shares = attribute(
  profile,
  wasmExportNames(fileURLToPath(new URL("kernels.wasm", import.meta.resolve("@threadgrad/core")))),
);
const byKernel = new Map<string, number>();
for (const [key, v] of shares) {
  const kernel = key.slice(2, 36).trim();
  byKernel.set(kernel, (byKernel.get(kernel) ?? 0) + v);
}
const table = (m: Map<string, number>, top: number) =>
  [...m]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, v]) => `${v.toFixed(1).padStart(5)}%  ${k}`)
    .join("\n");
console.log(`W7 step, 1 thread: ${ms.toFixed(1)} ms under the profiler (${steps} steps)\n`);
console.log(`by kernel:\n${table(byKernel, 20)}\n\nby phase, kernel and op:\n${table(shares, 30)}`);
