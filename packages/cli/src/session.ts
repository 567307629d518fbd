// The training loop around DataParallel.fit. fit runs in segments that end at every epoch end and
// every step-based evaluation (an AbortSignal stops it between steps; the trainer resumes from its
// own progress), because save and evaluate need the trainer idle. Ctrl-C or SIGTERM aborts the
// same way. A non-finite test loss stops the run with an error, before any checkpoint is written.
import { existsSync, writeFileSync } from "node:fs";
import type { DataParallel, StepInfo } from "@threadgrad/workers";
import type { Dataset } from "./data/index.js";
import type { TrainSettings } from "./flags.js";
import { type Reporter, formatDuration, formatPercent } from "./progress.js";
import { ReportSeries, renderReport } from "./report.js";
import type { RunDir } from "./run-dir.js";

export interface Best {
  metric: "testAccuracy" | "testLoss";
  value: number;
  step: number;
}

export interface SessionResult {
  isInterrupted: boolean;
  /** mean loss over the last epoch trained in this session (or the steps of a partial one) */
  trainLoss: number | null;
  testLoss: number | null;
  testAccuracy: number | null;
  fitSeconds: number;
  fitSamples: number;
  best: Best | null;
}

export interface SessionOptions {
  trainer: DataParallel;
  settings: TrainSettings;
  train: Dataset;
  test: Dataset;
  runDir: RunDir;
  reporter: Reporter;
  /** aborted by the first Ctrl-C */
  stop: AbortSignal;
  best: Best | null;
  /** the run's record stored in every checkpoint as `extra.cli` (settings, version); best and trainLoss are kept current */
  cli: Record<string, unknown>;
  startedAt: number;
}

export class TrainingSession {
  private fitSeconds = 0;
  private fitSamples = 0;
  private epochLoss = 0;
  private epochSamples = 0;
  private epochCorrect = 0;
  private lastTrainLoss: number | null = null;
  private lastEval: { testLoss: number; testAccuracy: number | null; step: number } | null = null;
  private best: Best | null;
  // What report.html draws: seeded once from metrics.jsonl (earlier sessions of a resumed run),
  // then kept current from this session's records, so a report never re-reads the log.
  private readonly report: ReportSeries;
  /** the step of the last checkpoint-latest this session wrote */
  private latestStep: number | null = null;
  /** when the epoch in progress began (or this session, for the first), performance.now() ms */
  private epochStartedAt = performance.now();

  constructor(private readonly o: SessionOptions) {
    this.best = o.best;
    this.report = ReportSeries.from(o.runDir.readMetrics(), o.trainer.progress.globalStep);
  }

  private get totalSteps(): number {
    return this.o.settings.epochs * Math.ceil(this.o.train.length / this.o.settings.batchSize);
  }

