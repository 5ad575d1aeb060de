// The ETA the Metrics view and the status bar show: a recent window of steps, eval time
// apart, checked against the true remaining time of a real recorded run (the end-to-end
// fixture trained for 60 steps by test/tools/recordRun.ts, on its CPU clock because the
// recording machine was shared: a first step several times slower than the rest, an eval
// every 10 steps, a checkpoint every 20), and against made-up runs whose answer is known
// exactly.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { RunRecord, RunSummary } from '../../server/protocol';
import { estimateRemainingMs } from '../../webview/eta';
import { MetricsModel } from '../../webview/model';

const recorded: RunRecord[] = readFileSync(join(__dirname, 'fixtures', 'recorded-run.jsonl'), 'utf8')
  .trim().split('\n').map((l) => JSON.parse(l) as RunRecord);

const summary: RunSummary = {
  id: 'rec', state: 'training', queuePosition: null, createdAt: '', updatedAt: '', configFile: '/w/train.qlora', baseDir: '/w',
  outputDir: '/w/runs/e2e', step: 0, totalSteps: null, loss: null, evalLoss: null, checkpointStep: null, adapter: null,
  backend: null, device: null, error: null, lastEventId: 0,
};

describe('ETA', () => {
  test('on a recorded run with a slow first step and periodic evals, within 20% of the true remaining time', (t) => {
    const steps = recorded.filter((r) => r.type === 'step');
    const total = steps[0].totalSteps;
    const end = recorded[recorded.length - 1].time; // the run's last record: its final eval and checkpoint are part of the time left
    const m = MetricsModel.empty();
    m.select(summary);
    const points: { step: number; eta: number; truth: number; trainer: number }[] = [];
    for (const r of recorded) {
      m.apply([r]);
      // From the first eval to 10 steps before the end (after that a few seconds are left and noise is the whole figure).
      if (r.type !== 'step' || r.step < 10 || r.step > total - 10) continue;
      points.push({ step: r.step, eta: m.etaMs!, truth: end - r.time, trainer: r.etaMs });
    }
    assert.ok(points.length >= 40, `${points.length} points checked`);
    const rel = (a: number, b: number) => Math.abs(a - b) / b;
    const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
    const errors = points.map((p) => rel(p.eta, p.truth)).sort((a, b) => a - b);
    const trainerErrors = points.map((p) => rel(p.trainer, p.truth)).sort((a, b) => a - b);
    const median = (xs: number[]) => xs[xs.length >> 1];
    t.diagnostic(`windowed ETA: median ${pct(median(errors))}, worst ${pct(errors.at(-1)!)} off; ` +
      `the trainer's mean since the start: median ${pct(median(trainerErrors))}, worst ${pct(trainerErrors.at(-1)!)}`);
    // At each evaluation (every 10 steps), the points a person reads it at after the numbers change most.
    for (const p of points.filter((x) => x.step % 10 === 0)) {
      assert.ok(rel(p.eta, p.truth) < 0.2, `step ${p.step}: ETA ${(p.eta / 1000).toFixed(1)} s vs ${(p.truth / 1000).toFixed(1)} s left`);
    }
    assert.ok(median(errors) < 0.2, `median error ${pct(median(errors))}`);
    // What this replaces: the slow first step skews the mean since the start for much of a short run.
    assert.ok(median(errors) < median(trainerErrors), 'the windowed ETA beats the mean since the start');
    const first = points[0];
    assert.ok(rel(first.trainer, first.truth) > 2 * rel(first.eta, first.truth), 'and by more than 2x at the first eval');
  });

  test('excludes eval time from the step rate and adds the evals still to come', () => {
    // 1 s steps, a 5 s eval after every 10th step; 20 of 100 steps done.
    const steps: number[] = [];
    const elapsed: number[] = [];
    let t = 3000; // a 3 s first step
    for (let s = 1; s <= 20; s++) {
      if (s > 1) t += 1000;
      if (s === 11) t += 5000; // the eval after step 10 ran before step 11
      steps.push(s);
      elapsed.push(t);
    }
    const eta = estimateRemainingMs({ steps, elapsedMs: elapsed, evalSteps: [10, 20], evalMs: [5000, 5000], totalSteps: 100 });
    // 80 steps at 1 s, and evals at 30, 40, ..., 100: 8 x 5 s.
    assert.equal(eta, 80_000 + 8 * 5000);
  });

  test('a resume restarts the trainer clock: the window stops there', () => {
    const eta = estimateRemainingMs({ steps: [1, 2, 3, 4, 5], elapsedMs: [100, 200, 300, 10_050, 10_100], evalSteps: [], evalMs: [], totalSteps: 10 });
    // The model adds the time before the resume, so a step whose elapsed goes down never occurs there;
    // a raw clock reset (elapsed going down) ends the window.
    assert.equal(estimateRemainingMs({ steps: [1, 2, 3], elapsedMs: [5000, 100, 150], evalSteps: [], evalMs: [], totalSteps: 10 }), 50 * 7);
    assert.ok(eta! > 0);
  });

  test('nothing to go on: null; finished: 0', () => {
    assert.equal(estimateRemainingMs({ steps: [], elapsedMs: [], evalSteps: [], evalMs: [], totalSteps: 10 }), null);
    assert.equal(estimateRemainingMs({ steps: [1], elapsedMs: [900], evalSteps: [], evalMs: [], totalSteps: 10 }), null);
    assert.equal(estimateRemainingMs({ steps: [9, 10], elapsedMs: [900, 1000], evalSteps: [], evalMs: [], totalSteps: 10 }), 0);
    assert.equal(estimateRemainingMs({ steps: [1, 2], elapsedMs: [900, 1000], evalSteps: [], evalMs: [], totalSteps: null }), null);
  });
});
