// The Metrics view's model: records in, curves out, and a state that survives
// setState/getState (a hidden-and-shown view, a reloaded window) without losing or
// repeating a point.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { buildChart, chartCsv, chartDef, DEFAULT_SETTINGS, type ShownRun } from '../../webview/chartData';
import { CHARTS, METRICS } from '../../webview/metrics';
import { emptyState, MetricsModel } from '../../webview/model';
import type { RunRecord, RunSummary } from '../../server/protocol';

const run = (id = 'r1', over: Partial<RunSummary> = {}): RunSummary => ({
  id, state: 'queued', queuePosition: 1, createdAt: '2026-01-01T00:00:00Z', updatedAt: '2026-01-01T00:00:00Z',
  configFile: '/w/train.qlora', baseDir: '/w', outputDir: '/w/runs/a', step: 0, totalSteps: null, loss: null, evalLoss: null,
  checkpointStep: null, adapter: null, backend: null, device: null, error: null, lastEventId: 0, ...over,
});

/** A run's history as the server records it: start, steps, evals every 5, a checkpoint every 10. */
function history(steps: number, firstId = 1, firstStep = 1): RunRecord[] {
  let id = firstId;
  const out: RunRecord[] = [
    { type: 'state', state: 'training', queuePosition: null, id: id++, time: 0 },
    { type: 'start', backend: 'wasm', device: 'wasm, SIMD', totalSteps: 100, startStep: firstStep - 1, trainableParams: 10, totalParams: 100,
      trainExamples: 9, validationExamples: 1, truncatedExamples: 0, droppedExamples: 0, id: id++, time: 0 },
  ];
  for (let s = firstStep; s < firstStep + steps; s++) {
    out.push({ type: 'step', step: s, totalSteps: 100, epoch: 0, loss: 5 / s, lr: 1e-3, gradNorm: 1 + s / 100, tokensPerSec: 1000 + s,
      memoryBytes: 1e6 + s, numTensors: 50, elapsedMs: s * 100, etaMs: (100 - s) * 100, id: id++, time: 0 });
    if (s % 5 === 0) out.push({ type: 'eval', step: s, evalLoss: 6 / s, tokens: 100, id: id++, time: 0 });
    if (s % 10 === 0) out.push({ type: 'checkpoint', step: s, path: `/w/runs/a/checkpoints/step-${s}`, id: id++, time: 0 });
  }
  return out;
}

/** What getState() hands a new page: structured-cloned JSON. */
const roundTrip = (m: MetricsModel) => MetricsModel.restore(JSON.parse(JSON.stringify(m.toState())));

