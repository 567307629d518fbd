// Rows, the terminal table and the peer ratios.
import type { Timing } from "./measure.js";

/** One measured (or skipped) line of the report. */
export interface Row {
  /** e.g. "W1 mlp-step" */
  workload: string;
  /** e.g. "batch 256", "n=512 A·Bᵀ", "2 workers" */
  config: string;
  /** e.g. "threadgrad wasm", "tfjs-cpu", "tfjs-wasm/T" (a labelled rewrite) */
  impl: string;
  /** a peer framework (ratios are threadgrad / peer) */
  peer: boolean;
  /** threads the implementation really computed on */
  threads: number | string;
  unit: string;
  better: "higher" | "lower";
  /** null when the row was skipped or is not applicable (see note) */
  median: number | null;
  min: number | null;
  max: number | null;
  samples: number;
  note?: string;
  extra?: Record<string, number | string | boolean | null>;
}

type RowKey = Pick<Row, "workload" | "config" | "impl" | "peer" | "threads" | "unit" | "better">;

/** A row from a timing (ms per call) converted with `perCall`, e.g. ms → samples/s. */
export function rowFrom(key: RowKey, t: Timing, perCall: (ms: number) => number, more: Partial<Row> = {}): Row {
  const a = perCall(t.min),
    b = perCall(t.max);
  return { ...key, median: perCall(t.median), min: Math.min(a, b), max: Math.max(a, b), samples: t.samples, ...more };
}

/** A row that was not measured, with the reason. */
export const skipRow = (key: Omit<RowKey, "better"> & { better?: Row["better"] }, note: string): Row => ({
  better: "higher",
  ...key,
  median: null,
  min: null,
  max: null,
  samples: 0,
  note,
});

/** How many times faster threadgrad is than the peer (> 1: threadgrad is faster). */
export function ratio(tg: Row, peer: Row): number | null {
  if (tg.median === null || peer.median === null || tg.unit !== peer.unit || tg.median <= 0 || peer.median <= 0)
    return null;
  return tg.better === "higher" ? tg.median / peer.median : peer.median / tg.median;
}

export function fmt(v: number | null): string {
  if (v === null || !Number.isFinite(v)) return "—";
  const a = Math.abs(v);
  if (a >= 1000) return Math.round(v).toLocaleString("en-US");
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  return v.toPrecision(3);
}

/** The table: workload, config, implementation, median, min–max, then one ratio column per peer. */
export function formatTable(rows: Row[]): string {
  const peers = [...new Set(rows.filter((r) => r.peer).map((r) => r.impl))];
  const header = [
    "workload",
    "config",
    "impl",
    "thr",
    "median",
    "min–max",
    "unit",
    ...peers.map((p) => `÷ ${p}`),
    "note",
  ];
  const lines: string[][] = [];
  let last = "";
  for (const r of rows) {
    if (r.workload !== last && lines.length > 0) lines.push([]);
    last = r.workload;
    const ratios = peers.map((p) => {
      if (r.peer) return "";
      const peer = rows.find(
        (q) => q.peer && q.impl === p && q.workload === r.workload && q.config === r.config && q.unit === r.unit,
      );
      const x = peer ? ratio(r, peer) : null;
      return x === null ? (peer ? "—" : "") : `×${x >= 10 ? x.toFixed(1) : x.toFixed(2)}`;
    });
    const range = r.min === null ? "—" : `${fmt(r.min)}–${fmt(r.max)}`;
    lines.push([
      r.workload,
      r.config,
      r.impl,
      String(r.threads),
      fmt(r.median),
      range,
      r.unit,
      ...ratios,
      r.note ?? "",
    ]);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? "").length)));
  const right = new Set([3, 4, 5, ...peers.map((_, i) => 7 + i)]);
  const cell = (s: string, i: number) => (right.has(i) ? s.padStart(widths[i]!) : s.padEnd(widths[i]!));
  const out = [header.map(cell).join("  ").trimEnd(), widths.map((w) => "─".repeat(w)).join("  ")];
  for (const l of lines) out.push(l.length === 0 ? "" : l.map(cell).join("  ").trimEnd());
  if (peers.length > 0) {
    out.push(
      "",
      "÷ PEER: threadgrad's median over the peer's in the unit's better direction " +
        "(×2.00 = threadgrad twice as fast).",
    );
  }
  return out.join("\n");
}
