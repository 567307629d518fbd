import { existsSync, readdirSync, rmSync } from "node:fs";
// `threadgrad train`: settings → data → trainer → TrainingSession → summary. Ctrl-C (or SIGTERM)
// once stops after the current step with a checkpoint and the resume command (exit 130, or 143
// for SIGTERM); a second signal exits at once. With --distributed mpi every process of the MPI job
// runs this command; process 0 alone prints and writes the run folder (see processes.ts).
import { join } from "node:path";
import type { ScheduleConfig } from "@threadgrad/optim";
import { DataParallel, type TrainerOptions, availableWorkers } from "@threadgrad/workers";
import type { DataSplit } from "../data/index.js";
import { EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, UsageError } from "../errors.js";
import { RunProcesses } from "../processes.js";
import type { TrainSettings } from "../flags.js";
import { Reporter, chooseMode, formatDuration, formatPercent, formatRate, plural } from "../progress.js";
import { runnable } from "../invocation.js";
import { RunDir, defaultRunDir } from "../run-dir.js";
import { type Best, NEW_WATCH, type SessionResult, TrainingSession } from "../session.js";
import { type GivenSettings, type TrainRun, trainSettings } from "../settings.js";
import type { StoredRun } from "../stored-run.js";
import type { Preprocess } from "../data/preprocess.js";
import { mseInTargetUnits } from "../data/preprocess.js";
import { fitSettingsToData, loadRunData, preprocessRunData, trainerOptions } from "../setup.js";
import { describeModel } from "../values.js";
import { VERSION } from "../version.js";

const shellQuote = (s: string): string => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`);

/** The files a run writes in its folder. */
const RUN_FILES = [
  "config.json",
  "metrics.jsonl",
  "checkpoint-latest.msgpack",
  "checkpoint-best.msgpack",
  "report.html",
] as const;

/**
 * Refuses a new run's --out folder that holds a run's files (the new run would append to its
 * metrics and replace its checkpoints and report), unless --overwrite, which deletes them. Other
 * files in the folder are left alone: the run never writes over them.
 */
function claimOutFolder(out: string, overwrite: boolean): void {
  const found = existsSync(out) ? RUN_FILES.filter((f) => readdirSync(out).includes(f)) : [];
  if (found.length === 0) return;
  if (overwrite) {
    for (const f of found) rmSync(join(out, f));
    return;
  }
  const latest = join(out, "checkpoint-latest.msgpack");
  const resume = found.includes("checkpoint-latest.msgpack")
    ? `, continue that run with --resume ${shellQuote(latest)},`
    : "";
  throw new UsageError(
    `--out ${out} already holds a run's files (${found.join(", ")}); choose another folder${resume} or pass --overwrite to replace them`,
  );
}

/** More workers than cores: they take turns, and every step waits for the last, so a run crawls. */
function warnOversubscribed(reporter: Reporter, workers: number, sharingCores: number): void {
  const cores = availableWorkers();
  const threads = workers * sharingCores;
  if (threads <= cores) return;
  const what = sharingCores > 1 ? `${sharingCores} processes × ${plural(workers, "worker")}` : `${workers} workers`;
  reporter.warn(
    `warning: ${what} on ${cores} usable core${cores === 1 ? "" : "s"}: the workers take turns on ` +
      "the cores and every step waits for the slowest, so training runs several times slower than with " +
      "--workers auto",
  );
}

const exitStatus = (signal: unknown): number => (signal === "SIGTERM" ? EXIT_TERMINATED : EXIT_INTERRUPTED);

/**
 * Installs the Ctrl-C and SIGTERM handler: the first signal aborts `stop` (its reason is the
 * signal's name), the second exits at once with 130 (SIGINT) or 143 (SIGTERM).
 */
function onStopSignals(reporter: Reporter, stop: AbortController): () => void {
  let signals = 0;
  const handler = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      reporter.stop();
      process.stderr.write(`\n${signal} after a stop was asked: exiting without a checkpoint\n`);
      process.exit(exitStatus(signal));
    }
    stop.abort(signal);
    const again = signal === "SIGINT" ? "press Ctrl-C again" : "send another signal";
    reporter.warn(`${signal}: stopping after the current step (${again} to quit at once)...`);
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
  return () => {
    process.off("SIGINT", handler);
    process.off("SIGTERM", handler);
  };
}

