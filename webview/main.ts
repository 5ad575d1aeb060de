// The Metrics view's page: restores what it drew before from getState, says `view/ready`
// with the newest record id it holds, then applies the records the extension streams
// (a replay of what it missed, then the live tail) and redraws.
import '@vscode-elements/elements/dist/vscode-badge/index.js';
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-progress-bar/index.js';
import 'uplot/dist/uPlot.min.css';
import './styles.css';
import { RESUMABLE_STATES, type RunRecord } from '../server/protocol';
import { compact, MetricChart, type ChartData, type ChartSpec } from './charts';
import { MetricsModel } from './model';
import { isToViewMessage, ToHost, ToView, type ToHostMessage, type ToViewMessage } from './protocol';

interface VsCodeApi {
  postMessage(message: ToHostMessage): void;
  getState(): unknown;
  setState(state: unknown): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

const vscode = acquireVsCodeApi();
const model = MetricsModel.restore(vscode.getState());
/** Live steps drawn and how long after their record was written, and anything the CSP blocked: read by the end-to-end test. */
const drawLog: { step: number; delayMs: number }[] = [];
const cspViolations: string[] = [];
document.addEventListener('securitypolicyviolation', (e) => cspViolations.push(`${e.effectiveDirective}: ${e.blockedURI || 'inline'}`));
(window as unknown as { qloraMetrics: unknown }).qloraMetrics = { model, drawLog, cspViolations };

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

function el(tag: string, attrs: Record<string, string> = {}, text?: string): HTMLElement {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function buildPage(): void {
  const app = $('app');
  app.replaceChildren(
    el('div', { id: 'empty', class: 'empty' }, 'No run selected. Open a .qlora file and run QLoRA: Start Training.'),
    (() => {
      const run = el('div', { id: 'run' });
      const header = el('div', { class: 'header' });
      header.append(el('span', { id: 'run-name', class: 'run-name' }), el('vscode-badge', { id: 'state-badge', variant: 'counter' }));
      const actions = el('div', { class: 'actions' });
      actions.append(
        el('vscode-button', { id: 'stop', secondary: '', 'aria-label': 'Stop the run' }, 'Stop'),
        el('vscode-button', { id: 'resume', 'aria-label': 'Resume the run' }, 'Resume'),
      );
      run.append(
        header,
        el('div', { id: 'meta', class: 'meta' }),
        el('vscode-progress-bar', { id: 'progress', max: '1', value: '0' }),
        el('div', { id: 'progress-text', class: 'meta' }),
        actions,
        el('div', { id: 'message', class: 'message' }),
        el('div', { id: 'stats', class: 'stats' }),
        el('div', { id: 'charts', class: 'charts' }),
        el('pre', { id: 'logs', class: 'logs' }),
      );
      return run;
    })(),
    el('div', { id: 'health', class: 'health' }),
  );
  $('stop').addEventListener('click', () => {
    if (model.runId) vscode.postMessage({ type: ToHost.stop, runId: model.runId });
  });
  $('resume').addEventListener('click', () => {
    if (model.runId) vscode.postMessage({ type: ToHost.resume, runId: model.runId });
  });
}

const mb = (v: number) => `${compact(v / 2 ** 20)} MiB`;
const chartSpecs: { id: string; spec: ChartSpec; data: () => ChartData }[] = [
  {
    id: 'loss',
    spec: {
      title: 'Loss',
      height: 180,
      series: [
        { label: 'train', colorVar: '--vscode-charts-blue' },
        { label: 'eval', colorVar: '--vscode-charts-orange', spanGaps: true, points: true },
      ],
    },
    data: () => model.lossSeries(),
  },
  { id: 'lr', spec: { title: 'Learning rate', height: 100, series: [{ label: 'lr', colorVar: '--vscode-charts-green' }] }, data: () => [model.state.steps, model.state.lr] },
  { id: 'grad', spec: { title: 'Gradient norm', height: 100, series: [{ label: 'norm', colorVar: '--vscode-charts-purple' }] }, data: () => [model.state.steps, model.state.gradNorm] },
  { id: 'tps', spec: { title: 'Tokens/s', height: 100, series: [{ label: 'tok/s', colorVar: '--vscode-charts-yellow' }] }, data: () => [model.state.steps, model.state.tokensPerSec] },
  {
    id: 'mem',
    spec: { title: 'Memory (TensorFlow.js)', height: 100, formatY: mb, series: [{ label: 'held', colorVar: '--vscode-charts-red', format: mb }] },
    data: () => [model.state.steps, model.state.memoryBytes],
  },
];
let charts: { chart: MetricChart; data: () => ChartData }[] = [];

function buildCharts(): void {
  const host = $('charts');
  host.replaceChildren();
  charts = chartSpecs.map(({ id, spec, data }) => {
    const box = el('div', { id: `chart-${id}`, class: 'chart' });
    host.append(box);
    const chart = new MetricChart(box, spec);
    chart.setWidth(host.clientWidth || 300);
    return { chart, data };
  });
}

function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

function render(): void {
  const s = model.state;
  $('empty').hidden = s.run !== null;
  $('run').hidden = s.run === null;
  if (!s.run) return;
  const name = s.run.configFile.split(/[\\/]/).pop() ?? s.run.id;
  $('run-name').textContent = name;
  $('run-name').title = `${s.run.configFile}\nrun ${s.run.id}\noutput ${s.run.outputDir}`;
  const state = s.state ?? s.run.state;
  $('state-badge').textContent = state;
  $('meta').textContent = [s.backend, s.device].filter(Boolean).join(' · ');

  const step = s.steps.at(-1) ?? s.run.step ?? 0;
  const total = s.totalSteps;
  const progress = $('progress') as HTMLElement & { value: number; max: number; indeterminate: boolean };
  progress.max = total ?? 1;
  progress.value = total ? step : 0;
  progress.indeterminate = !total && state === 'training';
  $('progress-text').textContent = total
    ? `step ${step} / ${total}${s.etaMs !== null && state === 'training' ? ` · ETA ${formatDuration(s.etaMs)}` : ''}`
    : state === 'queued' && s.run.queuePosition
      ? `queued, position ${s.run.queuePosition}`
      : '';
  ($('stop') as HTMLElement & { disabled: boolean }).disabled = !(state === 'training' || state === 'queued');
  ($('resume') as HTMLElement & { disabled: boolean }).disabled = !RESUMABLE_STATES.includes(state);
  $('message').textContent = s.message ?? '';
  $('message').classList.toggle('error', state === 'error');

  const last = (a: number[]) => (a.length ? a[a.length - 1] : undefined);
  const rows: [string, string][] = [
    ['loss', fmt(last(s.loss))],
    ['eval loss', fmt(last(s.evalLoss))],
    ['lr', fmt(last(s.lr))],
    ['grad norm', fmt(last(s.gradNorm))],
    ['tok/s', fmt(last(s.tokensPerSec))],
    ['memory', last(s.memoryBytes) === undefined ? '–' : mb(last(s.memoryBytes)!)],
  ];
  $('stats').replaceChildren(...rows.flatMap(([k, v]) => [el('span', { class: 'key' }, k), el('span', { class: 'value' }, v)]));
  for (const { chart, data } of charts) chart.setData(data());
  $('chart-loss').dataset.points = String(s.steps.length);
  $('logs').textContent = s.logs.join('\n');
}

function fmt(v: number | undefined): string {
  return v === undefined ? '–' : compact(v);
}

let saveTimer: ReturnType<typeof setTimeout> | undefined;
function saveSoon(): void {
  if (saveTimer) return;
  saveTimer = setTimeout(() => {
    saveTimer = undefined;
    vscode.setState(model.toState());
  }, 200);
}

/** After the frame that shows them, reports how long ago the newest live step's record was written. */
function reportDrawn(runId: string, records: RunRecord[]): void {
  const step = [...records].reverse().find((r) => r.type === 'step');
  if (!step || step.type !== 'step') return;
  requestAnimationFrame(() => {
    const delayMs = Date.now() - step.time;
    if (delayMs > 60_000) return; // a replayed record, not a live one
    drawLog.push({ step: step.step, delayMs });
    vscode.postMessage({ type: ToHost.drawn, runId, step: step.step, delayMs });
  });
}

function onMessage(m: ToViewMessage): void {
  switch (m.type) {
    case ToView.select:
      model.select(m.run);
      render();
      vscode.setState(model.toState());
      break;
    case ToView.records:
      if (m.runId !== model.runId) return;
      model.apply(m.records);
      render();
      reportDrawn(m.runId, m.records);
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
  if (w > 0) for (const { chart } of charts) chart.setWidth(w);
}).observe($('charts'));
// VS Code swaps the body's theme classes: redraw in the new colours.
new MutationObserver(() => charts.forEach(({ chart }) => chart.retheme())).observe(document.body, { attributes: true, attributeFilter: ['class'] });
vscode.postMessage({ type: ToHost.ready, runId: model.runId, lastEventId: model.state.lastEventId });
