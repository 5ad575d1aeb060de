// The run stream against a scripted SSE server: each reconnection sends the last id it
// delivered as Last-Event-ID, overlapping replays are dropped, transient state updates
// (no id) go to their own callback, and a run that is gone ends the retries.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { RunStream } from '../../extension/runStream';
import { ServerClient } from '../../extension/serverClient';
import type { RunRecord, StateEvent } from '../../server/protocol';

const TOKEN = 't'.repeat(32);
const log = (id: number): RunRecord => ({ type: 'log', level: 'info', message: `m${id}`, id, time: Date.now() });
const sse = (r: RunRecord) => `id: ${r.id}\nevent: log\ndata: ${JSON.stringify(r)}\n\n`;

let server: Server;
let port: number;
const requests: { url: string; lastEventId: string | undefined; auth: string | undefined }[] = [];
/** What the scripted server does with the next request to /v1/runs/:id/events. */
let script: ((req: IncomingMessage, res: ServerResponse) => void)[] = [];

before(async () => {
  server = createServer((req, res) => {
    requests.push({ url: req.url!, lastEventId: req.headers['last-event-id'] as string | undefined, auth: req.headers.authorization });
    const next = script.shift();
    if (next) return next(req, res);
    res.writeHead(404, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ error: 'no such run', code: 'not-found' }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
after(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));

const until = async (what: string, ok: () => boolean) => {
  const end = Date.now() + 5000;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('run stream', () => {
  test('reconnects with Last-Event-ID, skips overlap, separates transient updates, stops on 404', async () => {
    requests.length = 0;
    const open = (res: ServerResponse) => res.writeHead(200, { 'Content-Type': 'text/event-stream' });
    script = [
      // 1: records 1-3, one transient, then the connection drops.
      (_req, res) => {
        open(res);
        res.write('retry: 2000\n\n' + sse(log(1)) + sse(log(2)));
        res.write(`event: state\ndata: ${JSON.stringify({ type: 'state', state: 'queued', queuePosition: 2 })}\n\n`);
        res.end(sse(log(3)));
      },
      // 2: a replay that overlaps (2-3) and goes on (4-5), split mid-event, then drops.
      (_req, res) => {
        open(res);
        const text = sse(log(2)) + sse(log(3)) + sse(log(4)) + sse(log(5));
        res.write(text.slice(0, 50));
        setTimeout(() => res.end(text.slice(50)), 20);
      },
      // 3 and later: the run is gone.
    ];
    const records: RunRecord[] = [];
    const transient: StateEvent[] = [];
    const problems: string[] = [];
    const stream = new RunStream({
      runId: 'r1', client: async () => new ServerClient({ port, token: TOKEN }), retryMs: 20,
      onRecord: (r) => records.push(r), onTransient: (e) => transient.push(e), onProblem: (p) => problems.push(p),
    });
    await until('the 404', () => problems.some((p) => p.includes('no such run')));
    stream.dispose();
    assert.deepEqual(records.map((r) => r.id), [1, 2, 3, 4, 5]);
    assert.deepEqual(transient.map((e) => e.queuePosition), [2]);
    assert.deepEqual(requests.map((r) => r.lastEventId), [undefined, '3', '5']);
    assert.ok(requests.every((r) => r.url === '/v1/runs/r1/events' && r.auth === `Bearer ${TOKEN}`));
    // No retry after the run is gone.
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(requests.length, 3);
  });

  test('starts after the id the consumer already has, and dispose ends the connection', async () => {
    requests.length = 0;
    let ended = false;
    script = [(req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/event-stream' });
      res.write(sse(log(8)));
      req.on('close', () => (ended = true));
    }];
    const records: RunRecord[] = [];
    const stream = new RunStream({ runId: 'r1', lastEventId: 7, client: async () => new ServerClient({ port, token: TOKEN }), onRecord: (r) => records.push(r) });
    await until('record 8', () => records.length === 1);
    assert.equal(requests[0].lastEventId, '7');
    assert.equal(stream.lastEventId, 8);
    stream.dispose();
    await until('the server sees the close', () => ended);
  });
});
