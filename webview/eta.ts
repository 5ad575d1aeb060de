// Time left in a run, from what its records say: the mean duration of a recent window of
// optimizer steps with evaluation time taken out (so neither the slow first step, which
// compiles kernels, nor an eval pass skews the rate), times the steps left, plus the
// evaluations still to come at the mean duration of those seen. The trainer's own etaMs
// is the mean since the start, which the first step dominates for most of a short run.
// Pure: the Metrics view and the status bar use it, and it is unit-tested on a recorded run.

/** Steps in the window: long enough to average out checkpoints, short enough to follow a change of pace. */
export const ETA_WINDOW = 20;

export interface EtaInput {
  /** Optimizer steps reported, ascending, and the trainer's elapsed time at each (ms, eval time included). */
  steps: readonly number[];
  elapsedMs: readonly (number | null)[];
  /** Steps after which an evaluation ran, and how long each took (ms). */
  evalSteps: readonly number[];
  evalMs: readonly (number | null)[];
  totalSteps: number | null;
  window?: number;
}

/** Milliseconds left, or null when there is nothing to go on yet (fewer than two steps). */
export function estimateRemainingMs(input: EtaInput): number | null {
  const { steps, elapsedMs, evalSteps, evalMs, totalSteps } = input;
  const window = input.window ?? ETA_WINDOW;
  const n = steps.length;
  if (!totalSteps || n === 0) return null;
  const current = steps[n - 1];
  if (current >= totalSteps) return 0;
  const evalAt = new Map<number, number>();
  evalSteps.forEach((s, i) => {
    const ms = evalMs[i];
    if (ms !== null && ms !== undefined && Number.isFinite(ms)) evalAt.set(s, ms);
  });

  // Durations of consecutive steps, newest first, until the window is full or the
  // sequence breaks (a resume restarts the trainer's clock).
  let spent = 0;
  let counted = 0;
  for (let i = n - 1; i > 0 && counted < window; i--) {
    const a = elapsedMs[i - 1];
    const b = elapsedMs[i];
    if (a === null || b === null || a === undefined || b === undefined || b < a) break;
    const stepsBetween = steps[i] - steps[i - 1];
    if (stepsBetween <= 0) break;
    spent += Math.max(0, b - a - (evalAt.get(steps[i - 1]) ?? 0));
    counted += stepsBetween;
  }
  if (counted === 0) return null;
  const perStep = spent / counted;

  // Evaluations to come, at the interval seen so far.
  let evalLeft = 0;
  const known = [...evalAt.values()];
  if (known.length) {
    const interval = evalSteps.length >= 2 ? evalSteps[evalSteps.length - 1] - evalSteps[evalSteps.length - 2] : evalSteps[0];
    if (interval > 0) {
      const future = Math.floor(totalSteps / interval) - Math.floor(current / interval);
      evalLeft = Math.max(0, future) * (known.reduce((x, y) => x + y, 0) / known.length);
    }
  }
  return perStep * (totalSteps - current) + evalLeft;
}

/** "45s", "3m 20s", "1h 05m": how the view and the status bar say a duration. */
export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}
