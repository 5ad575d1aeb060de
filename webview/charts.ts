// One chart of the Metrics view (uPlot): axis titles with units, tick labels sized to fit,
// a readout of every line at the hovered x (eval points marked), drag-to-zoom on x
// (double-click resets; the page keeps every chart on the same x range), a log y scale,
// and an empty state in words instead of placeholder axes. Coloured only from the
// --vscode-* CSS variables, and rebuilt when the theme changes.
// Cheap per step, because the page shares its main thread with the workbench: one plot
// per chart for the page's life (a new run, a new line or an empty spell keeps it; only
// the scale, the x axis or the theme rebuild it), and a chart scrolled out of sight
// draws when it comes back into view, not at every step.
import uPlot from 'uplot';
import { clock, type ChartBuild, type LineSpec, type XAxis } from './chartData';
import { compact, TIME_INCRS } from './metrics';

function cssVar(name: string, fallback: string): string {
  return getComputedStyle(document.body).getPropertyValue(name).trim() || fallback;
}

/** `color` at `alpha` (the faint raw line behind a smoothed one). */
function withAlpha(color: string, alpha: number): string {
  const hex = /^#([0-9a-f]{6})([0-9a-f]{2})?$/i.exec(color);
  if (hex) return `#${hex[1]}${Math.round(alpha * 255).toString(16).padStart(2, '0')}`;
  const rgb = /^rgba?\(([^)]+)\)$/.exec(color);
  if (rgb) return `rgba(${rgb[1].split(',').slice(0, 3).join(',')},${alpha})`;
  return color;
}

export interface ChartOptions {
  log: boolean;
  xAxis: XAxis;
  /** x range to show, or null for all of it. */
  zoom: [number, number] | null;
}

export interface ChartEvents {
  /** The user dragged a range (or double-clicked: null). */
  onZoom(range: [number, number] | null): void;
}

let measure: CanvasRenderingContext2D | null = null;
function textWidth(text: string, font: string): number {
  measure ??= document.createElement('canvas').getContext('2d');
  if (!measure) return text.length * 7;
  measure.font = font;
  return measure.measureText(text).width;
}

export class MetricChart {
  private plot: uPlot | undefined;
  private build: ChartBuild | undefined;
  private opts: ChartOptions = { log: false, xAxis: 'step', zoom: null };
  /** What the plot was built for (scale and x axis), and each of its lines. */
  private plotKind = '';
  private plotLines: string[] = [];
  private width = 300;
  /** Near the viewport (an IntersectionObserver says); a chart out of it draws when it comes back. */
  private visible = true;
  /** An update not drawn yet (the chart was out of sight). */
  private stale = false;
  private shownTitle = '';
  private shownEmpty: boolean | undefined;
  private readonly plotHost: HTMLElement;
  private readonly emptyEl: HTMLElement;
  private readonly readout: HTMLElement;
  private readonly titleEl: Element | null;
  private ticks: string[] = [];

  constructor(
    readonly host: HTMLElement,
    private readonly events: ChartEvents,
  ) {
    this.plotHost = document.createElement('div');
    this.plotHost.className = 'plot';
    this.emptyEl = document.createElement('div');
    this.emptyEl.className = 'chart-empty';
    this.readout = document.createElement('div');
    this.readout.className = 'readout';
    this.readout.hidden = true;
    this.titleEl = host.querySelector('.chart-title');
    host.append(this.plotHost, this.emptyEl, this.readout);
    this.plotHost.addEventListener('dblclick', () => this.events.onZoom(null));
    if (typeof IntersectionObserver === 'function') {
      new IntersectionObserver(
        (entries) => {
          this.visible = entries[entries.length - 1].isIntersecting;
          if (this.visible) this.flush();
        },
        // Drawn a little ahead of scrolling into view.
        { rootMargin: '200px 0px' },
      ).observe(host);
    }
  }

  /** The y tick labels of the last draw (read by the end-to-end test). */
  get yTicks(): string[] {
    this.flush();
    return this.ticks;
  }

  /** Shows `build`: drawn now when in sight, else when it comes into view. */
  update(build: ChartBuild, opts: ChartOptions): void {
    this.build = build;
    this.opts = opts;
    if (this.titleEl && this.shownTitle !== build.chart.title) this.titleEl.textContent = this.shownTitle = build.chart.title;
    const empty = build.points === 0;
    if (this.shownEmpty !== empty) {
      this.shownEmpty = empty;
      this.host.classList.toggle('is-empty', empty);
      this.emptyEl.textContent = empty ? build.chart.empty : '';
      this.emptyEl.hidden = !empty;
      // The plot is kept, hidden: the next point redraws it with none of the earlier run's lines.
      this.plotHost.hidden = empty;
    }
    const points = String(build.points);
    if (this.host.dataset.points !== points) this.host.dataset.points = points;
    this.stale = !empty;
    if (this.visible) this.flush();
  }

