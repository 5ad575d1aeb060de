// Learning-rate schedules, the formulas of Hugging Face transformers
// (optimization.py: get_constant_schedule_with_warmup, get_linear_schedule_with_warmup,
// get_cosine_schedule_with_warmup with num_cycles = 0.5), so that a config ported from
// a transformers / PEFT / Axolotl run trains with the same learning rates:
//   warmup   s < W:  lr * s / max(1, W)
//   constant s >= W: lr
//   linear   s >= W: lr * max(0, (S - s) / max(1, S - W))
//   cosine   s >= W: lr * max(0, 0.5 * (1 + cos(pi * (s - W) / max(1, S - W))))
// where s counts optimizer steps already taken (the first update uses s = 0, hence
// lr 0 when W > 0, exactly as in transformers' Trainer), W = warmupSteps, S = totalSteps.
// One deviation: past S, transformers' cosine rises again; here it stays at 0.

export type LrScheduler = 'constant' | 'linear' | 'cosine';
export const LR_SCHEDULERS: readonly LrScheduler[] = ['constant', 'linear', 'cosine'];

export interface ScheduleOptions {
  learningRate: number;
  scheduler: LrScheduler;
  warmupSteps: number;
  /** Total optimizer steps of the run; unused by 'constant'. */
  totalSteps: number;
}

/** The learning rate of the update made after `step` optimizer steps (0-based). */
export function learningRateAt(step: number, opts: ScheduleOptions): number {
  return opts.learningRate * lrFactor(step, opts);
}

/** The schedule's multiplier of the base learning rate at `step`, in [0, 1]. */
export function lrFactor(step: number, { scheduler, warmupSteps, totalSteps }: ScheduleOptions): number {
  if (!(Number.isInteger(step) && step >= 0)) throw new Error(`step must be a non-negative integer, got ${step}`);
  if (!(Number.isInteger(warmupSteps) && warmupSteps >= 0)) {
    throw new Error(`warmupSteps must be a non-negative integer, got ${warmupSteps}`);
  }
  if (step < warmupSteps) return step / Math.max(1, warmupSteps);
  if (scheduler === 'constant') return 1;
  if (!(Number.isInteger(totalSteps) && totalSteps >= 1)) {
    throw new Error(`totalSteps must be a positive integer for the ${scheduler} schedule, got ${totalSteps}`);
  }
  if (scheduler === 'linear') return Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
  const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
  if (progress >= 1) return 0;
  return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
}
