// The Metrics page, in the sidebar view and in the editor-area panel alike: restores what
// it drew before from getState, says `view/ready` with the newest record id it holds,
// then applies the records the extension streams (a replay of what it missed, then the
// live tail) and redraws. Runs picked for comparison are drawn beside the shown one.
// What the user sets (smoothing, log scale, x axis) goes to the extension, which hands it
// to every other Metrics page, so the sidebar and the editor view look the same.
// The page shares its main thread with the whole workbench (a webview is an iframe of
// it), so a step costs it little: messages are drawn once per frame, however many came,
// and only what changed is written to the DOM (see charts.ts for the charts' share).
import '@vscode-elements/elements/dist/vscode-badge/index.js';
import '@vscode-elements/elements/dist/vscode-button/index.js';
import 'uplot/dist/uPlot.min.css';
import './styles.css';
import { RESUMABLE_STATES, runName, type RunRecord, type RunSummary } from '../server/protocol';
import { buildChart, chartCsv, DEFAULT_SETTINGS, isViewSettings, RUN_COLORS, type ShownRun, type ViewSettings } from './chartData';
import { MetricChart } from './charts';
import { formatDuration } from './eta';
import { CHARTS, METRICS, metricLabel, mib, type ChartId } from './metrics';
import { MetricsModel } from './model';
import { isToViewMessage, ToHost, ToView, type DrawnStep, type ToHostMessage, type ToViewMessage } from './protocol';

