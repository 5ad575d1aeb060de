// The extension <-> webview message protocol (guards and the ready handshake) and the
// Server-Sent Events parser the run stream reads the server with.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SseParser, type SseEvent } from '../../extension/sse';
import { isToHostMessage, isToViewMessage, ReadyQueue, ToHost, ToView, type ToViewMessage } from '../../webview/protocol';
import type { RunRecord, RunSummary } from '../../server/protocol';

const run: RunSummary = {
  id: 'r1', state: 'training', queuePosition: null, createdAt: '2026-01-01T00:00:00Z', updatedAt: '2026-01-01T00:00:00Z',
  configFile: '/w/train.qlora', baseDir: '/w', outputDir: '/w/runs/a', step: 3, totalSteps: 10, loss: 2, evalLoss: null,
  checkpointStep: null, adapter: null, backend: 'wasm', device: 'wasm', error: null, lastEventId: 7,
};
const step: RunRecord = {
  type: 'step', step: 1, totalSteps: 10, epoch: 0, loss: 3, lr: 1e-3, gradNorm: 1, tokensPerSec: 100, memoryBytes: 1e6,
  numTensors: 10, elapsedMs: 100, etaMs: 900, id: 5, time: 1,
};

describe('webview message protocol', () => {
  test('accepts every well-formed message to the view', () => {
    const good: unknown[] = [
      { type: ToView.select, run },
      { type: ToView.select, run: null },
      { type: ToView.records, runId: 'r1', records: [step] },
      { type: ToView.records, runId: 'r1', records: [] },
      { type: ToView.records, runId: 'r1', records: [step], receivedAt: 1000, sentAt: 1002 },
      { type: ToView.health, health: 'ready', detail: 'listening' },
      { type: ToView.compare, runs: [run] },
      { type: ToView.compare, runs: [] },
      { type: ToView.settings, settings: { smoothing: 0.6, logLoss: true, xAxis: 'time' } },
    ];
    for (const m of good) assert.ok(isToViewMessage(m), JSON.stringify(m));
  });

  test('refuses malformed messages to the view', () => {
    const bad: unknown[] = [
      null, 'run/select', [], {}, { type: 'run/unknown' },
      { type: ToView.select }, { type: ToView.select, run: { state: 'training' } },
      { type: ToView.records, runId: 1, records: [] }, { type: ToView.records, runId: 'r1', records: [{ type: 'step' }] },
      { type: ToView.records, runId: 'r1', records: 'x' },
      { type: ToView.records, runId: 'r1', records: [step], sentAt: '1002' }, { type: ToView.records, runId: 'r1', records: [step], receivedAt: null },
      { type: ToView.health, health: 'sleepy', detail: '' }, { type: ToView.health, health: 'ready' },
      { type: ToView.compare, runs: [{ id: 1 }] }, { type: ToView.settings, settings: { smoothing: 1, logLoss: false, xAxis: 'step' } },
      { type: ToView.settings, settings: { smoothing: 0.5, logLoss: false, xAxis: 'epoch' } },
      // A message meant for the other direction.
      { type: ToHost.ready, runId: null, lastEventId: null },
    ];
    for (const m of bad) assert.ok(!isToViewMessage(m), JSON.stringify(m));
  });

  test('accepts and refuses messages to the extension', () => {
    const good: unknown[] = [
      { type: ToHost.ready, runId: null, lastEventId: null },
      { type: ToHost.ready, runId: 'r1', lastEventId: 12 },
      { type: ToHost.stop, runId: 'r1' },
      { type: ToHost.resume, runId: 'r1' },
      { type: ToHost.drawn, runId: 'r1', steps: [{ step: 3, delayMs: 12.5 }, { step: 4, delayMs: 9 }] },
      { type: ToHost.settings, settings: { smoothing: 0, logLoss: false, xAxis: 'step' } },
      { type: ToHost.export, format: 'csv', fileName: 'r1-loss.csv', data: 'step,train\n1,3\n' },
      { type: ToHost.uncompare, runId: 'r2' },
    ];
    for (const m of good) assert.ok(isToHostMessage(m), JSON.stringify(m));
    const bad: unknown[] = [
      undefined, { type: ToHost.ready }, { type: ToHost.ready, runId: 'r1', lastEventId: '12' },
      { type: ToHost.stop }, { type: ToHost.resume, runId: 3 }, { type: ToHost.drawn, runId: 'r1', steps: [{ step: 3, delayMs: Infinity }] },
      { type: ToHost.drawn, runId: 'r1', step: 3, delayMs: 12.5 },
      { type: ToHost.export, format: 'svg', fileName: 'x.svg', data: '' }, { type: ToHost.settings, settings: null },
      { type: ToView.select, run: null },
    ];
    for (const m of bad) assert.ok(!isToHostMessage(m), JSON.stringify(m));
  });

  test('method names are area/verb and unique', () => {
    const names = [...Object.values(ToView), ...Object.values(ToHost)];
    for (const n of names) assert.match(n, /^[a-z]+\/[a-z]+$/);
    assert.equal(new Set(names).size, names.length);
  });

  test('ready handshake: messages wait for the page, in order, and a reloaded page starts over', () => {
    const sent: ToViewMessage[] = [];
    const q = new ReadyQueue<ToViewMessage>((m) => sent.push(m));
    const a: ToViewMessage = { type: ToView.select, run };
    const b: ToViewMessage = { type: ToView.records, runId: 'r1', records: [step] };
    q.post(a);
    q.post(b);
    assert.deepEqual(sent, []);
    q.markReady();
    assert.deepEqual(sent, [a, b]);
    q.post(a);
    assert.equal(sent.length, 3);
    q.reset();
    q.post(b);
    assert.equal(sent.length, 3, 'queued while the page reloads');
    q.reset();
    q.markReady();
    assert.equal(sent.length, 3, 'what was queued for a page that went away is dropped');
  });
});

