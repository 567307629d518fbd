// report.html: loss, accuracy and learning-rate curves drawn as inline SVG from a run's metrics
// (kept in memory as the run goes, see ReportSeries).
// One self-contained file (no scripts, fonts or links), so it opens offline and can be mailed.
import { formatDuration, formatPercent, formatRate } from "./progress.js";

export interface Series {
  name: string;
  color: string;
  points: [number, number][];
  hasDots?: boolean;
  /** circle each point (the best evaluation) */
  isMarker?: boolean;
  opacity?: number;
}

interface ChartOptions {
  title: string;
  xLabel: string;
  series: Series[];
  isPercent?: boolean;
  /** start the y axis at 0 when every value is >= 0 (losses, learning rates) */
  isZeroBased?: boolean;
  /** a log10 y axis (positive values only), for a loss that falls by decades */
  isLog?: boolean;
}

const W = 760,
  H = 300,
  M = { left: 64, right: 16, top: 34, bottom: 44 };
// Presentation attributes rather than CSS classes: the charts look the same when an SVG is copied out of the page.
const TEXT = ` font-family="sans-serif" font-size="11" fill="#444"`;

export const escapeHtml = (s: string): string =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** About `count` round tick values covering [lo, hi] (1, 2 or 5 times a power of ten apart). */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((f) => f * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

/** Averages consecutive points into at most `max` buckets, so long runs stay small. */
export function downsample(points: [number, number][], max = 1500): [number, number][] {
  if (points.length <= max) return points;
  const per = Math.ceil(points.length / max);
  const out: [number, number][] = [];
  for (let i = 0; i < points.length; i += per) {
    const chunk = points.slice(i, i + per);
    out.push([chunk[chunk.length - 1]![0], chunk.reduce((a, p) => a + p[1], 0) / chunk.length]);
  }
  return out;
}

/** Trailing moving average over `window` points. */
export function smooth(points: [number, number][], window: number): [number, number][] {
  let sum = 0;
  return points.map(([x, y], i) => {
    sum += y;
    if (i >= window) sum -= points[i - window]![1];
    return [x, sum / Math.min(i + 1, window)];
  });
}

/** Ticks of a log10 axis over [lo, hi] (exponents): each power of ten, and 2 and 5 times it over few decades. */
export function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  const factors = hi - lo <= 2 ? [1, 2, 5] : [1];
  for (let k = Math.floor(lo); k <= Math.ceil(hi); k++) {
    for (const f of factors) {
      const t = Math.log10(f) + k;
      if (t >= lo - 1e-9 && t <= hi + 1e-9) ticks.push(t);
    }
  }
  return ticks;
}

/** Whether positive values span at least `decades` powers of ten (so a linear axis would flatten the tail). */
export function spansDecades(values: number[], decades = 2): boolean {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0 || finite.some((v) => v <= 0)) return false;
  return Math.log10(Math.max(...finite) / Math.min(...finite)) >= decades;
}

const fmt = (v: number, isPercent?: boolean): string =>
  isPercent
    ? `${(v * 100).toFixed(v >= 0.1 || v === 0 ? 0 : 1)}%`
    : Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3)
      ? v.toExponential(0)
      : String(Number(v.toPrecision(4)));