interface VsCodeApi {
  postMessage(message: ToHostMessage): void;
  getState(): unknown;
  setState(state: unknown): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

const vscode = acquireVsCodeApi();
const saved = vscode.getState() as { settings?: unknown } | undefined;
const model = MetricsModel.restore(saved);
let settings: ViewSettings = isViewSettings(saved?.settings) ? saved.settings : { ...DEFAULT_SETTINGS };
/** Runs drawn beside the shown one, in the order they were picked; not saved (the extension sends them again on `ready`). */
const compared = new Map<string, MetricsModel>();
/** The x range every chart shows after a drag, or null for all of it. */
let zoom: [number, number] | null = null;
/** Live steps drawn, with their delay by hop, and anything the CSP blocked: read by the end-to-end test. */
const drawLog: DrawnStep[] = [];
const cspViolations: string[] = [];
const charts = new Map<ChartId, MetricChart>();
document.addEventListener('securitypolicyviolation', (e) => cspViolations.push(`${e.effectiveDirective}: ${e.blockedURI || 'inline'}`));
(window as unknown as { qloraMetrics: unknown }).qloraMetrics = { model, compared, drawLog, cspViolations, charts, settings: () => settings, zoom: () => zoom };

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

/** The run's progress: a track and a fill scaled by transform, which the compositor draws without a layout. */
function progressBar(): HTMLElement {
  const bar = el('div', { id: 'progress', class: 'progress', role: 'progressbar', 'aria-label': 'Steps done', 'aria-valuemin': '0' });
  bar.append(el('div', { id: 'progress-fill', class: 'progress-fill' }));
  return bar;
}

function showProgress(step: number, total: number | null): void {
  const bar = $('progress');
  setAttr(bar, 'aria-valuemax', String(total ?? 0));
  setAttr(bar, 'aria-valuenow', String(step));
  const fraction = total ? Math.min(1, Math.max(0, step / total)) : 0;
  const fill = $('progress-fill');
  const transform = `scaleX(${fraction})`;
  if (fill.style.transform !== transform) fill.style.transform = transform;
}

/** Writes only what differs: an unchanged text or attribute costs the workbench no style or layout pass. */
function setText(e: HTMLElement, text: string): void {
  if (e.textContent !== text) e.textContent = text;
}
function setAttr(e: HTMLElement, name: string, value: string): void {
  if (e.getAttribute(name) !== value) e.setAttribute(name, value);
}

function el(tag: string, attrs: Record<string, string> = {}, text?: string): HTMLElement {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function buildPage(): void {
  const app = $('app');
  const run = el('div', { id: 'run' });
  const header = el('div', { class: 'header' });
  header.append(el('span', { id: 'run-name', class: 'run-name' }), el('vscode-badge', { id: 'state-badge', variant: 'counter' }));
  const actions = el('div', { class: 'actions' });
  actions.append(
    el('vscode-button', { id: 'stop', secondary: '', 'aria-label': 'Stop the run' }, 'Stop'),
    el('vscode-button', { id: 'resume', 'aria-label': 'Resume the run' }, 'Resume'),
  );
  const toolbar = el('div', { id: 'toolbar', class: 'toolbar' });
  const smoothing = el('label', { class: 'control', title: 'Exponential moving average of train loss, gradient norm and tokens/s; the raw series stays faint behind' });
  smoothing.append(
    el('span', {}, 'Smoothing'),
    el('input', { id: 'smoothing', type: 'range', min: '0', max: '0.99', step: '0.01', 'aria-label': 'Smoothing weight' }),
    el('span', { id: 'smoothing-value', class: 'value' }),
  );
  const log = el('label', { class: 'control' });
  log.append(el('input', { id: 'log-scale', type: 'checkbox', 'aria-label': 'Log scale for loss' }), el('span', {}, 'Log loss'));
  const xAxis = el('label', { class: 'control' });
  const select = el('select', { id: 'x-axis', 'aria-label': 'x axis' });
  select.append(el('option', { value: 'step' }, 'step'), el('option', { value: 'time' }, 'elapsed time'));
  xAxis.append(el('span', {}, 'x'), select);
  toolbar.append(smoothing, log, xAxis, el('vscode-button', { id: 'reset-zoom', secondary: '', title: 'Show every step again (or double-click a chart)' }, 'Reset zoom'));
  run.append(
    header,
    el('div', { id: 'meta', class: 'meta' }),
    // Not vscode-progress-bar: it animates its width over 100 ms at every step, which on a
    // small machine kept the workbench painting frames for most of each step.
    progressBar(),
    el('div', { id: 'progress-text', class: 'meta' }),
    actions,
    el('div', { id: 'message', class: 'message' }),
    el('div', { id: 'stats', class: 'stats' }),
    toolbar,
    el('div', { id: 'legend', class: 'legend' }),
    el('div', { id: 'charts', class: 'charts' }),
    el('pre', { id: 'logs', class: 'logs' }),
  );
  app.replaceChildren(el('div', { id: 'empty', class: 'empty' }, 'No run selected. Open a .qlora file and run QLoRA: Start Training.'), run, el('div', { id: 'health', class: 'health' }));

  $('stop').addEventListener('click', () => {
    if (model.runId) vscode.postMessage({ type: ToHost.stop, runId: model.runId });
  });
  $('resume').addEventListener('click', () => {
    if (model.runId) vscode.postMessage({ type: ToHost.resume, runId: model.runId });
  });
  $<HTMLInputElement>('smoothing').addEventListener('input', (e) => changeSettings({ smoothing: Number((e.target as HTMLInputElement).value) }));
  $<HTMLInputElement>('log-scale').addEventListener('change', (e) => changeSettings({ logLoss: (e.target as HTMLInputElement).checked }));
  $<HTMLSelectElement>('x-axis').addEventListener('change', (e) => changeSettings({ xAxis: (e.target as HTMLSelectElement).value === 'time' ? 'time' : 'step' }));
  $('reset-zoom').addEventListener('click', () => setZoom(null));
}

function buildCharts(): void {
  const host = $('charts');
  host.replaceChildren();
  for (const def of CHARTS) {
    const box = el('div', { id: `chart-${def.id}`, class: 'chart' });
    const head = el('div', { class: 'chart-head' });
    const buttons = el('span', { class: 'chart-actions' });
    const csv = el('button', { class: 'link', title: `Save the visible ${def.title.toLowerCase()} series as CSV`, 'data-export': 'csv' }, 'CSV');
    const png = el('button', { class: 'link', title: `Save the ${def.title.toLowerCase()} chart as PNG`, 'data-export': 'png' }, 'PNG');
    csv.addEventListener('click', () => exportChart(def.id, 'csv'));
    png.addEventListener('click', () => exportChart(def.id, 'png'));
    buttons.append(csv, png);
    head.append(el('span', { class: 'chart-title' }, def.title), buttons);
    box.append(head);
    host.append(box);
    const chart = new MetricChart(box, { onZoom: setZoom });
    chart.setWidth(host.clientWidth || 300);
    charts.set(def.id, chart);
  }
}

function changeSettings(change: Partial<ViewSettings>): void {
  const next = { ...settings, ...change };
  if (next.xAxis !== settings.xAxis) zoom = null; // a step range means nothing in seconds
  settings = next;
  vscode.postMessage({ type: ToHost.settings, settings });
  render();
  saveSoon();
}

function setZoom(range: [number, number] | null): void {
  zoom = range && range[1] > range[0] ? range : null;
  drawCharts();
}

/** The run's name as the Runs tree shows it, and its id (two runs of one config share a folder name). */
function legendName(run: RunSummary | null, id: string): string {
  return `${run ? runName(run) : 'run'} · ${id}`;
}

function shownRuns(): ShownRun[] {
  const out: ShownRun[] = [];
  if (model.runId) out.push({ id: model.runId, name: legendName(model.state.run, model.runId), state: model.state });
  for (const [id, m] of compared) if (id !== model.runId) out.push({ id, name: legendName(m.state.run, id), state: m.state });
  return out;
}

function drawCharts(): void {
  const runs = shownRuns();
  for (const def of CHARTS) {
    const build = buildChart(def, runs, settings);
    charts.get(def.id)!.update(build, { log: !!def.logToggle && settings.logLoss, xAxis: settings.xAxis, zoom });
  }
  const points = String(model.state.steps.length);
  const loss = $('chart-loss');
  if (loss.dataset.points !== points) loss.dataset.points = points;
}

/** What the legend shows, to rebuild it only when that changes. */
let legendKey = '';

function renderLegend(runs: ShownRun[]): void {
  const legend = $('legend');
  const key = JSON.stringify(runs.map((r) => [r.id, r.name, r.state.run?.configFile, r.state.state]));
  if (key === legendKey) return;
  legendKey = key;
  legend.replaceChildren(
    ...runs.map((r, i) => {
      const entry = el('span', { class: 'legend-entry', 'data-run': r.id, title: r.state.run?.configFile ?? r.id });
      const sw = el('span', { class: 'swatch' });
      sw.style.setProperty('--swatch', `var(${RUN_COLORS[i % RUN_COLORS.length]})`);
      entry.append(sw, el('span', { class: 'legend-name' }, r.name), el('span', { class: 'legend-state' }, r.state.state ?? ''));
      if (i > 0) {
        const x = el('button', { class: 'link', title: 'Stop comparing this run', 'aria-label': `Stop comparing ${r.name}` }, '×');
        x.addEventListener('click', () => vscode.postMessage({ type: ToHost.uncompare, runId: r.id }));
        entry.append(x);
      }
      return entry;
    }),
  );
  // One run needs no legend: the header names it.
  legend.hidden = runs.length < 2;
}

/** The stats row's keys (and titles) as built, and its value cells: a step updates the values in place. */
let statKeys = '';
let statValues: HTMLElement[] = [];

function renderStats(rows: [string, string, string?][]): void {
  const keys = JSON.stringify(rows.map(([k, , title]) => [k, title]));
  if (keys !== statKeys) {
    statKeys = keys;
    statValues = rows.map(() => el('span', { class: 'value' }));
    $('stats').replaceChildren(
      ...rows.map(([k, , title], i) => {
        const stat = el('span', { class: 'stat', ...(title ? { title } : {}) });
        stat.append(el('span', { class: 'key' }, k), statValues[i]);
        return stat;
      }),
    );
  }
  rows.forEach(([, v], i) => setText(statValues[i], v));
}

function render(): void {
  const s = model.state;
  $('empty').hidden = s.run !== null;
  $('run').hidden = s.run === null;
  const smoothing = $<HTMLInputElement>('smoothing');
  if (smoothing.value !== String(settings.smoothing)) smoothing.value = String(settings.smoothing);
  setText($('smoothing-value'), settings.smoothing.toFixed(2));
  const logScale = $<HTMLInputElement>('log-scale');
  if (logScale.checked !== settings.logLoss) logScale.checked = settings.logLoss;
  const xAxis = $<HTMLSelectElement>('x-axis');
  if (xAxis.value !== settings.xAxis) xAxis.value = settings.xAxis;
  if (!s.run) return;
  const name = s.run.configFile.split(/[\\/]/).pop() ?? s.run.id;
  setText($('run-name'), name);
  setAttr($('run-name'), 'title', `${s.run.configFile}\nrun ${s.run.id}\noutput ${s.run.outputDir}`);
  const state = s.state ?? s.run.state;
  setText($('state-badge'), state);
  setText($('meta'), [s.backend, s.device].filter(Boolean).join(' · '));

  const step = s.steps.at(-1) ?? s.run.step ?? 0;
  const total = s.totalSteps;
  showProgress(step, total);
  const elapsed = model.elapsedMs;
  const eta = model.etaMs;
  setText($('progress-text'), total
    ? [`step ${step} / ${total}`, elapsed !== null ? `elapsed ${formatDuration(elapsed)}` : '', eta !== null ? `ETA ${formatDuration(eta)}` : '']
        .filter(Boolean)
        .join(' · ')
    : state === 'queued' && s.run.queuePosition
      ? `queued, position ${s.run.queuePosition}`
      : '');
  const stop = $('stop') as HTMLElement & { disabled: boolean };
  const resume = $('resume') as HTMLElement & { disabled: boolean };
  const stopOff = !(state === 'training' || state === 'queued');
  const resumeOff = !RESUMABLE_STATES.includes(state);
  if (stop.disabled !== stopOff) stop.disabled = stopOff;
  if (resume.disabled !== resumeOff) resume.disabled = resumeOff;
  setText($('message'), s.message ?? '');
  if ($('message').classList.contains('error') !== (state === 'error')) $('message').classList.toggle('error', state === 'error');

  const last = (a: readonly (number | null)[]) => a.at(-1) ?? null;
  const rows: [string, string, string?][] = [];
  for (const m of METRICS) if ('stat' in m) rows.push([m.stat, last(s[m.key]) === null ? '–' : m.format(last(s[m.key])!)]);
  // Memory: what each figure measures, its peak, and the cost lens's estimate beside it.
  const tensors = METRICS.find((m) => m.key === 'memoryBytes')!;
  const peakTensors = model.peak('memoryBytes');
  rows.push([metricLabel(tensors, s.backend), peakTensors === null ? '–' : `${mib(last(s.memoryBytes)!)} (peak ${mib(peakTensors)})`, 'TensorFlow.js tf.memory().numBytes after each step']);
  const peakRss = model.peak('rssBytes');
  if (peakRss !== null) rows.push(['process RSS', `${mib(last(s.rssBytes) ?? peakRss)} (peak ${mib(peakRss)})`, 'resident set size of the training process']);
  const estimate = s.run.memoryEstimateBytes;
  rows.push(['lens estimate', estimate ? `≈ ${mib(estimate)} peak` : '–', 'the .qlora code lens’s peak-memory estimate for this config']);
  renderStats(rows);
  renderLegend(shownRuns());
  drawCharts();
  setText($('logs'), s.logs.join('\n'));
}

/** Live steps received and not drawn yet: reported once the frame that draws them has. */
interface Received { runId: string; step: number; time: number; arrived: number; sentAt: number | undefined; receivedAt: number | undefined }
let received: Received[] = [];
let frameQueued = false;

/** Draws at the next frame, once for every message that came before it. */
function renderSoon(): void {
  if (frameQueued) return;
  frameQueued = true;
  requestAnimationFrame(() => {
    frameQueued = false;
    render();
    // Drawn: the frame that shows these points is the one this callback is part of.
    const drawn = received;
    received = [];
    for (const r of drawn) reportDrawn(r);
  });
}

let saveTimer: ReturnType<typeof setTimeout> | undefined;
function saveSoon(): void {
  if (saveTimer) return;
  saveTimer = setTimeout(() => {
    saveTimer = undefined;
    saveNow();
  }, 200);
}
function saveNow(): void {
  vscode.setState({ ...model.toState(), settings });
}

function exportChart(id: ChartId, format: 'csv' | 'png'): void {
  const chart = charts.get(id)!;
  const def = CHARTS.find((c) => c.id === id)!;
  const base = `${model.runId ?? 'metrics'}-${id}`;
  if (format === 'csv') {
    const build = buildChart(def, shownRuns(), settings);
    vscode.postMessage({ type: ToHost.export, format, fileName: `${base}.csv`, data: chartCsv(build, zoom) });
  } else {
    const data = chart.png();
    if (data) vscode.postMessage({ type: ToHost.export, format, fileName: `${base}.png`, data });
  }
}

/** Notes the newest step of a message, to report its delay once it is drawn. */
function receivedStep(runId: string, records: RunRecord[], arrived: number, sentAt: number | undefined, receivedAt: number | undefined): void {
  const step = [...records].reverse().find((r) => r.type === 'step');
  if (!step || step.type !== 'step') return;
  if (arrived - step.time > 60_000) return; // a replayed record, not a live one
  received.push({ runId, step: step.step, time: step.time, arrived, sentAt, receivedAt });
  if (received.length > 100) received.shift(); // a page that draws no frames (hidden) keeps the newest
}

/** Delays not yet told to the extension, by run. */
const drawnToTell = new Map<string, { step: number; delayMs: number }[]>();
let drawnTimer: ReturnType<typeof setTimeout> | undefined;

/** How long ago the step's record was written, now that it is drawn. */
function reportDrawn(r: Received): void {
  const delayMs = Date.now() - r.time;
  if (delayMs > 60_000) return; // a replayed record, not a live one
  drawLog.push({
    runId: r.runId, step: r.step, delayMs, arrivedMs: r.arrived - r.time, hostMs: r.sentAt === undefined ? null : r.sentAt - r.time,
    hostReceivedMs: r.receivedAt === undefined ? null : r.receivedAt - r.time,
  });
  // Told to the extension once a second, not per step: each message costs the workbench a round trip.
  const batch = drawnToTell.get(r.runId) ?? [];
  batch.push({ step: r.step, delayMs });
  drawnToTell.set(r.runId, batch);
  drawnTimer ??= setTimeout(() => {
    drawnTimer = undefined;
    for (const [runId, steps] of drawnToTell) vscode.postMessage({ type: ToHost.drawn, runId, steps });
    drawnToTell.clear();
  }, 1000);
}

function onMessage(m: ToViewMessage): void {
  switch (m.type) {
    case ToView.select:
      if (model.select(m.run)) {
        zoom = null;
        received = received.filter((r) => r.runId === model.runId);
      }
      renderSoon();
      saveNow();
      break;
    case ToView.records:
      if (m.runId === model.runId) {
        const arrived = Date.now();
        model.apply(m.records);
        receivedStep(m.runId, m.records, arrived, m.sentAt, m.receivedAt);
        renderSoon();
        saveSoon();
      } else {
        const other = compared.get(m.runId);
        if (!other) return;
        other.apply(m.records);
        renderSoon();
      }
      break;
    case ToView.compare: {
      const ids = new Set(m.runs.map((r) => r.id));
      for (const id of [...compared.keys()]) if (!ids.has(id)) compared.delete(id);
      for (const r of m.runs) {
        const known = compared.get(r.id) ?? MetricsModel.empty();
        known.select(r);
        compared.set(r.id, known);
      }
      renderSoon();
      break;
    }
    case ToView.settings:
      settings = m.settings;
      renderSoon();
      saveSoon();
      break;
    case ToView.health:
      $('health').textContent = m.health === 'ready' ? '' : `Training server: ${m.health}. ${m.detail}`;
      break;
  }
}

buildPage();
buildCharts();
render();
window.addEventListener('message', (e: MessageEvent) => {
  if (isToViewMessage(e.data)) onMessage(e.data);
});
new ResizeObserver(() => {
  const w = $('charts').clientWidth;
  if (w > 0) for (const chart of charts.values()) chart.setWidth(w);
}).observe($('charts'));
// VS Code swaps the body's theme classes: redraw in the new colours.
new MutationObserver(() => charts.forEach((chart) => chart.retheme())).observe(document.body, { attributes: true, attributeFilter: ['class'] });
vscode.postMessage({ type: ToHost.ready, runId: model.runId, lastEventId: model.state.lastEventId });

