// Timing through tinybench: every measurement here is a tinybench task, warmed up and repeated,
// and what a suite reports is the median with the min and max of the samples.
import { Bench } from "tinybench";

/** How hard to measure: `quick` is for smoke tests only (a few iterations, no time budget). */
export interface Budget {
  quick: boolean;
}

/** What every suite gets: the budget, the worker counts to run at, and a progress logger. */
export interface Ctx extends Budget {
  /** worker counts for the multi-threaded suites (W5, scaling) */
  workers: number[];
  /** cores this process may use */
  cores: number;
  log: (msg: string) => void;
}

/** Milliseconds per call of the measured function. */
export interface Timing {
  median: number;
  min: number;
  max: number;
  samples: number;
}

export interface MeasureOptions {
  /** minimum measured calls; default 10 (quick: at most 2) */
  iterations?: number;
  /** minimum measured time in ms; default 2000 (quick: 0) */
  time?: number;
  /** warm-up calls; default 3 (quick: 1); 0 for none */
  warmupIterations?: number;
  /** minimum warm-up time in ms, on top of the calls; default 0 (quick: 0) */
  warmupTime?: number;
}

/** What a measured function may return: nothing, or the duration it measured itself (ms). */
// biome-ignore lint/suspicious/noConfusingVoidType: a suite's step function that returns void must still fit
export type Measured = void | { overriddenDuration: number };

/**
 * Times `fn` with tinybench. Inputs must be built before (outside `fn`). A function that times
 * itself (a loop in a worker, say) returns `{ overriddenDuration }` and tinybench records that.
 * @example const t = await measure("w1", () => step(), budget); // t.median ms per step
 */
export async function measure(
  name: string,
  fn: () => Measured | Promise<Measured>,
  budget: Budget,
  opts: MeasureOptions = {},
): Promise<Timing> {
  const quick = budget.quick;
  const iterations = quick ? Math.min(opts.iterations ?? 2, 2) : (opts.iterations ?? 10);
  const warmupIterations = quick ? Math.min(opts.warmupIterations ?? 1, 1) : (opts.warmupIterations ?? 3);
  const bench = new Bench({
    name,
    iterations,
    time: quick ? 0 : (opts.time ?? 2000),
    warmup: warmupIterations > 0,
    warmupIterations,
    warmupTime: quick ? 0 : (opts.warmupTime ?? 0),
    throws: true,
    retainSamples: true,
  });
  // Declared async or not: tinybench would otherwise call fn once more to find out.
  bench.add(name, fn as () => unknown, { async: fn.constructor.name === "AsyncFunction" });
  await bench.run();
  const task = bench.tasks[0]!;
  const result = task.result;
  if (result.state !== "completed") {
    throw new Error(`${name}: benchmark ${result.state}${"error" in result ? `: ${String(result.error)}` : ""}`);
  }
  const { p50, min, max, samplesCount } = result.latency;
  return { median: p50, min, max, samples: samplesCount };
}

/** Seconds since `t0` (performance.now()), for progress messages. */
export const since = (t0: number): string => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
