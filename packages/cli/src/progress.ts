// What a run prints. On a terminal: a progress bar (stderr) with log lines above it. Piped: plain
// lines, one per epoch and evaluation plus one every ~10% of the steps. --json: one JSON object
// per line per event on stdout and nothing else there. --quiet: the summary only.
import cliProgress from "cli-progress";

export type OutputMode = "tty" | "plain" | "json" | "quiet";

export function chooseMode(
  opts: { json?: boolean; quiet?: boolean },
  stream: { isTTY?: boolean } = process.stderr,
): OutputMode {
  if (opts.json) return "json";
  if (opts.quiet) return "quiet";
  return stream.isTTY ? "tty" : "plain";
}

/** `12.3s`, `4m05s`, `1h02m`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)}s`;
  const m = Math.floor(seconds / 60),
    s = Math.round(seconds % 60);
  if (m < 60) return `${m}m${String(s).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

/** `1 epoch`, `3 epochs`. */
export const plural = (n: number, noun: string): string => `${n} ${noun}${n === 1 ? "" : "s"}`;

export const formatRate = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "?");
export const formatPercent = (x: number | null): string => (x === null ? "-" : `${(100 * x).toFixed(2)}%`);

export interface StepLine {
  step: number;
  totalSteps: number;
  epoch: number;
  epochs: number;
  loss: number;
  /** samples per second averaged over this invocation's training so far */
  samplesPerSec: number;
  etaSeconds: number;
}

type Sink = (line: string) => void;

/**
 * Sends each event where the output mode wants it.
 * @example const r = new Reporter("plain"); r.start(100, 0); r.step({...}); r.stop();
 */
export class Reporter {
  private bar: cliProgress.SingleBar | null = null;
  private multi: cliProgress.MultiBar | null = null;
  private nextTenth = 0;

  constructor(
    readonly mode: OutputMode,
    private readonly out: Sink = (l) => process.stdout.write(`${l}\n`),
    private readonly err: Sink = (l) => process.stderr.write(`${l}\n`),
    /** where the terminal's bar is drawn; lines shown while it runs go there too */
    private readonly barStream: NodeJS.WritableStream = process.stderr,
  ) {}

  /** Starts the bar (terminal) or the 10% counter (plain) for a run of `totalSteps`, `doneSteps` already done. */
  start(totalSteps: number, doneSteps: number, epoch = 1, epochs = 1): void {
    this.nextTenth = Math.floor((10 * doneSteps) / Math.max(1, totalSteps)) + 1;
    if (this.mode !== "tty") return;
    this.multi = new cliProgress.MultiBar(
      {
        // Kept under 80 columns (cli-progress cuts longer lines at the terminal's width).
        format: "epoch {epoch}/{epochs} {bar} {value}/{total}  loss {loss}  {rate} samples/s  ETA {etaText}",
        stream: this.barStream,
        hideCursor: true,
        clearOnComplete: false,
        fps: 10,
        barsize: 14,
      },
      cliProgress.Presets.shades_classic,
    );
    this.bar = this.multi.create(totalSteps, doneSteps, { epoch, epochs, loss: "-", rate: "-", etaText: "?" });
  }

  step(s: StepLine): void {
    if (this.bar !== null) {
      this.bar.update(s.step, {
        epoch: s.epoch,
        epochs: s.epochs,
        loss: s.loss.toFixed(4),
        rate: formatRate(s.samplesPerSec),
        etaText: formatDuration(s.etaSeconds),
      });
      return;
    }
    if (this.mode !== "plain" || s.step < (this.nextTenth * s.totalSteps) / 10) return;
    while (this.nextTenth * s.totalSteps <= 10 * s.step) this.nextTenth++;
    const pct = Math.floor((100 * s.step) / s.totalSteps);
    this.out(
      `step ${s.step}/${s.totalSteps} (${pct}%)  epoch ${s.epoch}/${s.epochs}  loss ${s.loss.toFixed(4)}  ` +
        `${formatRate(s.samplesPerSec)} samples/s  ETA ${formatDuration(s.etaSeconds)}`,
    );
  }

  /**
   * A human line (epoch end, evaluation, notes): above the bar, or plain; dropped for --json and
   * --quiet. On a terminal, a line from before the bar starts (the header) goes where the bar will.
   */
  info(line: string): void {
    if (this.multi !== null) this.multi.log(`${line}\n`);
    else if (this.mode === "plain") this.out(line);
    else if (this.mode === "tty") this.err(line);
  }

  /** A warning or notice that every mode shows, on stderr. */
  warn(line: string): void {
    if (this.multi !== null) this.multi.log(`${line}\n`);
    else this.err(line);
  }

  /** One JSON event (only with --json). */
  event(name: string, fields: Record<string, unknown>): void {
    if (this.mode === "json") this.out(JSON.stringify({ event: name, ...fields }));
  }

  /** The closing block: printed in every mode but --json, which prints the event instead. */
  summary(lines: string[], fields: Record<string, unknown>): void {
    this.stop();
    if (this.mode === "json") this.event("summary", fields);
    else for (const l of lines) this.out(l);
  }

  stop(): void {
    // cli-progress prints logged lines at its next redraw, and stop() does not redraw: without this
    // update, lines logged since the last frame (the last epoch, the final evaluation) are lost.
    this.multi?.update();
    this.multi?.stop();
    this.multi = null;
    this.bar = null;
  }
}
