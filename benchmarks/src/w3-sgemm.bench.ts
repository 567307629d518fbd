// W3: how fast is one float32 matmul C = op(A)·op(B)? GFLOP/s for square n = 256, 512, 1024 and
// for the transposed products of the W1 MLP's own step, through core's public mm (one row per
// kernel backend), through tfjs and through PyTorch where it is installed.
import { Generator, mm, randn } from "@threadgrad/core";
import { forEachBackend } from "./backends.js";
import { type Ctx, measure } from "./measure.js";
import { pytorchRows } from "./peers/pytorch.js";
import { type TfBackend, type TfSession, tfSession, tfSgemm } from "./peers/tfjs.js";
import { type Row, rowFrom, skipRow } from "./table.js";

interface Shape {
  m: number;
  k: number;
  n: number;
  tA: boolean;
  tB: boolean;
  what: string;
}

const square = (n: number): Shape => ({ m: n, k: n, n, tA: false, tB: false, what: "" });

/**
 * The transposed products of one W1 step at batch 256: forward X·Wᵀ, weight gradient Gᵀ·X
 * (threadgrad's Linear keeps W as [out, in] and passes transpose flags instead of copying).
 */
export const MLP_SHAPES: Shape[] = [
  { m: 256, k: 784, n: 256, tA: false, tB: true, what: "fc1 fwd" },
  { m: 256, k: 256, n: 784, tA: true, tB: false, what: "fc1 dW" },
  { m: 256, k: 256, n: 256, tA: false, tB: true, what: "fc2 fwd" },
  { m: 256, k: 256, n: 256, tA: true, tB: false, what: "fc2 dW" },
  { m: 256, k: 256, n: 10, tA: false, tB: true, what: "fc3 fwd" },
  { m: 10, k: 256, n: 256, tA: true, tB: false, what: "fc3 dW" },
];

const label = (s: Shape) =>
  `${s.m}×${s.k}×${s.n} ${s.tA ? "Aᵀ" : "A"}·${s.tB ? "Bᵀ" : "B"}${s.what ? ` (${s.what})` : ""}`;

export async function w3Sgemm(ctx: Ctx): Promise<Row[]> {
  const shapes = ctx.quick
    ? [square(256), MLP_SHAPES[0]!, MLP_SHAPES[1]!]
    : [...[256, 512, 1024].map(square), ...MLP_SHAPES];
  const rows: Row[] = [];
  const sessions = new Map<TfBackend, TfSession | string>();
  for (const s of shapes) {
    const config = label(s);
    const flops = 2 * s.m * s.n * s.k;
    const gflops = (ms: number) => flops / (ms * 1e6);
    const key = { workload: "W3 sgemm", config, unit: "GFLOP/s", better: "higher" as const, threads: 1 };
    const g = new Generator(3);
    const a = randn(s.tA ? [s.k, s.m] : [s.m, s.k], { generator: g });
    const b = randn(s.tB ? [s.n, s.k] : [s.k, s.n], { generator: g });
    ctx.log(`W3 ${config}`);
    rows.push(
      ...(await forEachBackend(async (_b, impl) => {
        const t = await measure(`${impl} ${config}`, () => void mm(a, b, s.tA, s.tB), ctx);
        return rowFrom({ ...key, impl, peer: false }, t, gflops);
      })),
    );
    for (const backend of ["cpu", "wasm"] as const) {
      if (!sessions.has(backend)) sessions.set(backend, await tfSession(backend));
      const session = sessions.get(backend)!;
      const forms = backend === "wasm" && (s.tA || s.tB) ? [false, true] : [false];
      for (const hoist of forms) {
        const impl = `tfjs-${backend}${hoist ? "/T" : ""}`;
        if (typeof session === "string") {
          rows.push(skipRow({ ...key, impl, peer: true }, session));
          continue;
        }
        await session.tf.setBackend(backend);
        const op = tfSgemm(
          session,
          a.data as Float32Array,
          a.shape as [number, number],
          b.data as Float32Array,
          b.shape as [number, number],
          s.tA,
          s.tB,
          hoist,
        );
        try {
          // the pure-JavaScript backend needs seconds for n = 1024: fewer calls
          const slow = backend === "cpu" && flops > 1e9;
          const t = await measure(
            `${impl} ${config}`,
            op.run,
            ctx,
            slow ? { iterations: 3, warmupIterations: 1, time: 0 } : {},
          );
          const note = hoist ? "transposes hoisted: explicit tf.transpose, then matMul" : undefined;
          rows.push(rowFrom({ ...key, impl, peer: true, threads: session.threads }, t, gflops, note ? { note } : {}));
        } finally {
          op.dispose();
        }
      }
    }
  }
  // PyTorch's matmul (OpenBLAS, AVX-512 where the CPU has it): the ceiling the whole-step peers stand on.
  rows.push(...(await pytorchRows(ctx, "w3")));
  return rows;
}