/** One line chart as an `<svg>` element. */
export function lineChart(opts: ChartOptions): string {
  // On a log axis every y is its log10 from here on (and only positive values can be drawn).
  const ty = opts.isLog ? Math.log10 : (y: number) => y;
  const shown = ([x, y]: [number, number]) => Number.isFinite(x) && Number.isFinite(y) && (!opts.isLog || y > 0);
  const all = opts.series.flatMap((s) => s.points).filter(shown);
  if (all.length === 0) return `<p class="empty">${escapeHtml(opts.title)}: no data yet</p>`;
  const xs = all.map((p) => p[0]),
    ys = all.map((p) => ty(p[1]));
  const x0 = Math.min(...xs),
    x1 = Math.max(...xs, x0 + 1);
  let y0 = Math.min(...ys),
    y1 = Math.max(...ys);
  if (opts.isZeroBased && !opts.isLog && y0 >= 0) y0 = 0;
  if (y1 - y0 < 1e-12) [y0, y1] = [y0 - 0.5 * Math.abs(y0 || 1), y1 + 0.5 * Math.abs(y1 || 1)];
  const pw = W - M.left - M.right,
    ph = H - M.top - M.bottom;
  const sx = (x: number) => M.left + ((x - x0) / (x1 - x0)) * pw;
  const sy = (y: number) => M.top + (1 - (ty(y) - y0) / (y1 - y0)) * ph;
  const title = `${opts.title}${opts.isLog ? " (log scale)" : ""}`;
  const parts: string[] = [
    `<text x="${M.left}" y="20" font-family="sans-serif" font-size="13" font-weight="bold" fill="#222">${escapeHtml(title)}</text>`,
  ];
  const yTicks = opts.isLog ? logTicks(y0, y1).map((t) => 10 ** t) : niceTicks(y0, y1);
  for (const t of yTicks) {
    parts.push(
      `<line x1="${M.left}" x2="${W - M.right}" y1="${sy(t).toFixed(1)}" y2="${sy(t).toFixed(1)}" stroke="#e6e6e6"/>`,
    );
    parts.push(
      `<text x="${M.left - 6}" y="${(sy(t) + 4).toFixed(1)}" text-anchor="end"${TEXT}>${fmt(t, opts.isPercent)}</text>`,
    );
  }
  for (const t of niceTicks(x0, x1, 6)) {
    parts.push(`<text x="${sx(t).toFixed(1)}" y="${H - M.bottom + 16}" text-anchor="middle"${TEXT}>${fmt(t)}</text>`);
  }
  parts.push(`<text x="${M.left + pw / 2}" y="${H - 8}" text-anchor="middle"${TEXT}>${escapeHtml(opts.xLabel)}</text>`);
  parts.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
  opts.series.forEach((s) => {
    const pts = s.points.filter(shown);
    if (pts.length === 0) return;
    const d = pts.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ");
    const op = s.opacity ?? 1;
    parts.push(`<polyline points="${d}" fill="none" stroke="${s.color}" stroke-width="1.6" stroke-opacity="${op}"/>`);
    if (s.hasDots)
      for (const [x, y] of pts)
        parts.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3" fill="${s.color}"/>`);
    if (s.isMarker)
      for (const [x, y] of pts)
        parts.push(
          `<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="7" fill="none" stroke="${s.color}" stroke-width="2"/>`,
        );
  });
  // Legend in the top margin, right-aligned, one entry after another (about 6.5 px per character).
  let lx = W - M.right;
  for (const s of [...opts.series].reverse()) {
    lx -= 24 + 6.5 * s.name.length + 14;
    parts.push(
      `<line x1="${lx}" x2="${lx + 18}" y1="16" y2="16" stroke="${s.color}" stroke-width="2.5" ` +
        `stroke-opacity="${Math.max(s.opacity ?? 1, 0.5)}"/>`,
    );
    parts.push(`<text x="${lx + 24}" y="20"${TEXT}>${escapeHtml(s.name)}</text>`);
  }
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}"`;
  return `${svg} role="img" aria-label="${escapeHtml(opts.title)}">${parts.join("")}</svg>`;
}

type Rec = Record<string, unknown>;
const num = (v: unknown): number => (typeof v === "number" ? v : NaN);

/**
 * A per-step series kept in memory at a bounded size: points are means over `per` consecutive
 * steps; past 2 × `max` points, neighbours merge in pairs and `per` doubles. A run of any length
 * keeps at most 2 × `max` points, and adding one is O(1) on average.
 */
export class StepSeries {
  private readonly xs: number[] = [];
  private readonly ys: number[] = [];
  private per = 1;
  // The point being filled: its sum, how many steps it holds and its last step.
  private sum = 0;
  private count = 0;
  private lastX = 0;

  constructor(private readonly max = 1500) {}

  add(x: number, y: number): void {
    if (!Number.isFinite(x) || !Number.isFinite(y)) return;
    this.sum += y;
    this.count++;
    this.lastX = x;
    if (this.count < this.per) return;
    this.xs.push(x);
    this.ys.push(this.sum / this.count);
    this.sum = 0;
    this.count = 0;
    if (this.xs.length > 2 * this.max) this.halve();
  }

