// server/protocol.ts's shared pieces: the route patterns the server mounts equal the paths
// clients build, the one summary update, and the runtime check every SSE record passes
// before the extension or the webview uses it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyRecord, parseRunRecord, ROUTE_PATTERNS, Routes, type RunProgress } from '../../server/protocol';

test('route patterns match the paths clients build', () => {
  for (const [name, pattern] of Object.entries(ROUTE_PATTERNS)) {
    const route = Routes[name as keyof typeof Routes];
    const path = typeof route === 'function' ? route('run-1') : route;
    const re = new RegExp(`^${pattern.replace(':id', '[^/]+')}$`);
    assert.match(path, re, name);
  }
  assert.equal(ROUTE_PATTERNS.events, '/v1/runs/:id/events');
});

test('applyRecord moves a summary forward as the records say', () => {
  const p: RunProgress = { step: 0, totalSteps: null, loss: null, evalLoss: null, checkpointStep: null, adapter: null, backend: null, device: null };
  applyRecord(p, { type: 'start', backend: 'wasm', device: 'd', totalSteps: 10, startStep: 0, trainableParams: 1, totalParams: 2, trainExamples: 3, validationExamples: 0, truncatedExamples: 0, droppedExamples: 0 });
  applyRecord(p, { type: 'step', step: 3, totalSteps: 10, epoch: 0, loss: 1.5, lr: 1e-3, gradNorm: 1, tokensPerSec: 5, memoryBytes: 0, numTensors: 0, elapsedMs: 1, etaMs: 2 });
  applyRecord(p, { type: 'eval', step: 3, evalLoss: 1.7, tokens: 9 });
  applyRecord(p, { type: 'checkpoint', step: 3, path: '/c' });
  assert.deepEqual(p, { step: 3, totalSteps: 10, loss: 1.5, evalLoss: 1.7, checkpointStep: 3, adapter: null, backend: 'wasm', device: 'd' });
});

test('parseRunRecord refuses what is not a record, naming the field', () => {
  const ok = parseRunRecord(JSON.stringify({ id: 4, time: 1, type: 'eval', step: 2, evalLoss: 1.25, tokens: 10 }));
  assert.ok(ok.ok && ok.record.type === 'eval');
  assert.ok(parseRunRecord(JSON.stringify({ type: 'state', state: 'stopping', queuePosition: null })).ok, 'a transient state notice has no id');
  const cases: Array<[unknown, RegExp]> = [
    ['{not json', /not JSON/],
    [[1, 2], /not an object/],
    [{ id: 1, time: 1, type: 'teleport' }, /unknown record type "teleport"/],
    [{ id: 1, time: 1, type: 'step', step: '3', totalSteps: 10, loss: 1, lr: 1, gradNorm: 1, tokensPerSec: 1, elapsedMs: 1, etaMs: 1 }, /step record: step is "3"/],
    [{ id: 1, time: 1, type: 'state', state: 'flying' }, /state record: state is "flying"/],
    [{ type: 'eval', step: 1, evalLoss: 2 }, /without a numeric id/],
  ];
  for (const [input, why] of cases) {
    const r = parseRunRecord(typeof input === 'string' ? input : JSON.stringify(input));
    assert.ok(!r.ok, JSON.stringify(input));
    assert.match(r.why, why);
  }
  const diverged = parseRunRecord(JSON.stringify({ id: 2, time: 1, type: 'step', step: 1, totalSteps: 1, loss: NaN, lr: 1, gradNorm: Infinity, tokensPerSec: 1, elapsedMs: 1, etaMs: 1 }));
  assert.ok(diverged.ok, 'NaN and Infinity arrive as null');
});