describe('SSE parser', () => {
  const parse = (chunks: (string | Uint8Array)[]) => {
    const events: SseEvent[] = [];
    const p = new SseParser((e) => events.push(e));
    for (const c of chunks) p.push(c);
    return { events, p };
  };

  test('events with id, type and data; comments ignored', () => {
    const { events, p } = parse([': keep-alive\n\nid: 1\nevent: metrics\ndata: {"a":1}\n\nid: 2\nevent: state\ndata: {"b":2}\n\n']);
    assert.deepEqual(events, [
      { id: '1', event: 'metrics', data: '{"a":1}' },
      { id: '2', event: 'state', data: '{"b":2}' },
    ]);
    assert.equal(p.lastEventId, '2');
  });

  test('any chunking gives the same events, CRLF and CR included', () => {
    const text = 'id: 7\r\nevent: log\r\ndata: line one\r\ndata: line two\r\n\r\nid: 8\rdata:no space\r\r\n';
    const whole = parse([text]).events;
    assert.deepEqual(whole, [
      { id: '7', event: 'log', data: 'line one\nline two' },
      { id: '8', event: 'message', data: 'no space' },
    ]);
    for (let cut = 1; cut < text.length; cut++) {
      assert.deepEqual(parse([text.slice(0, cut), text.slice(cut)]).events, whole, `cut at ${cut}`);
    }
    // Byte by byte, with a multi-byte character split across chunks.
    const bytes = new TextEncoder().encode('data: héllo 😀\n\n');
    assert.deepEqual(parse([...bytes].map((b) => new Uint8Array([b]))).events, [{ id: '', event: 'message', data: 'héllo 😀' }]);
  });

  test('an unterminated event is held back', () => {
    const { events } = parse(['id: 1\ndata: partial']);
    assert.deepEqual(events, []);
  });
});