  private halve(): void {
    const n = Math.floor(this.xs.length / 2);
    for (let i = 0; i < n; i++) {
      this.xs[i] = this.xs[2 * i + 1]!;
      this.ys[i] = (this.ys[2 * i]! + this.ys[2 * i + 1]!) / 2;
    }
    // An odd last point holds `per` steps: it becomes the open point of twice as many.
    if (this.xs.length % 2 === 1) {
      this.sum = this.ys.at(-1)! * this.per + this.sum;
      this.count += this.per;
      this.lastX = this.count > this.per ? this.lastX : this.xs.at(-1)!;
    }
    this.xs.length = n;
    this.ys.length = n;
    this.per *= 2;
  }

  /** The points, the open one (fewer than `per` steps) last. */
  points(): [number, number][] {
    const out = this.xs.map((x, i) => [x, this.ys[i]!] as [number, number]);
    if (this.count > 0) out.push([this.lastX, this.sum / this.count]);
    return out;
  }

  get length(): number {
    return this.xs.length + (this.count > 0 ? 1 : 0);
  }
}

type EvalKey = "testLoss" | "testAccuracy" | "valLoss" | "valAccuracy";
const VAL_COLOR = "#f58518";

/**
 * What report.html draws, kept as the run goes: per-step train loss, accuracy and learning rate
 * (bounded, see StepSeries) and every evaluation. `add` takes metrics.jsonl records.
 */
export class ReportSeries {
  readonly loss = new StepSeries();
  readonly accuracy = new StepSeries();
  readonly lr = new StepSeries();
  private readonly evals = new Map<number, Record<EvalKey | "epoch", number>>();

  /** Takes a step or eval record (others are ignored); steps must come in increasing order. */
  add(r: Rec): void {
    const step = num(r.step);
    if (!Number.isFinite(step)) return;
    if (r.event === "step") {
      this.loss.add(step, num(r.loss));
      this.accuracy.add(step, num(r.accuracy));
      this.lr.add(step, num(r.lr));
    } else if (r.event === "eval") {
      this.evals.set(step, {
        testLoss: num(r.testLoss),
        testAccuracy: num(r.testAccuracy),
        valLoss: num(r.valLoss),
        valAccuracy: num(r.valAccuracy),
        epoch: num(r.epoch),
      });
    }
  }

  /** Test or validation loss or accuracy at each evaluation, by step. */
  evalPoints(key: EvalKey): [number, number][] {
    return [...this.evals.entries()]
      .map(([step, e]) => [step, e[key]] as [number, number])
      .filter((p) => Number.isFinite(p[1]))
      .sort((a, b) => a[0] - b[0]);
  }

  /**
   * The best evaluation, as training picks checkpoint-best: on the validation set only (the highest
   * validation accuracy when there is one, else the lowest validation loss; the first of equals).
   * Without a validation set there is none: the test set never picks a model.
   */
  best(): { step: number; epoch: number; metric: "valAccuracy" | "valLoss"; value: number } | null {
    const metric = this.evalPoints("valAccuracy").length > 0 ? "valAccuracy" : "valLoss";
    let best: [number, number] | null = null;
    for (const p of this.evalPoints(metric)) {
      if (best === null || (metric === "valAccuracy" ? p[1] > best[1] : p[1] < best[1])) best = p;
    }
    if (best === null) return null;
    return { step: best[0], epoch: this.evals.get(best[0])!.epoch, metric, value: best[1] };
  }

  /**
   * The series of a run's records (metrics.jsonl), up to `untilStep`: a resumed run passes the step
   * it resumes from, so steps an unclean stop left past its checkpoint give way to the new ones.
   * Of records for the same step the last counts.
   */
  static from(records: Rec[], untilStep = Infinity): ReportSeries {
    const series = new ReportSeries();
    for (const event of ["step", "eval"]) {
      const byStep = new Map<number, Rec>();
      for (const r of records) if (r.event === event && num(r.step) <= untilStep) byStep.set(num(r.step), r);
      for (const r of [...byStep.values()].sort((a, b) => num(a.step) - num(b.step))) series.add(r);
    }
    return series;
  }
}

/** `96.16%` for accuracies, 4 decimals for losses, a duration, a rate: what a reader wants to see. */
function formatValue(key: string, v: unknown): string {
  if (typeof v !== "number") return typeof v === "object" ? JSON.stringify(v) : String(v);
  if (/accuracy/i.test(key)) return formatPercent(v);
  if (/loss/i.test(key)) return v.toFixed(4);
  if (key === "wallSeconds") return formatDuration(v);
  if (key === "samplesPerSec") return `${formatRate(v)} samples/s`;
  return String(v);
}

