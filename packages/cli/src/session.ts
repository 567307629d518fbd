// The training loop around DataParallel.fit. fit runs in segments that end at every epoch end and
// every step-based evaluation (an AbortSignal stops it between steps; the trainer resumes from its
// own progress), because save and evaluate need the trainer idle. Ctrl-C or SIGTERM aborts the
// same way; across processes (--distributed mpi) a stop asked in any process stops them all at
// the same step. A non-finite test loss stops the run with an error, before any checkpoint is written.
// With a validation set (--val-split) every evaluation also measures it: the best checkpoint,
// early stopping and the plateau schedule look at validation results only, never at the test set.
// --max-steps ends the run like its last epoch would: evaluation, checkpoints, summary. Text data
// has one held-out set, validation and test alike, measured once per evaluation (also in bits
// per character, nats / ln 2).
import { existsSync, writeFileSync } from "node:fs";
import { type PlateauStateDict, ReduceLROnPlateau } from "@threadgrad/optim";
import type { DataParallel, StepInfo } from "@threadgrad/workers";
import { augmentInto } from "./data/augment.js";
import { type Dataset, sharedFloat32 } from "./data/index.js";
import { describeModel } from "./values.js";
import type { TrainSettings } from "./flags.js";
import { type Reporter, formatDuration, formatPercent } from "./progress.js";
import { evaluationBatchSize } from "./setup.js";
import { ReportSeries, renderReport } from "./report.js";
import type { RunDir } from "./run-dir.js";

/**
 * The evaluation checkpoint-best holds: the best validation accuracy (classification) or loss, or,
 * without a validation set, `latest` (value null): the test set never picks a checkpoint.
 * Checkpoints written before validation existed may hold testAccuracy or testLoss.
 */
export interface Best {
  metric: "valAccuracy" | "valLoss" | "latest" | "testAccuracy" | "testLoss";
  value: number | null;
  step: number;
}

/** What early stopping and the plateau schedule have seen of the validation loss; kept in checkpoints. */
export interface Watch {
  /** the lowest validation loss that counted as an improvement (by more than --min-delta) */
  bestValLoss: number | null;
  /** evaluations since then */
  badEvals: number;
  plateau: PlateauStateDict | null;
}

export const NEW_WATCH: Watch = { bestValLoss: null, badEvals: 0, plateau: null };

export interface SessionResult {
  isInterrupted: boolean;
  /** text data: the validation loss in bits per character (nats / ln 2) */
  valBpc: number | null;
  /** mean loss over the last epoch trained in this session (or the steps of a partial one) */
  trainLoss: number | null;
  valLoss: number | null;
  valAccuracy: number | null;
  testLoss: number | null;
  testAccuracy: number | null;
  fitSeconds: number;
  fitSamples: number;
  best: Best | null;
  /** why training ended before --epochs (early stopping), or null */
  stoppedEarly: string | null;
}

export interface SessionOptions {
  trainer: DataParallel;
  settings: TrainSettings;
  train: Dataset;
  /** held out of the training rows by --val-split */
  val: Dataset | null;
  test: Dataset;
  runDir: RunDir;
  reporter: Reporter;
  /** aborted by the first Ctrl-C */
  stop: AbortSignal;
  /**
   * Whether a stop was asked in any of the run's processes (collective: every process asks at the
   * same points). Default, for one process: whether `stop` is aborted.
   */
  isStopAskedAnywhere?: (isAskedHere: boolean) => Promise<boolean>;
  best: Best | null;
  watch: Watch;
  /** the run's record stored in every checkpoint as `extra.cli` (settings, version); best and trainLoss are kept current */
  cli: Record<string, unknown>;
  startedAt: number;
}

/** Nats per character as bits per character. */
export const bitsPerChar = (nats: number): number => nats / Math.LN2;

export class TrainingSession {
  private fitSeconds = 0;
  private fitSamples = 0;
  private epochLoss = 0;
  private epochSamples = 0;
  private epochCorrect = 0;
  private lastTrainLoss: number | null = null;
  private lastEval: {
    valLoss: number | null;
    valAccuracy: number | null;
    testLoss: number;
    testAccuracy: number | null;
    step: number;
  } | null = null;
  private best: Best | null;
  private watch: Watch;
  private stoppedEarly: string | null = null;
  // What report.html draws: seeded once from metrics.jsonl (earlier sessions of a resumed run),
  // then kept current from this session's records, so a report never re-reads the log.
  private readonly report: ReportSeries;
  /** the step of the last checkpoint-latest this session wrote */
  private latestStep: number | null = null;
  /** when the epoch in progress began (or this session, for the first), performance.now() ms */
  private epochStartedAt = performance.now();

