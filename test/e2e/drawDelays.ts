// The step-to-drawn delay as the workbench specs report it, from a Metrics page's drawLog
// (webview/main.ts): each live step's delay from its record's time (the training
// process's clock at the step's end) to the extension host receiving it from the server,
// the host posting it, the page receiving it and the frame that drew it. The first steps
// are listed apart as well: a run's start is when the workbench has the most else to do.
import type { DrawnStep } from '../../webview/protocol';

export interface Quantiles { p50: number; p95: number; max: number }

/** p50, p95 and max, as every figure of the suite takes them (the value at floor(q * n) of the sorted list). */
export function quantiles(values: readonly (number | null)[]): Quantiles {
  const sorted = values.filter((v): v is number => v !== null && Number.isFinite(v)).sort((a, b) => a - b);
  const q = (x: number) => sorted[Math.min(sorted.length - 1, Math.floor(x * sorted.length))] ?? NaN;
  return { p50: q(0.5), p95: q(0.95), max: sorted.at(-1) ?? NaN };
}

export interface DelayReport {
  stepToDrawnMs: Quantiles & { samples: number };
  stepToHostReceivedMs: Quantiles;
  stepToExtensionHostMs: Quantiles;
  stepToPageMs: Quantiles;
  /** The run's first live steps, hop by hop: [step, host received, host posted, page received, drawn] ms after the step ended. */
  firstSteps: (number | null)[][];
}

export function delayReport(live: readonly DrawnStep[]): DelayReport {
  return {
    stepToDrawnMs: { samples: live.length, ...quantiles(live.map((d) => d.delayMs)) },
    stepToHostReceivedMs: quantiles(live.map((d) => d.hostReceivedMs ?? null)),
    stepToExtensionHostMs: quantiles(live.map((d) => d.hostMs)),
    stepToPageMs: quantiles(live.map((d) => d.arrivedMs)),
    firstSteps: live.slice(0, 5).map(hops),
  };
}

/** One step's figures: [step, host received, host posted, page received, drawn]. */
export const hops = (d: DrawnStep): (number | null)[] => [d.step, d.hostReceivedMs ?? null, d.hostMs, d.arrivedMs, d.delayMs];

/** The lines a spec prints (the 250 ms p95 goal is read from them, not asserted). */
export function delayLines(r: DelayReport): string[] {
  const f = (q: Quantiles) => `p50 ${q.p50} ms, p95 ${q.p95} ms, max ${q.max} ms`;
  return [
    `# step end to the extension host receiving it: ${f(r.stepToHostReceivedMs)}; posting it: ${f(r.stepToExtensionHostMs)}; to the page receiving it: ${f(r.stepToPageMs)} (the rest is drawing)`,
    `# first steps [step, host received, host posted, page received, drawn] ms: ${r.firstSteps.map((s) => `[${s.join(', ')}]`).join(' ')}`,
    `# step end to drawn point: ${f(r.stepToDrawnMs)} over ${r.stepToDrawnMs.samples} live steps (goal: p95 < 250 ms on an idle machine)`,
  ];
}
