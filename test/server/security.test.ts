// Who gets in: a real `qlora serve` on loopback refuses to start without a token, and
// answers requests without the token, with a wrong one, with a Host other than
// 127.0.0.1/localhost and its port, or with a run id that leaves the runs folder, with
// 401/403/400 and nothing else. Each refusal is checked against a request that does get
// through, so the tests fail if any refused request were served.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import { http, startServer, TOKEN, workspace, type ServerProcess, type Workspace } from './harness';
import { diagnose } from '../../language-server/service/analysis';
import { DEFAULT_SETTINGS } from '../../language-server/service/settings';
import type { ConfigErrorResponse, CreateRunResponse, RunListResponse } from '../../server/protocol';

let ws: Workspace;
let runsDir: string;
let server: ServerProcess;
let runId: string;
const SECRET = 'SECRET-OUTSIDE-THE-RUNS-FOLDER';

before(async () => {
  ws = workspace();
  runsDir = join(ws.dir, 'state', 'runs');
  // A folder beside the runs folder that looks like a run: traversal would find it.
  mkdirSync(join(ws.dir, 'state', 'secret'), { recursive: true });
  writeFileSync(join(ws.dir, 'state', 'secret', 'run.json'), JSON.stringify({ id: 'secret', state: 'done', note: SECRET }));
  writeFileSync(join(ws.dir, 'state', 'secret', 'metrics.jsonl'), JSON.stringify({ id: 1, type: 'log', message: SECRET }) + '\n');
  server = await startServer(runsDir);
  const r = await http(server.port, 'POST', '/v1/runs', { body: { configText: ws.configText({ maxSteps: 2, saveEvery: 0, evalEvery: 0 }), baseDir: ws.dir } });
  assert.equal(r.status, 201, r.text);
  runId = (r.json() as CreateRunResponse).id;
});

after(async () => {
  server?.kill('SIGKILL', true);
  await server?.exited;
  rmSync(ws.dir, { recursive: true, force: true });
});

const runCount = async () => ((await http(server.port, 'GET', '/v1/runs')).json() as RunListResponse).runs.length;

test('qlora serve refuses to start without a token, or with a short one', async () => {
  for (const token of [null, '', 'short']) {
    await assert.rejects(startServer(join(ws.dir, 'other-runs'), { token }), (e: Error) => {
      assert.match(e.message, /QLORA_SERVER_TOKEN/);
      assert.match(e.message, /exited \(1\) before listening/);
      return true;
    }, `token ${JSON.stringify(token)}`);
  }
});

test('every route answers 401 without the token or with a wrong one, and nothing is created', async () => {
  const before = await runCount();
  const routes: [string, string, object?][] = [
    ['GET', '/v1/health'], ['GET', '/v1/runs'], ['GET', `/v1/runs/${runId}`], ['GET', `/v1/runs/${runId}/events`],
    ['POST', `/v1/runs/${runId}/stop`], ['POST', `/v1/runs/${runId}/resume`], ['GET', '/v1/no-such-route'],
    ['POST', '/v1/runs', { configText: ws.configText({ maxSteps: 2, saveEvery: 0, evalEvery: 0 }, './runs/unauth'), baseDir: ws.dir }],
  ];
  for (const token of [null, 'wrong-token-0123456789abcdef', TOKEN.slice(0, -1), `${TOKEN}x`, '']) {
    for (const [method, path, body] of routes) {
      const r = await http(server.port, method, path, { token, body });
      assert.equal(r.status, 401, `${method} ${path} with token ${JSON.stringify(token)}: ${r.text}`);
      assert.equal(r.headers['www-authenticate'], 'Bearer');
      assert.deepEqual(Object.keys(r.json()).sort(), ['code', 'error']);
      assert.doesNotMatch(r.text, new RegExp(runId));
    }
  }
  // Another scheme, or the token alone, is no bearer token.
  for (const authorization of [`Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}`, `Token ${TOKEN}`, TOKEN, `Bearer`, `Bearer ${TOKEN} ${TOKEN}`]) {
    assert.equal((await http(server.port, 'GET', '/v1/health', { authorization })).status, 401, authorization);
  }
  assert.equal(await runCount(), before, 'no run was created by refused requests');
  // The same requests with the token get through (so the refusals above were the guard's).
  assert.equal((await http(server.port, 'GET', '/v1/health')).status, 200);
  assert.equal((await http(server.port, 'GET', `/v1/runs/${runId}`)).json().id, runId);
});