  constructor(private readonly o: SessionOptions) {
    this.best = o.best;
    this.watch = { ...o.watch };
    this.report = ReportSeries.from(o.runDir.readMetrics(), o.trainer.progress.globalStep);
  }

  /**
   * The training set the epoch trains on: the data itself (text windows redrawn for the epoch), or
   * with --augment its copy for this epoch, rewritten in place (the trainer shares its
   * SharedArrayBuffer with the workers, not a copy).
   */
  private trainData(epoch: number): Dataset {
    const { train, settings } = this.o;
    if (train.redraw !== undefined && this.drawnEpoch !== epoch) {
      train.redraw(epoch);
      this.drawnEpoch = epoch;
    }
    if (!settings.augment) return train;
    if (this.augmented === null) this.augmented = { epoch: -1, data: { ...train, x: sharedFloat32(train.x.length) } };
    if (this.augmented.epoch !== epoch) {
      augmentInto(train, this.augmented.data.x as Float32Array, settings.seed, epoch);
      this.augmented.epoch = epoch;
    }
    return this.augmented.data;
  }
  private augmented: { epoch: number; data: Dataset } | null = null;
  private drawnEpoch = -1;

  private get totalSteps(): number {
    return Math.min(this.o.settings.epochs * this.stepsPerEpoch, this.maxGlobalStep);
  }

  private get stepsPerEpoch(): number {
    return Math.ceil(this.o.train.length / this.o.settings.batchSize);
  }

  /**
   * The global step at which --max-steps N optimizer steps are done (Infinity without it). Each
   * epoch has ceil(S / k) updates of k micro-steps (the last may be shorter), so update N ends at
   * micro-step floor(N / updates) * S + min(S, (N mod updates) * k): the same on resume, whose
   * progress counts the steps of the sessions before.
   */
  private get maxGlobalStep(): number {
    const n = this.o.settings.maxSteps;
    if (n === null) return Number.POSITIVE_INFINITY;
    const s = this.stepsPerEpoch,
      k = this.o.settings.accumulateSteps;
    const updates = Math.ceil(s / k);
    return Math.floor(n / updates) * s + Math.min(s, (n % updates) * k);
  }

  /** Whether --max-steps is reached. */
  get isAtMaxSteps(): boolean {
    return this.o.trainer.progress.globalStep >= this.maxGlobalStep;
  }