describe('metrics view state', () => {
  test('records become aligned series', () => {
    const m = MetricsModel.empty();
    assert.equal(m.select(run()), true);
    m.apply(history(12));
    const s = m.state;
    assert.deepEqual(s.steps, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    assert.equal(s.loss.length, 12);
    assert.deepEqual(s.evalSteps, [5, 10]);
    assert.equal(s.totalSteps, 100);
    assert.equal(s.state, 'training');
    assert.equal(s.backend, 'wasm');
    const loss = buildChart(chartDef('loss'), [{ id: 'r1', name: 'train.qlora · r1', state: s }], { ...DEFAULT_SETTINGS, smoothing: 0 });
    assert.deepEqual(loss.x, s.steps);
    assert.deepEqual(loss.lines.map((l) => l.label), ['train', 'eval']);
    assert.deepEqual(loss.ys[1].filter((v) => v !== null), [6 / 5, 6 / 10]);
    assert.equal(loss.ys[0][0], 5);
  });

  test('restores exactly what it saved, and asks only for what came after', () => {
    const all = history(30);
    const m = MetricsModel.empty();
    m.select(run());
    m.apply(all.slice(0, 20));
    const restored = roundTrip(m);
    assert.deepEqual(restored.toState(), m.toState());
    assert.equal(restored.runId, 'r1');
    // The page sends this as Last-Event-ID; the server replays the rest.
    const last = restored.state.lastEventId!;
    assert.equal(last, all[19].id);
    restored.apply(all.filter((r) => r.id > last));
    const whole = MetricsModel.empty();
    whole.select(run());
    whole.apply(all);
    assert.deepEqual(restored.toState(), whole.toState());
  });

  test('a replay overlapping what the page holds adds nothing twice', () => {
    const all = history(15);
    const m = MetricsModel.empty();
    m.select(run());
    m.apply(all.slice(0, 10));
    m.apply(all); // the whole history again (a page that lost its id, a reconnect from 0)
    const once = MetricsModel.empty();
    once.select(run());
    once.apply(all);
    assert.deepEqual(m.toState(), once.toState());
  });

  test('selecting the same run keeps the curves; another run starts over', () => {
    const m = MetricsModel.empty();
    m.select(run());
    m.apply(history(5));
    assert.equal(m.select(run('r1', { state: 'training', lastEventId: 99 })), false);
    assert.equal(m.state.steps.length, 5);
    assert.equal(m.select(run('r2')), true);
    assert.deepEqual(m.toState(), emptyState(run('r2')));
    assert.equal(m.select(null), true);
    assert.equal(m.runId, null);
  });

  test('a resumed run replaces the steps after its checkpoint', () => {
    const m = MetricsModel.empty();
    m.select(run());
    const first = history(14); // steps 1-14, checkpoint at 10, eval at 5 and 10
    m.apply(first);
    m.apply([{ type: 'state', state: 'interrupted', queuePosition: null, id: 100, time: 0 }]);
    assert.equal(m.state.state, 'interrupted');
    // Resumed from step-10: steps 11 onwards come again with new ids.
    m.apply(history(3, 101, 11));
    assert.deepEqual(m.state.steps, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
    assert.equal(m.state.loss.length, 13);
    assert.deepEqual(m.state.evalSteps, [5, 10]);
    assert.equal(m.state.state, 'training');
  });

  test('done, stopped and error end the ETA', () => {
    const m = MetricsModel.empty();
    m.select(run());
    m.apply(history(3));
    assert.notEqual(m.etaMs, null);
    m.apply([{ type: 'done', step: 3, adapter: '/w/runs/a/adapter', stopped: true, id: 50, time: 0 }]);
    assert.equal(m.state.state, 'stopped');
    assert.equal(m.etaMs, null);
    m.apply([{ type: 'error', step: 3, message: 'out of memory', id: 51, time: 0 }]);
    assert.equal(m.state.state, 'error');
    assert.equal(m.state.message, 'out of memory');
  });

  test('logs keep the newest 20 lines', () => {
    const m = MetricsModel.empty();
    m.select(run());
    m.apply(Array.from({ length: 30 }, (_, i): RunRecord => ({ type: 'log', level: 'info', message: `line ${i}`, id: i + 1, time: 0 })));
    assert.equal(m.state.logs.length, 20);
    assert.equal(m.state.logs.at(-1), 'info: line 29');
  });

  test('unreadable or foreign saved state starts empty', () => {
    const m = MetricsModel.empty();
    m.select(run());
    m.apply(history(4));
    const good = JSON.parse(JSON.stringify(m.toState()));
    const bad: unknown[] = [
      undefined, null, 42, 'state', {},
      { ...good, v: 1 },
      { ...good, steps: [1, 2] }, // series of different lengths
      { ...good, loss: good.loss.map(String) },
      { ...good, run: { state: 'x' } },
      { ...good, evalLoss: [1] }, // eval series of different lengths
      { ...good, lastEventId: '9' },
    ];
    for (const b of bad) assert.deepEqual(MetricsModel.restore(b).toState(), emptyState(), JSON.stringify(b)?.slice(0, 80));
  });

  test('elapsed time runs on across a resume; eval durations come from record times; peaks', () => {
    const m = MetricsModel.empty();
    m.select(run());
    const first = history(14).map((r) => ({ ...r, time: 1000 + r.id * 10 }));
    m.apply(first);
    assert.equal(m.elapsedMs, 1400);
    // The eval after step 10 was written 10 ms after its step's record.
    assert.deepEqual(m.state.evalMs, [10, 10]);
    m.apply(history(3, 101, 11)); // resumed from step-10: the trainer's clock starts again
    assert.equal(m.elapsedMs, 1000 + 1300, 'elapsed at step 10, then 13 x 100 ms of the resumed process');
    assert.equal(m.peak('memoryBytes'), 1e6 + 13);
    assert.equal(m.peak('rssBytes'), null, 'no RSS in these records');
  });

  test('the table drives every chart: smoothing draws raw faint behind smoothed; eval as markers', () => {
    const m = MetricsModel.empty();
    m.select(run());
    m.apply(history(20));
    const shown: ShownRun[] = [{ id: 'r1', name: 'train.qlora · r1', state: m.state }];
    const loss = buildChart(chartDef('loss'), shown, { ...DEFAULT_SETTINGS, smoothing: 0.9 });
    assert.deepEqual(loss.lines.map((l) => [l.label, l.faint, l.points]), [['train (raw)', true, false], ['train', false, false], ['eval', false, true]]);
    assert.notDeepEqual(loss.ys[1], loss.ys[0]);
    assert.equal(loss.ys[1][0], loss.ys[0][0], 'debiased: the first smoothed point is the first value');
    // Every table row lands on its chart; a series this run never reported is left out.
    for (const c of CHARTS) {
      const b = buildChart(c, shown, { ...DEFAULT_SETTINGS, smoothing: 0 });
      const expected = METRICS.filter((x) => x.chart === c.id && x.key !== 'rssBytes').map((x) => x.key);
      assert.deepEqual(b.lines.map((l) => l.metric), expected, c.id);
    }
  });

  test('x by elapsed time, several runs with their names, an empty chart, the visible CSV', () => {
    const a = MetricsModel.empty();
    a.select(run('r1'));
    a.apply(history(10));
    const b = MetricsModel.empty();
    b.select(run('r2', { configFile: '/w/b.qlora' }));
    b.apply(history(5));
    const shown: ShownRun[] = [
      { id: 'r1', name: 'train.qlora · r1', state: a.state },
      { id: 'r2', name: 'b.qlora · r2', state: b.state },
    ];
    const byTime = buildChart(chartDef('loss'), shown, { smoothing: 0, logLoss: false, xAxis: 'time' });
    assert.equal(byTime.xLabel, 'elapsed time');
    assert.deepEqual(byTime.x, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1].map((x) => Number(x.toFixed(1))));
    assert.deepEqual(byTime.lines.map((l) => l.label), ['train · train.qlora · r1', 'eval · train.qlora · r1', 'train · b.qlora · r2', 'eval · b.qlora · r2']);
    assert.notEqual(byTime.lines[0].colorVar, byTime.lines[2].colorVar);
    const empty = buildChart(chartDef('lr'), [{ id: 'r3', name: 'x', state: emptyState(run('r3')) }], DEFAULT_SETTINGS);
    assert.equal(empty.points, 0);
    assert.deepEqual(empty.x, []);
    const csv = chartCsv(buildChart(chartDef('loss'), shown.slice(0, 1), { ...DEFAULT_SETTINGS, smoothing: 0 }), [3, 5]);
    assert.equal(csv, `step,train,eval\n3,${5 / 3},\n4,${5 / 4},\n5,1,${6 / 5}\n`);
  });
});