const LABELS: Record<string, string> = {
  trainLoss: "train loss",
  testLoss: "test loss",
  testAccuracy: "test accuracy",
  valLoss: "validation loss",
  valAccuracy: "validation accuracy",
  testMse: "test MSE (target units)",
  testRmse: "test RMSE (target units)",
  wallSeconds: "wall time",
  samplesPerSec: "throughput",
  workers: "workers",
};

/** Table rows of `o`, skipping null and undefined (a setting that does not apply, a figure not measured). */
function rows(o: Rec, format: (key: string, v: unknown) => string, labels: Record<string, string> = {}): string {
  return Object.entries(o)
    .filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => `<tr><th>${escapeHtml(labels[k] ?? k)}</th><td>${escapeHtml(format(k, v))}</td></tr>`)
    .join("");
}

/** The validation series of a chart, when the run has one (--val-split). */
function validation(points: [number, number][]) {
  return points.length === 0 ? [] : [{ name: "validation", color: VAL_COLOR, points, hasDots: true }];
}

/**
 * The whole report page for a run's series (or its metrics records), resolved config and (when
 * done) summary. The best evaluation is circled and named; a loss that falls by two decades or
 * more is drawn on a log axis.
 */
export function renderReport(data: ReportSeries | Rec[], config: Rec, summary: Rec | null, title: string): string {
  const series = Array.isArray(data) ? ReportSeries.from(data) : data;
  const trainLoss = downsample(series.loss.points());
  const window = Math.max(1, Math.round(trainLoss.length / 40));
  const testLoss = series.evalPoints("testLoss");
  const best = series.best();
  const bestText =
    best === null
      ? null
      : `step ${best.step} (epoch ${Number(best.epoch.toFixed(2))}): ${LABELS[best.metric]} ${formatValue(best.metric, best.value)}`;
  const bestMarker = (metric: string): Series[] =>
    best?.metric === metric
      ? [{ name: `best: step ${best.step}`, color: "#222", points: [[best.step, best.value]], isMarker: true }]
      : [];
  const charts = [
    lineChart({
      title: "Loss",
      xLabel: "step",
      isZeroBased: true,
      isLog: spansDecades([...trainLoss, ...testLoss].map((p) => p[1])),
      series: [
        { name: "train (per step)", color: "#4c78a8", points: trainLoss, opacity: 0.3 },
        { name: `train (mean of ${window})`, color: "#4c78a8", points: smooth(trainLoss, window) },
        ...validation(series.evalPoints("valLoss")),
        { name: "test", color: "#e45756", points: testLoss, hasDots: true },
        ...bestMarker("valLoss"),
      ],
    }),
  ];
  const trainAcc = downsample(series.accuracy.points());
  const testAcc = series.evalPoints("testAccuracy");
  if (trainAcc.length > 0 || testAcc.length > 0) {
    charts.push(
      lineChart({
        title: "Accuracy",
        xLabel: "step",
        isPercent: true,
        series: [
          { name: `train (mean of ${window})`, color: "#4c78a8", points: smooth(trainAcc, window) },
          ...validation(series.evalPoints("valAccuracy")),
          { name: "test", color: "#e45756", points: testAcc, hasDots: true },
          ...bestMarker("valAccuracy"),
        ],
      }),
    );
  }
  charts.push(
    lineChart({
      title: "Learning rate",
      xLabel: "step",
      isZeroBased: true,
      series: [{ name: "lr", color: "#54a24b", points: downsample(series.lr.points()) }],
    }),
  );
  const summaryTable =
    summary === null
      ? "<p>Run in progress or stopped early: no summary yet.</p>"
      : `<h2>Summary</h2><table>${rows({ ...summary, best: bestText }, formatValue, LABELS)}</table>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#222;max-width:800px}
svg{display:block;margin:16px 0;background:#fff;max-width:100%;height:auto}table{border-collapse:collapse;margin:8px 0}
th,td{text-align:left;padding:2px 12px 2px 0;vertical-align:top}th{font-weight:600;color:#555}td{font-family:ui-monospace,monospace}
</style></head><body>
<h1>${escapeHtml(title)}</h1>
${summaryTable}
${best === null || summary !== null ? "" : `<p>Best so far: ${escapeHtml(bestText!)}</p>`}
${charts.join("\n")}
<h2>Configuration</h2><table>${rows(config, (_, v) => formatValue("", v))}</table>
</body></html>
`;
}
