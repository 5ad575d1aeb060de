// metrics.jsonl on its own: a torn last line (a writer killed mid-line) is cut off,
// dropping the steps past a checkpoint keeps everything else and replaces the file
// whole, and a replay that races with new lines hands each record over exactly once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MetricsLog } from '../../server/http/metricsLog';
import type { RunEvent, RunRecord } from '../../server/protocol';

const step = (n: number): RunEvent => ({
  type: 'step', step: n, totalSteps: 10, epoch: 0, loss: 1 / n, lr: 1e-3, gradNorm: 1, tokensPerSec: 1,
  memoryBytes: 0, numTensors: 0, elapsedMs: 0, etaMs: 0,
});
const line = (id: number, e: RunEvent) => JSON.stringify({ ...e, id, time: 0 }) + '\n';

function withDir(fn: (dir: string) => Promise<void> | void) {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'qlora-metrics-'));
    try { await fn(dir); } finally { rmSync(dir, { recursive: true, force: true }); }
  };
}

test('load cuts a torn last line, and appends continue on a line of their own', withDir((dir) => {
  const file = join(dir, 'metrics.jsonl');
  writeFileSync(file, line(1, step(1)) + line(2, step(2)) + '{"type":"step","step":3,"lo');
  const log = new MetricsLog(file);
  assert.deepEqual(log.load().map((r) => r.id), [1, 2]);
  assert.equal(log.lastId, 2);
  const r = log.append({ type: 'state', state: 'interrupted', queuePosition: null });
  assert.equal(r.id, 3);
  assert.deepEqual(readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l).id), [1, 2, 3]);
}));

test('dropStepsAfter removes step, eval and checkpoint lines past the step, keeps the rest, leaves no temporary file', withDir((dir) => {
  const file = join(dir, 'metrics.jsonl');
  const events: RunEvent[] = [
    { type: 'state', state: 'training', queuePosition: null }, step(1), step(2),
    { type: 'checkpoint', step: 2, path: 'x' }, step(3), { type: 'eval', step: 3, evalLoss: 1, tokens: 1 },
    { type: 'log', level: 'info', message: 'hello' }, step(4), { type: 'checkpoint', step: 4, path: 'y' }, step(5),
  ];
  writeFileSync(file, events.map((e, i) => line(i + 1, e)).join(''));
  const log = new MetricsLog(file);
  log.load();
  assert.equal(log.dropStepsAfter(2), 5);
  const kept = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as RunRecord);
  assert.deepEqual(kept.map((r) => [r.id, r.type]), [[1, 'state'], [2, 'step'], [3, 'step'], [4, 'checkpoint'], [7, 'log']]);
  assert.deepEqual(readdirSync(dir), ['metrics.jsonl']);
  assert.equal(log.lastId, 10, 'ids of dropped lines are not handed out again');
  assert.equal(log.append(step(3)).id, 11);
  assert.equal(log.dropStepsAfter(3), 0, 'nothing to drop: the file is left alone');
}));

test('a replay racing with appends hands over every record once, in order', withDir(async (dir) => {
  const file = join(dir, 'metrics.jsonl');
  writeFileSync(file, Array.from({ length: 200 }, (_, i) => line(i + 1, step(i + 1))).join(''));
  const log = new MetricsLog(file);
  log.load();
  const live: number[] = [];
  const { history, flush, unsubscribe } = log.replayAndSubscribe(150, (r) => live.push(r.id));
  // Another process appends while the history is read; the server pumps.
  appendFileSync(file, line(201, step(201)) + line(202, step(202)));
  log.pump();
  assert.deepEqual(live, [], 'held back until the history is out');
  assert.deepEqual((await history).map((r) => r.id), Array.from({ length: 50 }, (_, i) => 151 + i));
  flush();
  appendFileSync(file, line(203, step(203)));
  log.pump();
  unsubscribe();
  assert.deepEqual(live, [201, 202, 203]);
}));