  /** Draws what the last update asked for, if it is not drawn yet. */
  private flush(): void {
    if (!this.stale || !this.build) return;
    this.stale = false;
    const b = this.build;
    const kind = JSON.stringify([this.opts.log, this.opts.xAxis]);
    const lines = b.lines.map((l) => JSON.stringify([l.label, l.colorVar, l.faint, l.points]));
    if (!this.plot || kind !== this.plotKind) {
      this.create();
    } else {
      // Lines that came or went (an eval series appearing, another run's lines): changed in place.
      let same = 0;
      while (same < lines.length && same < this.plotLines.length && lines[same] === this.plotLines[same]) same++;
      for (let i = this.plotLines.length - 1; i >= same; i--) this.plot.delSeries(i + 1);
      for (let i = same; i < lines.length; i++) this.plot.addSeries(this.seriesOpts(b.lines[i]), i + 1);
      this.plot.setData(this.data(), false);
    }
    this.plotKind = kind;
    this.plotLines = lines;
    this.applyZoom();
  }

  setWidth(width: number): void {
    const w = Math.max(160, Math.floor(width));
    if (w === this.width) return;
    this.width = w;
    this.plot?.setSize({ width: w, height: this.build?.chart.height ?? 120 });
  }

  /** Rebuilds with the current theme's colours. */
  retheme(): void {
    if (!this.plot) return;
    this.plotKind = ''; // the next draw builds a new plot
    if (this.build && this.build.points > 0) {
      this.stale = true;
      if (this.visible) this.flush();
    }
  }

  /** The x range drawn now (or that the chart will draw when it comes into view). */
  xRange(): [number, number] | null {
    if (this.stale) return this.wantedRange();
    const x = this.plot?.scales.x;
    return x && x.min !== undefined && x.max !== undefined && x.min !== null && x.max !== null ? [x.min, x.max] : null;
  }

  /** The y values of the line called `label`, as drawn (for the end-to-end test). */
  line(label: string): (number | null)[] | undefined {
    const i = this.build?.lines.findIndex((l) => l.label === label) ?? -1;
    return i >= 0 ? this.build!.ys[i] : undefined;
  }

  get lines(): readonly LineSpec[] {
    return this.build?.lines ?? [];
  }

  /** The plot as a PNG data URL, on the theme's background with the chart's title. */
  png(): string | undefined {
    this.flush();
    const canvas = this.plot?.ctx.canvas;
    if (!canvas || !this.build) return undefined;
    const out = document.createElement('canvas');
    const pad = 28 * devicePixelRatio;
    out.width = canvas.width;
    out.height = canvas.height + pad;
    const g = out.getContext('2d')!;
    g.fillStyle = cssVar('--vscode-editor-background', '#ffffff');
    g.fillRect(0, 0, out.width, out.height);
    g.fillStyle = cssVar('--vscode-foreground', '#000000');
    g.font = `600 ${13 * devicePixelRatio}px ${cssVar('--vscode-font-family', 'sans-serif')}`;
    g.fillText(this.build.chart.title, 8 * devicePixelRatio, 18 * devicePixelRatio);
    g.drawImage(canvas, 0, pad);
    return out.toDataURL('image/png');
  }

  private data(): uPlot.AlignedData {
    const b = this.build!;
    return [b.x, ...b.ys] as uPlot.AlignedData;
  }

  private wantedRange(): [number, number] | null {
    const b = this.build;
    if (!b || !b.x.length) return null;
    return this.opts.zoom ?? [b.x[0], b.x[b.x.length - 1] === b.x[0] ? b.x[0] + 1 : b.x[b.x.length - 1]];
  }

  private applyZoom(): void {
    const range = this.wantedRange();
    if (this.plot && range) this.plot.setScale('x', { min: range[0], max: range[1] });
  }