  async run(): Promise<SessionResult> {
    const { trainer, settings, reporter, stop } = this.o;
    const pr = trainer.progress;
    const startStep = pr.globalStep;
    this.epochStartedAt = performance.now();
    reporter.start(this.totalSteps, startStep, Math.min(pr.epoch + 1, settings.epochs), settings.epochs);
    while (pr.epoch < settings.epochs && !stop.aborted) {
      const segment = new AbortController();
      const onStop = () => segment.abort();
      stop.addEventListener("abort", onStop);
      // One segment runs to the end of the epoch or to the next step evaluation, whichever is first.
      const { unit, every } = settings.evalEvery;
      const epochBefore = pr.epoch,
        stepBefore = pr.globalStep;
      // Steps arrive in groups (the trainer hands several to the workers at once): a step's wall
      // time is the gap between the moments the workers finished it and the one before.
      let last = performance.timeOrigin + performance.now();
      try {
        await trainer.fit(this.o.train, {
          epochs: epochBefore + 1,
          batchSize: settings.batchSize,
          signal: segment.signal,
          untilStep: unit === "step" ? (Math.floor(stepBefore / every) + 1) * every : undefined,
          onStep: (info) => {
            this.onStep(info, Math.max(0, info.finishedAt - last) / 1000, startStep);
            last = info.finishedAt;
          },
        });
      } finally {
        stop.removeEventListener("abort", onStop);
      }
      const isEpochEnd = pr.epoch > epochBefore;
      // With accumulation the segment ends at the window boundary at or after the evaluation step.
      const isStepEval = unit === "step" && Math.floor(pr.globalStep / every) > Math.floor(stepBefore / every);
      if (isEpochEnd) this.onEpochEnd();
      const isLast = pr.epoch >= settings.epochs;
      const isEpochEval =
        isEpochEnd && settings.evalEvery.unit === "epoch" && pr.epoch % settings.evalEvery.every === 0;
      if (isStepEval || isEpochEval || isLast) await this.evaluate();
      if (isEpochEnd || isStepEval || isLast) await this.saveLatest();
    }
    const isInterrupted = stop.aborted && pr.epoch < settings.epochs;
    if (isInterrupted) await this.saveLatest();
    else if (this.lastEval === null || this.lastEval.step !== pr.globalStep) await this.evaluate();
    reporter.stop();
    return {
      isInterrupted,
      trainLoss: this.lastTrainLoss ?? this.meanEpochLoss(),
      testLoss: this.lastEval?.testLoss ?? null,
      testAccuracy: this.lastEval?.testAccuracy ?? null,
      fitSeconds: this.fitSeconds,
      fitSamples: this.fitSamples,
      best: this.best,
    };
  }

  private meanEpochLoss(): number | null {
    return this.epochSamples > 0
      ? this.epochLoss / this.epochSamples
      : ((this.o.cli.trainLoss as number | null) ?? null);
  }

  private onStep(info: StepInfo, seconds: number, startStep: number): void {
    const { settings, reporter, runDir } = this.o;
    this.fitSeconds += seconds;
    this.fitSamples += info.samples;
    this.epochLoss += info.loss * info.samples;
    this.epochSamples += info.samples;
    this.epochCorrect += (info.accuracy ?? 0) * info.samples;
    const record = {
      step: info.step,
      epoch: info.epoch + 1,
      stepInEpoch: info.stepInEpoch,
      stepsPerEpoch: info.stepsPerEpoch,
      loss: info.loss,
      accuracy: info.accuracy,
      lr: info.lr,
      gradNorm: info.gradNorm,
      samples: info.samples,
      samplesPerSec: seconds > 0 ? info.samples / seconds : null,
      updated: info.updated,
      skipped: info.skipped,
      timings: info.timings,
      time: (performance.now() - this.o.startedAt) / 1000,
    };
    runDir.appendMetrics({ event: "step", ...record });
    this.report.add({ event: "step", ...record });
    reporter.event("step", record);
    if (info.skipped)
      reporter.warn(`step ${info.step}: non-finite loss or gradient, update skipped (--skip-non-finite)`);
    const rate = this.fitSamples / Math.max(this.fitSeconds, 1e-9);
    const stepsLeft = this.totalSteps - info.step;
    const secondsPerStep = this.fitSeconds / Math.max(1, info.step - startStep);
    reporter.step({
      step: info.step,
      totalSteps: this.totalSteps,
      epoch: info.epoch + 1,
      epochs: settings.epochs,
      loss: info.loss,
      samplesPerSec: rate,
      etaSeconds: stepsLeft * secondsPerStep,
    });
  }