/** Runs `threadgrad train` with commander's option values; returns the exit status. */
export async function runTrain(cli: Record<string, unknown>): Promise<number> {
  const startedAt = performance.now();
  const resolved = trainSettings(cli);
  const processes = RunProcesses.join(resolved.settings.distributed);
  processes.letOutputQueue();
  let status: number | null = null;
  try {
    status = await trainInProcesses(resolved, processes, startedAt);
    return status;
  } finally {
    await processes.flushOutput();
    // Only where every process ends alike (see RunProcesses.finalize).
    if (status !== null || processes.hasAgreedToFail) processes.finalize();
  }
}

async function trainInProcesses(resolved: TrainRun, processes: RunProcesses, startedAt: number): Promise<number> {
  const { given, stored } = resolved;
  // Only process 0 prints, and only it touches the run folder: the others never look at --out.
  const reporter = processes.isFirst
    ? new Reporter(chooseMode({ json: given.json, quiet: given.quiet }))
    : new Reporter(
        "quiet",
        () => undefined,
        () => undefined,
      );
  const setUp = () => {
    checkProcessCount(resolved, processes.count);
    const split = loadRunData(resolved.settings, stored?.preprocess?.classes ?? undefined);
    const preprocess = preprocessRunData(resolved.settings, split, stored?.preprocess ?? null);
    const settings = fitSettingsToData(resolved.settings, split);
    if (resolved.checkpoint) checkCanContinue(resolved.checkpoint.progress, settings);
    const options = {
      ...trainerOptions(settings, split.train),
      distributed: processes.count > 1 ? ("mpi" as const) : undefined,
    };
    if (!processes.isFirst)
      return { split, preprocess, settings, options, runDir: new RunDir(settings.out ?? "", false) };
    if (!stored && typeof settings.out === "string") claimOutFolder(settings.out, given.overwrite === true);
    const runDir = new RunDir(settings.out ?? defaultRunDir());
    settings.out = runDir.path;
    return { split, preprocess, settings, options, runDir };
  };
  const { split, preprocess, settings, options, runDir } = await processes.settle(setUp);
  const stop = new AbortController();
  const removeHandler = onStopSignals(reporter, stop);
  let trainer: DataParallel | null = null;
  try {
    trainer = await startTrainer(resolved, settings, options).catch((err: unknown) => {
      runDir.discardIfEmpty(); // refused before anything was written: leave no empty run folder behind
      throw err;
    });
    resolved.checkpoint = null; // its tensors are in the trainer now: let them go
    warnOversubscribed(reporter, trainer.numWorkers, processes.sharingCores);
    return await train({
      trainer,
      processes,
      settings,
      split,
      runDir,
      reporter,
      stop,
      stored,
      given,
      startedAt,
      schedule: options.schedule ?? null,
      preprocess,
    });
  } finally {
    removeHandler();
    runDir.close();
    await trainer?.close();
  }
}

/** The trainer: a new one, or the checkpoint's to resume. */
function startTrainer(resolved: TrainRun, settings: TrainSettings, options: TrainerOptions): Promise<DataParallel> {
  if (resolved.checkpoint === null) return DataParallel.create(options);
  return DataParallel.load(resolved.checkpoint, {
    // a module's model is built from the module given again (moduleToLoad checked it), never from the file
    model: "module" in options.model ? options.model : undefined,
    workers: settings.workers,
    shards: options.shards,
    schedule: options.schedule,
    maxBatchSize: options.maxBatchSize,
    distributed: options.distributed,
  });
}

/** Refuses to resume a run of P processes with another count: they would split its batches otherwise. */
function checkProcessCount(resolved: TrainRun, count: number): void {
  const stored = resolved.stored;
  if (stored === null || stored.processes === count) return;
  const processes = (n: number) => (n === 1 ? "1 process" : `${n} processes`);
  const how = stored.processes === 1 ? "without mpirun" : `under mpirun -np ${stored.processes}`;
  throw new UsageError(
    `--resume: ${resolved.given.resume} was written by a run of ${processes(stored.processes)}, and this run has ` +
      `${processes(count)}; a run resumes with as many processes: run it ${how}`,
  );
}

/** Refuses a resume that has nothing left to train under the --epochs and --max-steps given. */
function checkCanContinue(progress: { epoch: number; optimizerStep: number }, settings: TrainSettings): void {
  if (progress.epoch > settings.epochs) {
    throw new UsageError(
      `--epochs ${settings.epochs}: the checkpoint has already completed ${plural(progress.epoch, "epoch")}; ` +
        "pass a larger --epochs to train further",
    );
  }
  const { maxSteps } = settings;
  if (maxSteps !== null && progress.optimizerStep >= maxSteps) {
    throw new UsageError(
      `--max-steps ${maxSteps}: the checkpoint has already run ${plural(progress.optimizerStep, "optimizer step")}; ` +
        "pass a larger --max-steps to train further",
    );
  }
}

