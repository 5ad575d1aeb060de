// From the runs the view shows to what one chart draws: a shared x (step, or elapsed
// seconds), one y array per line, and how each line looks. Raw lines go faint behind
// their EMA-smoothed copy when smoothing is on (as TensorBoard draws them); eval points
// are markers. Also the CSV of what is visible. Pure: unit-tested in Node.
import { CHARTS, METRICS, metricLabel, type ChartDef, type ChartId, type MetricDef } from './metrics';
import type { MetricsState } from './model';
import { emaSmooth } from './smoothing';

export type XAxis = 'step' | 'time';

/** What the user set; shared by every Metrics page (sidebar and editor) through the extension. */
export interface ViewSettings {
  /** EMA weight in [0, 0.99]. */
  smoothing: number;
  logLoss: boolean;
  xAxis: XAxis;
}
export const DEFAULT_SETTINGS: ViewSettings = { smoothing: 0.6, logLoss: false, xAxis: 'step' };

export function isViewSettings(x: unknown): x is ViewSettings {
  if (typeof x !== 'object' || x === null) return false;
  const s = x as Record<string, unknown>;
  return typeof s.smoothing === 'number' && s.smoothing >= 0 && s.smoothing < 1 && typeof s.logLoss === 'boolean' && (s.xAxis === 'step' || s.xAxis === 'time');
}

/** Colours of the runs when several are overlaid, in order (the first is the selected run). */
export const RUN_COLORS = ['--vscode-charts-blue', '--vscode-charts-orange', '--vscode-charts-green', '--vscode-charts-purple', '--vscode-charts-red', '--vscode-charts-yellow'];

export interface ShownRun {
  id: string;
  /** Legend name: the config file and the run id. */
  name: string;
  state: Readonly<MetricsState>;
}

export interface LineSpec {
  /** Legend, readout and CSV column name. */
  label: string;
  runId: string;
  metric: MetricDef['key'];
  colorVar: string;
  /** Drawn faint: the raw series behind its smoothed copy. */
  faint: boolean;
  /** Markers, no line (eval). */
  points: boolean;
  format: (v: number) => string;
}

export interface ChartBuild {
  chart: ChartDef;
  x: number[];
  lines: LineSpec[];
  ys: (number | null)[][];
  xLabel: string;
  /** Number of points with a value, over all lines. */
  points: number;
}

export const chartDef = (id: ChartId): ChartDef => CHARTS.find((c) => c.id === id)!;

export function buildChart(chart: ChartDef, runs: readonly ShownRun[], settings: ViewSettings): ChartBuild {
  const several = runs.length > 1;
  const series: { spec: LineSpec; x: number[]; y: (number | null)[] }[] = [];
  runs.forEach((run, ri) => {
    const s = run.state;
    const stepX = settings.xAxis === 'step' ? s.steps : s.elapsedMs.map((ms) => ms / 1000);
    const elapsedAt = new Map(s.steps.map((st, i) => [st, s.elapsedMs[i] / 1000]));
    const evalX = settings.xAxis === 'step' ? s.evalSteps : s.evalSteps.map((st) => elapsedAt.get(st) ?? NaN);
    for (const m of METRICS) {
      if (m.chart !== chart.id) continue;
      const y = s[m.key];
      if (!y.some((v) => v !== null)) continue; // a series this run does not report (RSS from the CLI)
      const x = m.source === 'step' ? stepX : evalX;
      const base = metricLabel(m, s.backend);
      const label = several ? `${base} · ${run.name}` : base;
      const colorVar = several ? RUN_COLORS[ri % RUN_COLORS.length] : m.colorVar;
      const spec = { runId: run.id, metric: m.key, colorVar, points: m.source === 'eval', format: m.format };
      const smooth = 'smooth' in m && m.smooth && settings.smoothing > 0;
      if (smooth) {
        series.push({ spec: { ...spec, label: `${label} (raw)`, faint: true }, x, y });
        series.push({ spec: { ...spec, label, faint: false }, x, y: emaSmooth(y, settings.smoothing) });
      } else {
        series.push({ spec: { ...spec, label, faint: false }, x, y });
      }
    }
  });
  const xs = [...new Set(series.flatMap((l) => l.x.filter(Number.isFinite)))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  let points = 0;
  const ys = series.map((l) => {
    const out: (number | null)[] = new Array(xs.length).fill(null);
    l.x.forEach((x, i) => {
      const at = index.get(x);
      const v = l.y[i];
      if (at !== undefined && v !== null && v !== undefined) {
        out[at] = v;
        points++;
      }
    });
    return out;
  });
  return { chart, x: xs, lines: series.map((l) => l.spec), ys, xLabel: settings.xAxis === 'step' ? 'step' : 'elapsed time', points };
}

/** `m:ss` or `h:mm:ss` for elapsed seconds. */
export function clock(seconds: number): string {
  const t = Math.max(0, Math.round(seconds));
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const s = String(t % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

/** The visible part (x within [min, max], or all) of a chart as CSV: x, then one column per line. */
export function chartCsv(b: ChartBuild, range: [number, number] | null): string {
  const head = [b.xLabel === 'step' ? 'step' : 'elapsed_s', ...b.lines.map((l) => l.label)];
  const esc = (v: string) => (/[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
  const rows = [head.map(esc).join(',')];
  b.x.forEach((x, i) => {
    if (range && (x < range[0] || x > range[1])) return;
    rows.push([String(x), ...b.ys.map((y) => (y[i] === null ? '' : String(y[i])))].join(','));
  });
  return rows.join('\n') + '\n';
}