  private onEpochEnd(): void {
    const { trainer, settings, reporter, runDir } = this.o;
    const trainLoss = this.epochSamples > 0 ? this.epochLoss / this.epochSamples : null;
    this.lastTrainLoss = trainLoss;
    const trainAccuracy =
      this.epochSamples > 0 && this.o.train.task === "classification" ? this.epochCorrect / this.epochSamples : null;
    const record = {
      epoch: trainer.progress.epoch,
      step: trainer.progress.globalStep,
      trainLoss,
      trainAccuracy,
      samplesPerSec: this.fitSamples / Math.max(this.fitSeconds, 1e-9),
    };
    runDir.appendMetrics({ event: "epoch", ...record });
    reporter.event("epoch", record);
    const acc = trainAccuracy === null ? "" : `  accuracy ${formatPercent(trainAccuracy)}`;
    const seconds = (performance.now() - this.epochStartedAt) / 1000;
    this.epochStartedAt = performance.now();
    reporter.info(
      `epoch ${record.epoch}/${settings.epochs}  train loss ${trainLoss?.toFixed(4) ?? "-"}${acc}  ${formatDuration(seconds)}`,
    );
    this.epochLoss = 0;
    this.epochSamples = 0;
    this.epochCorrect = 0;
  }

  private async evaluate(): Promise<void> {
    const { trainer, test, reporter, runDir } = this.o;
    const pr = trainer.progress;
    const ev = await trainer.evaluate(test);
    if (!Number.isFinite(ev.loss)) {
      // Parameters that give a non-finite test loss are not worth a checkpoint: the last one saved
      // stays, and such a loss is never the best.
      const kept =
        this.latestStep !== null
          ? `${runDir.latestCheckpoint} holds step ${this.latestStep}`
          : existsSync(runDir.latestCheckpoint)
            ? `${runDir.latestCheckpoint} is left as it was`
            : "no checkpoint was written";
      throw new Error(
        `the test loss at step ${pr.globalStep} is ${ev.loss}: the model's outputs overflow or are NaN on the test set. ` +
          `Stopped without saving these parameters (${kept}); lower --lr or add --clip-grad-norm MAX`,
      );
    }
    const stepsPerEpoch = Math.ceil(this.o.train.length / this.o.settings.batchSize);
    const record = {
      step: pr.globalStep,
      epoch: Number((pr.epoch + pr.stepInEpoch / stepsPerEpoch).toFixed(4)),
      testLoss: ev.loss,
      testAccuracy: ev.accuracy,
      trainLoss: this.lastTrainLoss,
    };
    this.lastEval = { testLoss: ev.loss, testAccuracy: ev.accuracy, step: pr.globalStep };
    runDir.appendMetrics({ event: "eval", ...record });
    this.report.add({ event: "eval", ...record });
    reporter.event("eval", record);
    const acc = ev.accuracy === null ? "" : `  accuracy ${formatPercent(ev.accuracy)}`;
    reporter.info(`eval at step ${pr.globalStep} (epoch ${record.epoch})  test loss ${ev.loss.toFixed(4)}${acc}`);
    const metric = ev.accuracy === null ? "testLoss" : "testAccuracy";
    const value = ev.accuracy ?? ev.loss;
    const isBetter =
      this.best === null ||
      this.best.metric !== metric ||
      !Number.isFinite(this.best.value) || // a best recorded before non-finite losses were refused
      (metric === "testAccuracy" ? value > this.best.value : value < this.best.value);
    if (isBetter) {
      this.best = { metric, value, step: pr.globalStep };
      await trainer.save(runDir.bestCheckpoint, this.extra());
    }
    this.writeReport(null);
  }

  private extra(): Record<string, unknown> {
    return { cli: { ...this.o.cli, best: this.best, trainLoss: this.lastTrainLoss ?? this.meanEpochLoss() } };
  }

  private async saveLatest(): Promise<void> {
    await this.o.trainer.save(this.o.runDir.latestCheckpoint, this.extra());
    this.latestStep = this.o.trainer.progress.globalStep;
  }

  /** Rewrites report.html from the run's series (earlier sessions of a resumed run too). */
  writeReport(summary: Record<string, unknown> | null): void {
    const { runDir, settings } = this.o;
    const html = renderReport(
      this.report,
      settings as unknown as Record<string, unknown>,
      summary,
      `mlp:${settings.model?.join(",") ?? "?"} (${settings.activation}) on ${settings.data}: threadgrad run ${runDir.path}`,
    );
    writeFileSync(runDir.reportFile, html);
  }
}