interface TrainContext {
  trainer: DataParallel;
  processes: RunProcesses;
  settings: TrainSettings;
  split: DataSplit;
  runDir: RunDir;
  reporter: Reporter;
  stop: AbortController;
  stored: StoredRun | null;
  given: GivenSettings;
  startedAt: number;
  schedule: ScheduleConfig | null;
  preprocess: Preprocess;
}

async function train(c: TrainContext): Promise<number> {
  const { trainer, settings, split, runDir, reporter, stored } = c;
  const info = {
    version: VERSION,
    workers: trainer.numWorkers,
    processes: c.processes.count,
    trainSamples: split.train.length,
    valSamples: split.val?.length ?? 0,
    testSamples: split.test.length,
    features: split.train.features,
    classes: split.train.numClasses,
    schedule: c.schedule,
  };
  runDir.writeConfig({ ...settings, resolved: info });
  const startRecord = {
    out: runDir.path,
    resumedFrom: stored ? c.given.resume : null,
    step: trainer.progress.globalStep,
    ...info,
  };
  runDir.appendMetrics({ event: "start", ...startRecord, time: 0 });
  reporter.event("start", { ...startRecord, settings });
  describeStart(reporter, settings, info, stored !== null, trainer.progress.globalStep);
  for (const warning of split.train.warnings ?? []) reporter.warn(warning);
  const session = new TrainingSession({
    trainer,
    settings,
    train: split.train,
    val: split.val ?? null,
    test: split.test,
    runDir,
    reporter,
    stop: c.stop.signal,
    isStopAskedAnywhere: (isAskedHere) => c.processes.any(isAskedHere),
    best: stored?.best ?? null,
    watch: stored?.watch ?? NEW_WATCH,
    // The one-hot categories, which eval and predict read back to encode the data they are given.
    cli: {
      version: VERSION,
      settings,
      trainLoss: stored?.trainLoss ?? null,
      preprocess: c.preprocess,
      categories: split.train.categorical ?? null,
      // A resume must run as many processes (they split each batch), so the record says how many.
      processes: c.processes.count,
    },
    startedAt: c.startedAt,
  });
  const result = await session.run().catch((err: Error) => {
    if (/non-finite/.test(err.message))
      err.message += "\n  in threadgrad terms: lower --lr, add --clip-grad-norm MAX, or pass --skip-non-finite";
    throw err;
  });
  if (result.isInterrupted) return interrupted(c, exitStatus(c.stop.signal.reason));
  const figures = { workers: trainer.numWorkers, processes: c.processes.count };
  const summary = summarize(result, (performance.now() - c.startedAt) / 1000, figures, c.preprocess);
  session.writeReport(summary);
  reporter.summary(summaryLines(summary, runDir, result.best), summary);
  return EXIT_OK;
}

function describeStart(
  r: Reporter,
  s: TrainSettings,
  info: { workers: number; processes: number; trainSamples: number; valSamples: number; testSamples: number },
  isResumed: boolean,
  step: number,
): void {
  const what = isResumed ? `resuming at step ${step}:` : "training";
  const val = info.valSamples > 0 ? `${info.valSamples} validation / ` : "";
  r.info(
    `${what} ${describeModel(s.model)}${Array.isArray(s.model) ? ` (${s.activation})` : ""} on ${s.data}: ` +
      `${info.trainSamples} train / ${val}${info.testSamples} test samples, ` +
      `${plural(s.epochs, "epoch")}, batch ${s.batchSize}, ` +
      `${s.optimizer} lr ${s.lr}${s.lrSchedule === "none" ? "" : ` ${s.lrSchedule}`}, ${onWorkers(info)}`,
  );
  r.info(`run folder: ${s.out}`);
}

