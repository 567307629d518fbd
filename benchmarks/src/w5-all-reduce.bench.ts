// W5: what does the shared-memory gradient reduction cost? reduceScatter + barrier over N ranks
// (real worker threads) for W1's gradient, 64 Ki and 4 Mi floats: time per iteration and
// algorithm bandwidth (bytes of one rank's buffer / time, as NCCL reports it); and a bare
// barrier: the per-step synchronisation cost with no compute.
import { Worker } from "node:worker_threads";
import { W1 } from "@threadgrad/cli";
import { SharedArena, placeInWasm, planArena } from "@threadgrad/workers";
import { getKernelBackend } from "@threadgrad/core";
import { type Ctx, measure } from "./measure.js";
import { type Row, rowFrom } from "./table.js";
import type { W5Request, W5WorkerData } from "./w5-worker.js";

/** W1's parameter count (784·256 + 256 + 256·256 + 256 + 256·10 + 10 = 269,322). */
export const W1_GRAD_FLOATS = W1.sizes.slice(1).reduce((n, out, l) => n + (W1.sizes[l]! + 1) * out, 0);
const SIZES: [number, string][] = [
  [W1_GRAD_FLOATS, "W1 grads"],
  [64 * 1024, "64 Ki"],
  [4 * 1024 * 1024, "4 Mi"],
];

// Each call reports its own per-iteration time, which tinybench adds up against its time budget: a
// budget in those units would mean millions of calls, so the rounds are counted instead.
const SELF_TIMED = { time: 0, iterations: 15 };

class Ranks {
  private constructor(private readonly workers: Worker[]) {}

  /** `wasm`: the arena in a shared WebAssembly.Memory and the sum by the SIMD kernel (the trainer's path). */
  static async start(ranks: number, floats: number, spin: boolean, wasm: boolean): Promise<Ranks> {
    const layout = planArena({ paramSizes: [floats], ranks, stateBuffers: 0 });
    const placed = wasm ? placeInWasm(layout, ranks) : null;
    if (wasm && placed === null) throw new Error("W5: the WebAssembly backend is not available");
    const arena = placed
      ? SharedArena.attach(placed.kernels.buffer, layout, placed.placement.arenaOffset)
      : SharedArena.create(layout);
    const url = new URL("./w5-worker.js", import.meta.url);
    const workers = Array.from({ length: ranks }, (_, rank) => {
      const wasmData = placed ? { memory: placed.placement.memory, scratch: placed.placement.scratch[rank]! } : null;
      const workerData: W5WorkerData = { handle: arena.handle(), rank, spin, wasm: wasmData };
      return new Worker(url, { workerData });
    });
    await Promise.all(
      workers.map(
        (w) =>
          new Promise((ok, fail) => {
            w.once("online", ok);
            w.once("error", fail);
          }),
      ),
    );
    return new Ranks(workers);
  }

  /** One round of k iterations on every rank; rank 0's time per iteration in ms. */
  async round(req: W5Request): Promise<number> {
    const replies = this.workers.map(
      (w) =>
        new Promise<number>((ok, fail) => {
          const onError = (e: Error) => fail(e);
          w.once("error", onError);
          w.once("message", (m: { ms: number }) => {
            w.off("error", onError);
            ok(m.ms);
          });
        }),
    );
    for (const w of this.workers) w.postMessage(req);
    return (await Promise.all(replies))[0]!;
  }

  async stop(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

export async function w5AllReduce(ctx: Ctx): Promise<Row[]> {
  const rows: Row[] = [];
  const largest = Math.max(...SIZES.map(([n]) => n));
  const us = (ms: number) => ms * 1000;
  const impls: [string, boolean][] =
    getKernelBackend() === "wasm"
      ? [
          ["threadgrad wasm", true],
          ["threadgrad js", false],
        ]
      : [["threadgrad js", false]];
  for (const ranks of ctx.workers)
    for (const [impl, wasm] of impls) {
      const spin = ranks <= ctx.cores;
      ctx.log(`W5 ${ranks} rank${ranks > 1 ? "s" : ""} (${impl})`);
      const group = await Ranks.start(ranks, largest, spin, wasm);
      const note = spin ? "" : `; ${ranks} ranks > ${ctx.cores} cores: barrier does not spin`;
      try {
        for (const [floats, what] of SIZES) {
          const bytes = floats * 4;
          // K iterations per timed round: about 50 ms at 3 GB/s (5 ms with --quick)
          const k = Math.max(2, Math.round((ctx.quick ? 1.5e7 : 1.5e8) / bytes));
          const req: W5Request = { op: "reduce", k, n: floats };
          const t = await measure(
            `W5 ${what} ×${ranks}`,
            async () => ({ overriddenDuration: await group.round(req) }),
            ctx,
            SELF_TIMED,
          );
          // one rank has nothing to add: its slice already is the sum
          const algbw = ranks > 1 ? bytes / (t.median * 1e6) : null; // GB/s
          const bw = algbw === null ? "1 rank: nothing to reduce" : `algbw ${algbw.toFixed(2)} GB/s`;
          rows.push(
            rowFrom(
              {
                workload: "W5 all-reduce",
                config: `${floats.toLocaleString("en-US")} floats (${what}), ${ranks} rank${ranks > 1 ? "s" : ""}`,
                impl,
                peer: false,
                threads: ranks,
                unit: "µs/iter",
                better: "lower",
              },
              t,
              us,
              { note: `${bw}; reduceScatter + barrier, K=${k}${note}`, extra: { bytes, algbwGBps: algbw, k } },
            ),
          );
        }
        if (wasm) continue; // a bare barrier does not depend on where the arena lies
        const k = ctx.quick ? 200 : 2000;
        const t = await measure(
          `W5 barrier ×${ranks}`,
          async () => ({ overriddenDuration: await group.round({ op: "barrier", k, n: 0 }) }),
          ctx,
          SELF_TIMED,
        );
        rows.push(
          rowFrom(
            {
              workload: "W5 all-reduce",
              config: `barrier only, ${ranks} rank${ranks > 1 ? "s" : ""}`,
              impl: "threadgrad",
              peer: false,
              threads: ranks,
              unit: "µs/iter",
              better: "lower",
            },
            t,
            us,
            { note: `per-step synchronisation, no compute, K=${k}${note}`, extra: { k } },
          ),
        );
      } finally {
        await group.stop();
      }
    }
  return rows;
}
