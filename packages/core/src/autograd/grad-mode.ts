let gradEnabled = true;

/** Whether new operations are recorded for autograd. */
export function isGradEnabled(): boolean {
  return gradEnabled;
}

export function setGradEnabled(flag: boolean): void {
  gradEnabled = flag;
}

function withGradMode<T>(flag: boolean, fn: () => T): T {
  const previous = gradEnabled;
  gradEnabled = flag;
  try {
    return fn();
  } finally {
    gradEnabled = previous;
  }
}

/** Runs `fn` without recording operations: `noGrad(() => w.sub_(w.grad!.mul(lr)))`. */
export const noGrad = <T>(fn: () => T): T => withGradMode(false, fn);

/** Runs `fn` with recording on, even inside `noGrad`. */
export const enableGrad = <T>(fn: () => T): T => withGradMode(true, fn);