/** The run's summary; a regression run's losses are on standardised targets, so MSE and RMSE come in target units too. */
function summarize(
  r: SessionResult,
  wallSeconds: number,
  { workers, processes }: { workers: number; processes: number },
  p: Preprocess,
): Record<string, unknown> {
  const testMse = p.target !== null && r.testLoss !== null ? mseInTargetUnits(p, r.testLoss) : null;
  return {
    trainLoss: r.trainLoss,
    valLoss: r.valLoss,
    valAccuracy: r.valAccuracy,
    ...(r.valBpc === null ? {} : { valBpc: r.valBpc }),
    testLoss: r.testLoss,
    testAccuracy: r.testAccuracy,
    ...(testMse === null ? {} : { testMse, testRmse: Math.sqrt(testMse) }),
    wallSeconds: Number(wallSeconds.toFixed(3)),
    samplesPerSec: r.fitSeconds > 0 ? Math.round(r.fitSamples / r.fitSeconds) : null,
    workers,
    processes,
    best: r.best,
    stoppedEarly: r.stoppedEarly,
  };
}

/** A figure in target units: 4 significant digits, any magnitude (house prices or fractions). */
const fmtUnits = (v: number): string => (Number.isFinite(v) ? String(Number(v.toPrecision(4))) : String(v));

function summaryLines(s: Record<string, unknown>, runDir: RunDir, best: Best | null): string[] {
  const n = (v: unknown) => (typeof v === "number" ? v.toFixed(4) : "-");
  const bestText = best === null ? "" : ` (${describeBest(best)})`;
  const stopped = typeof s.stoppedEarly === "string" ? [`  stopped early  ${s.stoppedEarly}`] : [];
  const hasVal = s.valLoss !== null;
  return [
    `done in ${formatDuration(s.wallSeconds as number)}`,
    ...stopped,
    `  train loss     ${n(s.trainLoss)}${s.testMse === undefined ? "" : " (on standardised targets)"}`,
    ...(hasVal
      ? [
          `  val loss       ${n(s.valLoss)}${s.testMse === undefined ? "" : " (on standardised targets)"}` +
            (s.valBpc === undefined ? "" : ` nats per character, ${n(s.valBpc)} bits per character`),
        ]
      : []),
    ...(hasVal && s.valAccuracy !== null ? [`  val accuracy   ${formatPercent(s.valAccuracy as number)}`] : []),
    `  test loss      ${n(s.testLoss)}${s.testMse === undefined ? "" : " (on standardised targets)"}`,
    ...(s.testAccuracy === null ? [] : [`  test accuracy  ${formatPercent(s.testAccuracy as number)}`]),
    ...(s.testMse === undefined
      ? []
      : [`  test MSE       ${fmtUnits(s.testMse as number)}  RMSE ${fmtUnits(s.testRmse as number)} (target units)`]),
    `  throughput     ${formatRate(s.samplesPerSec as number)} samples/s on ${onWorkers(s as { workers: number; processes: number })}`,
    `  run folder     ${runDir.path} (report.html, metrics.jsonl, checkpoint-latest.msgpack, checkpoint-best.msgpack${bestText})`,
  ];
}

function describeBest(best: Best): string {
  if (best.metric === "latest" || best.value === null)
    return `best: step ${best.step}, the latest: without --val-split no evaluation picks a best checkpoint`;
  const on = best.metric.startsWith("val") ? "validation" : "test";
  const figure = best.metric.endsWith("Accuracy")
    ? `${on} accuracy ${formatPercent(best.value)}`
    : `${on} loss ${best.value.toFixed(4)}`;
  return `best: step ${best.step}, ${figure}`;
}

function interrupted(c: TrainContext, status: number): number {
  const { reporter, runDir, trainer, given, processes } = c;
  if (!processes.isFirst) return status;
  const flags = [given.json ? " --json" : "", given.quiet ? " --quiet" : ""].join("");
  const again = runnable(`threadgrad train --resume ${shellQuote(runDir.latestCheckpoint)}${flags}`);
  // mpirun's own options (a host file, say) are the user's to repeat.
  const command = processes.count > 1 ? `mpirun -np ${processes.count} ${again}` : again;
  const pr = trainer.progress;
  reporter.stop();
  reporter.event("interrupted", {
    step: pr.globalStep,
    epochsDone: pr.epoch,
    checkpoint: runDir.latestCheckpoint,
    resumeCommand: command,
  });
  process.stderr.write(
    `interrupted at step ${pr.globalStep}; checkpoint written to ${runDir.latestCheckpoint}\nresume with:\n  ${command}\n`,
  );
  return status;
}

/** `2 workers`, or across processes `2 processes × 1 worker`. */
function onWorkers({ workers, processes }: { workers: number; processes: number }): string {
  return processes > 1 ? `${processes} processes × ${plural(workers, "worker")}` : plural(workers, "worker");
}