  private create(): void {
    const b = this.build!;
    this.plot?.destroy();
    this.plotHost.replaceChildren();
    const fg = cssVar('--vscode-descriptionForeground', cssVar('--vscode-foreground', 'gray'));
    const grid = cssVar('--vscode-editorWidget-border', cssVar('--vscode-panel-border', 'rgba(128,128,128,0.25)'));
    const fontSize = 11;
    const font = `${fontSize}px ${cssVar('--vscode-font-family', 'sans-serif')}`;
    const labelFont = `${fontSize}px ${cssVar('--vscode-font-family', 'sans-serif')}`;
    const fmtY = b.chart.formatTick ?? compact;
    const fmtX = this.opts.xAxis === 'time' ? clock : (v: number) => String(Math.round(v));
    const axis: uPlot.Axis = { stroke: fg, font, labelFont, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    const yValues = (_u: uPlot, vals: number[]) => {
      const out = vals.map((v) => (v == null ? '' : fmtY(v)));
      this.ticks = out;
      return out;
    };
    // Wide enough for the longest tick label: none is clipped ("0.005", "19.6").
    const ySize = (_u: uPlot, values: string[] | null) => {
      const longest = Math.max(24, ...(values ?? []).map((v) => textWidth(v, font)));
      return Math.ceil(longest) + 14;
    };
    const opts: uPlot.Options = {
      width: this.width,
      height: b.chart.height,
      cursor: {
        drag: { x: true, y: false, setScale: false },
        points: { size: 6 },
        focus: { prox: 16 },
      },
      focus: { alpha: 1 },
      legend: { show: false },
      scales: { x: { time: false }, y: this.opts.log ? { distr: 3, log: 10 } : { auto: true } },
      axes: [
        { ...axis, label: b.xLabel, labelSize: 14, size: 28, space: 50, ...(this.opts.xAxis === 'time' ? { incrs: TIME_INCRS } : {}), values: (_u, vals) => vals.map((v) => (v == null ? '' : fmtX(v))) },
        { ...axis, label: b.chart.yLabel, labelSize: 16, size: ySize, values: yValues, space: 22, ...(b.chart.tickIncrs && !this.opts.log ? { incrs: b.chart.tickIncrs } : {}) },
      ],
      series: [{ label: b.xLabel }, ...b.lines.map((l) => this.seriesOpts(l))],
      hooks: {
        setCursor: [(u) => this.showReadout(u)],
        setSelect: [
          (u) => {
            if (u.select.width < 4) return;
            const min = u.posToVal(u.select.left, 'x');
            const max = u.posToVal(u.select.left + u.select.width, 'x');
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            this.events.onZoom([min, max]);
          },
        ],
      },
    };
    this.plot = new uPlot(opts, this.data(), this.plotHost);
  }

  private seriesOpts(l: LineSpec): uPlot.Series {
    const fg = cssVar('--vscode-descriptionForeground', cssVar('--vscode-foreground', 'gray'));
    const color = cssVar(l.colorVar, fg);
    return {
      label: l.label,
      stroke: l.points ? 'transparent' : l.faint ? withAlpha(color, 0.25) : color,
      width: l.points ? 0 : l.faint ? 1 : 1.75,
      spanGaps: !l.points,
      points: l.points ? { show: true, size: 7, width: 1.5, stroke: color, fill: cssVar('--vscode-editor-background', '#fff') } : { show: false },
    };
  }

  /** Every line's value at the hovered x; eval points marked with a diamond. */
  private showReadout(u: uPlot): void {
    const b = this.build;
    const idx = u.cursor.idx;
    if (!b || idx === null || idx === undefined || u.cursor.left === undefined || u.cursor.left < 0) {
      this.readout.hidden = true;
      return;
    }
    const x = b.x[idx];
    const head = b.xLabel === 'step' ? `step ${x}` : `elapsed ${clock(x)}`;
    const rows: HTMLElement[] = [];
    const h = document.createElement('div');
    h.className = 'readout-head';
    h.textContent = head;
    rows.push(h);
    b.lines.forEach((l, i) => {
      const v = b.ys[i][idx];
      if (l.faint || v === null || v === undefined) return;
      const row = document.createElement('div');
      row.className = l.points ? 'readout-row eval' : 'readout-row';
      const sw = document.createElement('span');
      sw.className = l.points ? 'swatch marker' : 'swatch';
      sw.style.setProperty('--swatch', `var(${l.colorVar})`);
      const raw = b.lines[i - 1]?.faint && b.lines[i - 1].metric === l.metric && b.lines[i - 1].runId === l.runId ? b.ys[i - 1][idx] : null;
      row.append(sw, document.createTextNode(`${l.points ? '◆ ' : ''}${l.label}: ${l.format(v)}${raw !== null && raw !== undefined ? ` (raw ${l.format(raw)})` : ''}`));
      rows.push(row);
    });
    this.readout.replaceChildren(...rows);
    this.readout.hidden = false;
  }
}