test('a Host other than 127.0.0.1:PORT or localhost:PORT gets 403, token or not', async () => {
  const p = server.port;
  for (const host of ['evil.example:' + p, `127.0.0.1:${p + 1}`, '127.0.0.1', 'localhost', `[::1]:${p}`, `0.0.0.0:${p}`,
    `127.0.0.1.evil.example:${p}`, `localhost.:${p}`, `192.168.0.1:${p}`, `127.0.0.1:${p}@evil.example`]) {
    for (const [method, path] of [['GET', '/v1/health'], ['GET', `/v1/runs/${runId}`], ['GET', '/v1/runs']]) {
      const r = await http(p, method, path, { host });
      assert.equal(r.status, 403, `${method} ${path} with Host ${JSON.stringify(host)}: ${r.text}`);
      assert.equal(r.json().code, 'forbidden-host');
      assert.doesNotMatch(r.text, new RegExp(runId));
    }
  }
  // No Host at all (HTTP/1.0), on a raw socket so no client fills one in.
  const raw = await new Promise<string>((res, rej) => {
    const s = connect({ host: '127.0.0.1', port: p }, () => s.end(`GET /v1/health HTTP/1.0\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`));
    let out = '';
    s.setEncoding('utf8').on('data', (d: string) => { out += d; }).on('end', () => res(out)).on('error', rej);
    s.setTimeout(5000, () => s.destroy(new Error('no answer')));
  });
  assert.match(raw, /^HTTP\/1\.[01] 403 /);
  assert.doesNotMatch(raw, /"version"/);
  for (const host of [`127.0.0.1:${p}`, `localhost:${p}`, `LOCALHOST:${p}`]) {
    assert.equal((await http(p, 'GET', '/v1/health', { host })).status, 200, host);
  }
});

test('run ids that could leave the runs folder are refused, and nothing outside it is served', async () => {
  const ids = ['..', '..%2Fsecret', '..%2F..%2Fsecret', '%2e%2e%2fsecret', '..%5Csecret', 'secret%00', '.%2E',
    '%2Fetc%2Fpasswd', 'a..b', '.hidden', 'x'.repeat(65), 'run%20id', '%252e%252e%252fsecret'];
  for (const id of ids) {
    for (const [method, suffix] of [['GET', ''], ['GET', '/events'], ['POST', '/stop'], ['POST', '/resume']]) {
      const path = `/v1/runs/${id}${suffix}`;
      const r = await http(server.port, method, path);
      assert.ok(r.status === 400 || r.status === 404, `${method} ${path} -> ${r.status} ${r.text}`);
      assert.doesNotMatch(r.text, new RegExp(SECRET));
      assert.doesNotMatch(r.headers['content-type'] as string, /event-stream/);
    }
  }
  // Raw paths with dot segments, sent as is.
  for (const path of ['/v1/runs/../secret', '/v1/runs/../secret/events', '/v1/runs/%2e%2e/secret', '/v1/runs/./../secret/events']) {
    const r = await http(server.port, 'GET', path);
    assert.ok(r.status === 400 || r.status === 404, `${path} -> ${r.status}`);
    assert.doesNotMatch(r.text, new RegExp(SECRET));
  }
  // A well-formed id that is not a run is 404; the real one is served.
  assert.equal((await http(server.port, 'GET', '/v1/runs/secret')).status, 404);
  assert.equal((await http(server.port, 'GET', `/v1/runs/${runId}`)).status, 200);
});

test('JSON bodies have a size limit; malformed bodies are 400; the config is checked before anything starts', async () => {
  const before = await runCount();
  const big = await http(server.port, 'POST', '/v1/runs', { body: { configText: 'x'.repeat(2 * 1024 * 1024), baseDir: ws.dir } });
  assert.equal(big.status, 413, big.text);
  assert.equal((await http(server.port, 'POST', '/v1/runs', { body: '{"configText": ' })).status, 400);
  assert.equal((await http(server.port, 'POST', '/v1/runs', { body: { configText: 'model: {}', baseDir: 'relative/dir' } })).status, 400);
  assert.equal((await http(server.port, 'POST', '/v1/runs', { body: [1, 2] })).status, 400);

  // A bad config: 400 with the language server's own diagnostics for that text.
  const text = ws.configText({ maxSteps: 2, saveEvery: 0, evalEvery: 0 }, './runs/bad')
    .replace('r: 4', 'r: -3').replace('format: text', 'format: txt').replace('./train.jsonl', './missing.jsonl');
  const bad = await http(server.port, 'POST', '/v1/runs', { body: { configText: text, baseDir: ws.dir } });
  assert.equal(bad.status, 400, bad.text);
  const body = bad.json() as ConfigErrorResponse;
  assert.deepEqual(body.diagnostics, diagnose({ text, baseDir: ws.dir }, DEFAULT_SETTINGS));
  assert.ok(body.diagnostics.filter((d) => d.severity === 'error').length >= 3, JSON.stringify(body.diagnostics));
  assert.ok(body.diagnostics.every((d) => d.range && typeof d.range.start.line === 'number'));
  assert.equal(await runCount(), before, 'refused bodies created no run');
  assert.deepEqual(readdirSync(runsDir).filter((n) => !n.startsWith('.') && n !== 'server.json').length, before);
});

test('the server listens on 127.0.0.1 only', async () => {
  const others = Object.values(networkInterfaces()).flat().filter((i) => i && !i.internal).map((i) => i!.address);
  for (const address of ['::1', ...others]) {
    const outcome = await new Promise<string>((res) => {
      const s = connect({ host: address, port: server.port, timeout: 2000 });
      s.on('connect', () => { s.destroy(); res('connected'); });
      s.on('timeout', () => { s.destroy(); res('timeout'); });
      s.on('error', (e: NodeJS.ErrnoException) => res(e.code ?? 'error'));
    });
    assert.notEqual(outcome, 'connected', `${address}:${server.port} accepted a connection`);
  }
});
