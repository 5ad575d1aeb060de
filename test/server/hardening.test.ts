// The training server under hostile or careless input (issue 20): it never deletes what it
// did not create in its runs folder (finding 1), a config naming a file it cannot read is a
// 400 on that field (5), output.dir stays inside the config's folder and a huge or deeply
// nested config is refused at once (13, 10), and a training process that cannot write its
// metrics ends instead of idling forever (11).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fork, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { http, startServer, workspace, type ServerProcess, type Workspace } from './harness';
import { projectRoot } from '../helpers/shared';
import type { ConfigErrorResponse } from '../../server/protocol';
import type { WorkerJob } from '../../server/http/worker';

const CONFIG = { maxSteps: 4, saveEvery: 2, evalEvery: 0 };
let ws: Workspace;
const servers: ServerProcess[] = [];

before(() => { ws = workspace(1); });
after(async () => {
  for (const s of servers) { s.kill('SIGKILL', true); await s.exited; }
  rmSync(ws.dir, { recursive: true, force: true });
});

async function serve(runsDir: string, wrap?: string[]): Promise<ServerProcess> {
  const s = await startServer(runsDir, { wrap });
  servers.push(s);
  return s;
}

test('qlora serve --runs-dir on a project folder deletes none of its hidden entries, only its own cut-short creations', async () => {
  const dir = join(ws.dir, 'project');
  mkdirSync(join(dir, '.git/refs'), { recursive: true });
  writeFileSync(join(dir, '.git/HEAD'), 'ref: refs/heads/main\n');
  writeFileSync(join(dir, '.env'), 'SECRET=1\n');
  mkdirSync(join(dir, '.cache.tmp'));
  mkdirSync(join(dir, '.20260101-000000-abcdef.tmp')); // our naming, but not our mark: not ours to delete
  // What Run.create leaves when it is killed half-way: its own temporary folder, marked.
  mkdirSync(join(dir, '.20260101-000000-123456.tmp'));
  writeFileSync(join(dir, '.20260101-000000-123456.tmp/.qlora-creating'), '');
  const s = await serve(dir);
  assert.equal((await http(s.port, 'GET', '/v1/runs')).status, 200);
  assert.equal(readFileSync(join(dir, '.git/HEAD'), 'utf8'), 'ref: refs/heads/main\n');
  assert.ok(existsSync(join(dir, '.env')) && existsSync(join(dir, '.cache.tmp')) && existsSync(join(dir, '.20260101-000000-abcdef.tmp')));
  assert.ok(!existsSync(join(dir, '.20260101-000000-123456.tmp')), 'the marked creation debris is cleaned');
  s.kill('SIGTERM');
  await s.exited;
});

test('a config whose data.train the server cannot read is a 400 naming data.train, not a 500', async (t) => {
  // Root reads anything; in a user namespace of its own the server is an unprivileged user.
  const probe = spawnSync('unshare', ['--user', 'true']);
  if (probe.status !== 0) { t.skip('unshare --user is not available here, so no unreadable file can be made for root'); return; }
  chmodSync(ws.dir, 0o755);
  const runsDir = join(ws.dir, 'nobody-runs');
  mkdirSync(runsDir, { mode: 0o777 });
  chmodSync(runsDir, 0o777);
  writeFileSync(join(ws.dir, 'secret.jsonl'), '{"text": "hidden"}\n', { mode: 0o000 });
  chmodSync(join(ws.dir, 'secret.jsonl'), 0o000);
  const s = await serve(runsDir, ['unshare', '--user']);
  const configText = ws.configText(CONFIG, './runs/secret').replace('train: ./train.jsonl', 'train: ./secret.jsonl');
  assert.match(configText, /secret\.jsonl/);
  const r = await http(s.port, 'POST', '/v1/runs', { body: { configText, baseDir: ws.dir } });
  assert.equal(r.status, 400, r.text);
  const body = r.json() as ConfigErrorResponse;
  const d = body.diagnostics.find((x) => x.data?.key === 'data.train');
  assert.ok(d, JSON.stringify(body));
  assert.match(d.message, /cannot be read \(EACCES/);
  assert.equal((await http(s.port, 'GET', '/v1/health')).status, 200, 'the server lives on');
});

test('output.dir outside the config folder, a 900 KB config and a 3,000-deep one are clean 400s naming the field or limit', async () => {
  const s = await serve(join(ws.dir, 'bounds-runs'));
  for (const out of ['/etc', '../..', '.']) {
    const r = await http(s.port, 'POST', '/v1/runs', { body: { configText: ws.configText(CONFIG, out), baseDir: ws.dir } });
    assert.equal(r.status, 400, `${out}: ${r.text}`);
    const d = (r.json() as ConfigErrorResponse).diagnostics.find((x) => x.data?.key === 'output.dir');
    assert.ok(d && /outside the config's folder/.test(d.message), `${out}: ${r.text}`);
  }
  const inside = await http(s.port, 'POST', '/v1/runs', { body: { configText: ws.configText(CONFIG, './runs/ok'), baseDir: ws.dir } });
  assert.equal(inside.status, 201, inside.text);

  const huge = ws.configText(CONFIG, './runs/huge') + `# ${'x'.repeat(900 * 1024)}\n`;
  let t0 = performance.now();
  const big = await http(s.port, 'POST', '/v1/runs', { body: { configText: huge, baseDir: ws.dir }, timeoutMs: 60_000 });
  const bigMs = performance.now() - t0;
  assert.equal(big.status, 400, big.text.slice(0, 300));
  assert.match((big.json() as ConfigErrorResponse).error, /more than the 65536 a \.qlora config may have/);

  const deep = ws.configText(CONFIG, './runs/deep') + `extra:\n  ${'- '.repeat(3000)}x\n`;
  t0 = performance.now();
  const nested = await http(s.port, 'POST', '/v1/runs', { body: { configText: deep, baseDir: ws.dir }, timeoutMs: 60_000 });
  const deepMs = performance.now() - t0;
  assert.equal(nested.status, 400, nested.text.slice(0, 300));
  assert.match((nested.json() as ConfigErrorResponse).error, /nesting deeper than 32 levels/);
  console.log(`# 900 KB config refused in ${bigMs.toFixed(0)} ms, 3,000-deep one in ${deepMs.toFixed(0)} ms (shared machine)`);
});

test('a training process whose metrics.jsonl cannot be written (a full disk: /dev/full) exits with the reason instead of idling', async () => {
  writeFileSync(join(ws.dir, 'full.qlora'), ws.configText(CONFIG, './runs/full'));
  const job: WorkerJob = {
    configText: ws.configText(CONFIG, './runs/full'), baseDir: ws.dir, configFile: join(ws.dir, 'full.qlora'), resume: false,
    metricsFile: '/dev/full', firstEventId: 1, stopFile: join(ws.dir, 'full.stop'),
  };
  const child = fork(join(projectRoot, 'server/cli.ts'), ['serve', '--worker'], {
    execArgv: ['--import', 'tsx'], cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
  child.send({ kind: 'job', job });
  let timer: NodeJS.Timeout | undefined;
  const exit = await Promise.race([
    new Promise<number | null>((r) => child.on('exit', (code) => r(code))),
    new Promise<'hung'>((r) => { timer = setTimeout(() => r('hung'), 60_000); }),
  ]);
  clearTimeout(timer);
  if (exit === 'hung') child.kill('SIGKILL');
  assert.notEqual(exit, 'hung', `the training process idled with its run stuck in training\n${stderr}`);
  assert.equal(exit, 1);
  assert.match(stderr, /cannot write \/dev\/full: ENOSPC/);
});