  async run(): Promise<SessionResult> {
    const { trainer, settings, reporter, stop } = this.o;
    const pr = trainer.progress;
    const startStep = pr.globalStep;
    this.epochStartedAt = performance.now();
    reporter.start(this.totalSteps, startStep, Math.min(pr.epoch + 1, settings.epochs), settings.epochs);
    // Every process takes these decisions at the same points, from the same global figures, so
    // they all train, evaluate and save the same segments (saving and evaluating are collective).
    let isStopped = false;
    const isStopAgreed = async () => {
      isStopped ||= (await this.o.isStopAskedAnywhere?.(stop.aborted)) ?? stop.aborted;
      return isStopped;
    };
    while (pr.epoch < settings.epochs && !(await isStopAgreed()) && this.stoppedEarly === null && !this.isAtMaxSteps) {
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
        await trainer.fit(this.trainData(epochBefore), {
          epochs: epochBefore + 1,
          batchSize: settings.batchSize,
          signal: segment.signal,
          untilStep: this.untilStep(stepBefore),
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
      const isLast = pr.epoch >= settings.epochs || this.isAtMaxSteps;
      if (this.isAtMaxSteps && pr.epoch < settings.epochs)
        reporter.info(`stopping at step ${pr.globalStep}: --max-steps ${settings.maxSteps} optimizer steps are done`);
      const isEpochEval =
        isEpochEnd && settings.evalEvery.unit === "epoch" && pr.epoch % settings.evalEvery.every === 0;
      if (isStepEval || isEpochEval || isLast) await this.evaluate();
      if (isEpochEnd || isStepEval || isLast) await this.saveLatest();
    }
    const isInterrupted = pr.epoch < settings.epochs && !this.isAtMaxSteps && (await isStopAgreed());
    if (isInterrupted) await this.saveLatest();
    else if (this.lastEval === null || this.lastEval.step !== pr.globalStep) await this.evaluate();
    reporter.stop();
    return {
      isInterrupted,
      valBpc: this.o.train.isTokens && this.lastEval?.valLoss ? bitsPerChar(this.lastEval.valLoss) : null,
      trainLoss: this.lastTrainLoss ?? this.meanEpochLoss(),
      valLoss: this.lastEval?.valLoss ?? null,
      valAccuracy: this.lastEval?.valAccuracy ?? null,
      testLoss: this.lastEval?.testLoss ?? null,
      testAccuracy: this.lastEval?.testAccuracy ?? null,
      fitSeconds: this.fitSeconds,
      fitSamples: this.fitSamples,
      best: this.best,
      stoppedEarly: this.stoppedEarly,
    };
  }

  /** Where the next fit segment stops: the next step evaluation or --max-steps, whichever is first. */
  private untilStep(stepBefore: number): number | undefined {
    const { unit, every } = this.o.settings.evalEvery;
    const evalAt = unit === "step" ? (Math.floor(stepBefore / every) + 1) * every : Number.POSITIVE_INFINITY;
    const until = Math.min(evalAt, this.maxGlobalStep);
    return Number.isFinite(until) ? until : undefined;
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
    const { trainer, test, val, reporter, runDir, settings, train } = this.o;
    const pr = trainer.progress;
    const batch = { batchSize: evaluationBatchSize(settings.batchSize, train) };
    const vr = val === null ? null : await trainer.evaluate(val, batch);
    // Text data holds out one set, which is both: measured once.
    const ev = test === val && vr !== null ? vr : await trainer.evaluate(test, batch);
    if (vr !== null && !Number.isFinite(vr.loss)) throw this.nonFinite("validation", vr.loss);
    if (!Number.isFinite(ev.loss)) throw this.nonFinite("test", ev.loss);
    const stepsPerEpoch = this.stepsPerEpoch;
    const bpc = vr !== null && this.o.train.isTokens ? bitsPerChar(vr.loss) : null;
    const record = {
      step: pr.globalStep,
      epoch: Number((pr.epoch + pr.stepInEpoch / stepsPerEpoch).toFixed(4)),
      ...(vr === null ? {} : { valLoss: vr.loss, valAccuracy: vr.accuracy }),
      ...(bpc === null ? {} : { valBpc: bpc }),
      testLoss: ev.loss,
      testAccuracy: ev.accuracy,
      trainLoss: this.lastTrainLoss,
    };
    this.lastEval = {
      valLoss: vr?.loss ?? null,
      valAccuracy: vr?.accuracy ?? null,
      testLoss: ev.loss,
      testAccuracy: ev.accuracy,
      step: pr.globalStep,
    };
    runDir.appendMetrics({ event: "eval", ...record });
    this.report.add({ event: "eval", ...record });
    reporter.event("eval", record);
    const figures = (what: string, r: { loss: number; accuracy: number | null }) =>
      `${what} loss ${r.loss.toFixed(4)}${r.accuracy === null ? "" : `  accuracy ${formatPercent(r.accuracy)}`}`;
    const valText =
      vr === null ? "" : `  ${figures("val", vr)}${bpc === null ? "" : `  (${bpc.toFixed(4)} bits per character)`}`;
    const testText = ev === vr ? "" : `  ${figures("test", ev)}`;
    reporter.info(`eval at step ${pr.globalStep} (epoch ${record.epoch})${valText}${testText}`);
    if (vr === null) {
      // Nothing but the test set could rank the checkpoints, and it must not: the best is the latest.
      this.best = { metric: "latest", value: null, step: pr.globalStep };
      await trainer.save(runDir.bestCheckpoint, this.extra());
    } else {
      // A language model is judged by its loss; a token's accuracy says little of it.
      const byLoss = vr.accuracy === null || this.o.train.isTokens === true;
      const metric = byLoss ? "valLoss" : "valAccuracy";
      const value = byLoss ? vr.loss : vr.accuracy!;
      const isBetter =
        this.best === null ||
        this.best.metric !== metric ||
        this.best.value === null ||
        !Number.isFinite(this.best.value) || // a best recorded before non-finite losses were refused
        (metric === "valAccuracy" ? value > this.best.value : value < this.best.value);
      if (isBetter) this.best = { metric, value, step: pr.globalStep };
      this.watchValidation(vr.loss);
      if (isBetter) await trainer.save(runDir.bestCheckpoint, this.extra());
    }
    this.writeReport(null);
  }

  /** Early stopping and the plateau schedule, on the validation loss of the evaluation just made. */
  private watchValidation(valLoss: number): void {
    const { settings, trainer, reporter } = this.o;
    const w = this.watch;
    if (w.bestValLoss === null || valLoss < w.bestValLoss - settings.minDelta) {
      w.bestValLoss = valLoss;
      w.badEvals = 0;
    } else w.badEvals++;
    const patience = settings.earlyStopping;
    if (patience !== null && w.badEvals >= patience) {
      const by = settings.minDelta > 0 ? ` by more than ${settings.minDelta}` : "";
      this.stoppedEarly =
        `early stopping at step ${trainer.progress.globalStep}: the validation loss has not improved on ` +
        `${w.bestValLoss.toFixed(4)}${by} for ${patience} evaluation${patience === 1 ? "" : "s"} ` +
        `(--early-stopping ${patience})`;
      reporter.event("earlyStop", { step: trainer.progress.globalStep, reason: this.stoppedEarly });
      reporter.info(this.stoppedEarly);
    }
    if (settings.lrSchedule !== "plateau") return;
    // The plateau scheduler runs on a stand-in optimizer whose lr is the factor on --lr; its
    // counters travel in the checkpoint, the factor in the trainer's progress (lrScale).
    const scale = trainer.progress.lrScale ?? 1;
    const group = { lr: scale };
    const plateau = new ReduceLROnPlateau(
      { paramGroups: [group] },
      { factor: settings.gamma, patience: settings.plateauPatience },
    );
    if (w.plateau !== null) plateau.loadStateDict(w.plateau);
    plateau.step(valLoss);
    w.plateau = plateau.stateDict();
    if (group.lr !== scale) {
      trainer.setLrScale(group.lr);
      const lr = settings.lr! * group.lr;
      reporter.event("lr", { step: trainer.progress.globalStep, lr, scale: group.lr });
      reporter.info(
        `plateau: no validation-loss improvement for more than ${settings.plateauPatience} evaluations; ` +
          `lr now ${lr.toPrecision(3)}`,
      );
    }
  }

  private nonFinite(what: "validation" | "test", loss: number): Error {
    const { trainer, runDir } = this.o;
    // Parameters that give a non-finite loss are not worth a checkpoint: the last one saved
    // stays, and such a loss is never the best.
    const kept =
      this.latestStep !== null
        ? `${runDir.latestCheckpoint} holds step ${this.latestStep}`
        : runDir.isWriter && existsSync(runDir.latestCheckpoint)
          ? `${runDir.latestCheckpoint} is left as it was`
          : "no checkpoint was written";
    return new Error(
      `the ${what} loss at step ${trainer.progress.globalStep} is ${loss}: ` +
        `the model's outputs overflow or are NaN on the ${what} set. ` +
        `Stopped without saving these parameters (${kept}); lower --lr or add --clip-grad-norm MAX`,
    );
  }

  private extra(): Record<string, unknown> {
    const trainLoss = this.lastTrainLoss ?? this.meanEpochLoss();
    return { cli: { ...this.o.cli, best: this.best, trainLoss, watch: this.watch } };
  }

  private async saveLatest(): Promise<void> {
    await this.o.trainer.save(this.o.runDir.latestCheckpoint, this.extra());
    this.latestStep = this.o.trainer.progress.globalStep;
  }

  /** Rewrites report.html from the run's series (earlier sessions of a resumed run too). */
  writeReport(summary: Record<string, unknown> | null): void {
    const { runDir, settings } = this.o;
    if (!runDir.isWriter) return;
    const html = renderReport(
      this.report,
      settings as unknown as Record<string, unknown>,
      summary,
      `${describeModel(settings.model)}${Array.isArray(settings.model) ? ` (${settings.activation})` : ""} ` +
        `on ${settings.data}: threadgrad run ${runDir.path}`,
    );
    writeFileSync(runDir.reportFile, html);
  }
}
