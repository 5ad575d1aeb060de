// Time-series charts of the Metrics view (uPlot), coloured only from the --vscode-* CSS
// variables of the current theme and re-coloured when the theme changes.
import uPlot from 'uplot';

export interface SeriesSpec {
  label: string;
  /** A --vscode-* variable for the line colour. */
  colorVar: string;
  /** Connect across steps the series has no value at (eval loss). */
  spanGaps?: boolean;
  /** Draw a dot at each point (sparse series). */
  points?: boolean;
  format?: (v: number) => string;
}

export interface ChartSpec {
  title: string;
  height: number;
  series: SeriesSpec[];
  /** Logarithmic y scale. */
  log?: boolean;
  formatY?: (v: number) => string;
}

export type ChartData = [number[], ...(number | null)[][]];

function cssVar(name: string, fallback: string): string {
  return getComputedStyle(document.body).getPropertyValue(name).trim() || fallback;
}

export class MetricChart {
  private plot: uPlot | undefined;
  private data: ChartData;
  private width = 300;

  constructor(
    private readonly host: HTMLElement,
    private readonly spec: ChartSpec,
    /** Called after each draw, with the data's last x. */
    private readonly onDraw?: (lastX: number | undefined) => void,
  ) {
    this.data = [[], ...spec.series.map(() => [])] as ChartData;
  }

  setData(data: ChartData): void {
    this.data = data;
    if (!this.plot) this.build();
    else this.plot.setData(data as uPlot.AlignedData);
  }

  setWidth(width: number): void {
    const w = Math.max(120, Math.floor(width));
    if (w === this.width && this.plot) return;
    this.width = w;
    this.plot?.setSize({ width: w, height: this.spec.height });
  }

  /** Rebuilds with the current theme's colours. */
  retheme(): void {
    if (this.plot) this.build();
  }

  /** Points drawn in series i (non-null values). */
  pointCount(i = 1): number {
    return (this.data[i] ?? []).filter((v) => v !== null && v !== undefined).length;
  }

  private build(): void {
    this.plot?.destroy();
    this.host.replaceChildren();
    const fg = cssVar('--vscode-descriptionForeground', cssVar('--vscode-foreground', 'gray'));
    const grid = cssVar('--vscode-editorWidget-border', cssVar('--vscode-panel-border', 'rgba(128,128,128,0.25)'));
    const font = `${cssVar('--vscode-font-size', '12px')} ${cssVar('--vscode-font-family', 'sans-serif')}`;
    const axis: uPlot.Axis = { stroke: fg, font, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 }, size: 36 };
    const opts: uPlot.Options = {
      title: this.spec.title,
      width: this.width,
      height: this.spec.height,
      cursor: { drag: { x: false, y: false }, points: { size: 5 } },
      legend: { show: true, live: false },
      scales: { x: { time: false }, y: this.spec.log ? { distr: 3 } : { auto: true } },
      axes: [
        { ...axis, size: 28 },
        { ...axis, size: 48, values: (_u, vals) => vals.map((v) => (v == null ? '' : (this.spec.formatY ?? compact)(v))) },
      ],
      series: [
        { label: 'step' },
        ...this.spec.series.map((s): uPlot.Series => ({
          label: s.label,
          stroke: cssVar(s.colorVar, fg),
          width: 1.5,
          spanGaps: s.spanGaps ?? false,
          points: { show: s.points ?? false, size: 4, fill: cssVar(s.colorVar, fg) },
          value: (_u, v) => (v == null ? '–' : (s.format ?? compact)(v)),
        })),
      ],
      hooks: { draw: [() => this.onDraw?.(this.data[0][this.data[0].length - 1])] },
    };
    this.plot = new uPlot(opts, this.data as uPlot.AlignedData, this.host);
  }
}

/** 3 significant digits, exponent for the very small (learning rates). */
export function compact(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a < 1e-3 || a >= 1e6) return v.toExponential(1);
  return Number(v.toPrecision(3)).toString();
}
