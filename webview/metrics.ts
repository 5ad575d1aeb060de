// The Metrics view's one table: every series it knows, where it comes from in a record,
// how it is formatted, which chart draws it and what the stats row calls it. The model
// (state, restore checks), the charts, the hover readout, the stats row and the CSV
// export all read this table, so a new line is one row here (and its field in the
// record). No DOM: the model and its tests use it in Node.
import type { EvalEvent, StepEvent } from '../server/protocol';

export const MiB = 2 ** 20;

/** 3 significant digits, an exponent for the very small (learning rates). */
export function compact(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a < 1e-3 || a >= 1e6) return v.toExponential(1);
  return Number(v.toPrecision(3)).toString();
}
export const mib = (v: number) => `${compact(v / MiB)} MiB`;

/** 1-2-5 steps from 0.1 to 10^5 units of `unit`. */
export function roundSteps(unit: number): number[] {
  const out: number[] = [];
  for (let e = -1; e <= 5; e++) for (const m of [1, 2, 5]) out.push(m * 10 ** e * unit);
  return out;
}

/** Elapsed-time ticks in seconds: round seconds, minutes and hours. */
export const TIME_INCRS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 3 * 3600, 6 * 3600, 12 * 3600, 86400];

export const CHART_IDS = ['loss', 'lr', 'grad', 'tps', 'mem'] as const;
export type ChartId = (typeof CHART_IDS)[number];

export interface ChartDef {
  id: ChartId;
  title: string;
  /** The y axis title, with its unit. */
  yLabel: string;
  height: number;
  /** Offers the log-scale toggle (positive values only). */
  logToggle?: boolean;
  /** Tick labels; values are in the series' own unit. */
  formatTick?: (v: number) => string;
  /** Tick spacings to choose from, when the unit's round numbers are not the data's (bytes shown in MiB). */
  tickIncrs?: number[];
  /** Shown instead of empty axes until a point arrives. */
  empty: string;
}

export const CHARTS: readonly ChartDef[] = [
  { id: 'loss', title: 'Loss', yLabel: 'loss (nats/token)', height: 200, logToggle: true, empty: 'No steps yet.' },
  { id: 'lr', title: 'Learning rate', yLabel: 'learning rate', height: 140, empty: 'No steps yet.' },
  { id: 'grad', title: 'Gradient norm (before clipping)', yLabel: 'L2 norm', height: 140, empty: 'No steps yet.' },
  { id: 'tps', title: 'Throughput', yLabel: 'tokens/s', height: 140, empty: 'No steps yet.' },
  { id: 'mem', title: 'Memory', yLabel: 'MiB', height: 140, formatTick: (v) => compact(v / MiB), tickIncrs: roundSteps(MiB), empty: 'No steps yet.' },
];

interface MetricBase {
  /** A field of the view's state; also the CSV column. */
  key: string;
  /** Series name in the legend and readout; a function when it depends on the backend. */
  label: string | ((backend: string | null) => string);
  chart: ChartId;
  colorVar: string;
  format: (v: number) => string;
  /** The EMA slider applies (noisy per-step series). */
  smooth?: boolean;
  /** The stats row's name for the newest value; no entry when absent. */
  stat?: string;
}
export interface StepMetric extends MetricBase { source: 'step'; read: (r: StepEvent) => number | null }
export interface EvalMetric extends MetricBase { source: 'eval'; read: (r: EvalEvent) => number | null }
export type MetricDef = StepMetric | EvalMetric;

/** What TensorFlow.js's byte count measures, by backend. */
export function tensorMemoryLabel(backend: string | null): string {
  if (backend === 'webgpu') return 'tensors (GPU memory)';
  if (backend === 'wasm') return 'tensors (wasm heap)';
  return 'tensors (JS heap)';
}

export const METRICS = [
  { key: 'loss', source: 'step', read: (r: StepEvent) => r.loss, label: 'train', chart: 'loss', colorVar: '--vscode-charts-blue', format: compact, smooth: true, stat: 'loss' },
  { key: 'evalLoss', source: 'eval', read: (r: EvalEvent) => r.evalLoss, label: 'eval', chart: 'loss', colorVar: '--vscode-charts-orange', format: compact, stat: 'eval loss' },
  { key: 'lr', source: 'step', read: (r: StepEvent) => r.lr, label: 'lr', chart: 'lr', colorVar: '--vscode-charts-green', format: compact, stat: 'lr' },
  { key: 'gradNorm', source: 'step', read: (r: StepEvent) => r.gradNorm, label: 'norm', chart: 'grad', colorVar: '--vscode-charts-purple', format: compact, smooth: true, stat: 'grad norm' },
  { key: 'tokensPerSec', source: 'step', read: (r: StepEvent) => r.tokensPerSec, label: 'tok/s', chart: 'tps', colorVar: '--vscode-charts-yellow', format: compact, smooth: true, stat: 'tok/s' },
  { key: 'memoryBytes', source: 'step', read: (r: StepEvent) => r.memoryBytes, label: tensorMemoryLabel, chart: 'mem', colorVar: '--vscode-charts-red', format: mib },
  { key: 'rssBytes', source: 'step', read: (r: StepEvent) => r.rssBytes ?? null, label: 'process RSS', chart: 'mem', colorVar: '--vscode-charts-foreground', format: mib },
] as const satisfies readonly MetricDef[];

export type StepKey = Extract<(typeof METRICS)[number], { source: 'step' }>['key'];
export type EvalKey = Extract<(typeof METRICS)[number], { source: 'eval' }>['key'];
export const STEP_KEYS = METRICS.filter((m) => m.source === 'step').map((m) => m.key) as StepKey[];
export const EVAL_KEYS = METRICS.filter((m) => m.source === 'eval').map((m) => m.key) as EvalKey[];

export const metricLabel = (m: MetricDef, backend: string | null) => (typeof m.label === 'string' ? m.label : m.label(backend));
