/** Exit statuses of the `threadgrad` command. */
export const EXIT_OK = 0;
/** Training (or evaluation, benchmarking) started and failed. */
export const EXIT_FAILED = 1;
/** Bad flags, bad values, unreadable or malformed data, mismatched model and data. */
export const EXIT_USAGE = 2;
/** Stopped by Ctrl-C (128 + SIGINT), as shells report it. */
export const EXIT_INTERRUPTED = 130;
/** Stopped by SIGTERM (128 + 15), e.g. by a job scheduler or `kill`. */
export const EXIT_TERMINATED = 143;

/**
 * A problem with what the user asked for, found before any training: exit status 2. `messages`
 * holds one line per bad value so that a command line with three mistakes reports all three.
 * @example throw new UsageError(["--lr must be >= 0, got -1"])
 */
export class UsageError extends Error {
  readonly messages: string[];
  constructor(messages: string[] | string) {
    const list = Array.isArray(messages) ? messages : [messages];
    super(list.join("\n"));
    this.name = "UsageError";
    this.messages = list;
  }
}

/** Runs `fn`, turning any error it throws into a UsageError (data loading, checkpoint reading). */
export function asUsage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError((err as Error).message);
  }
}
