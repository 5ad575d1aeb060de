// A run's record lives in its output.dir, the same for runs of `qlora train` and of the
// server: the CLI writes run.json + metrics.jsonl there; the server imports such a folder
// (listed, replayed, kept across a restart), renames and deletes runs (deleting only
// what a run wrote), and refuses a folder whose run still trains in another process.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { http, metricsOf, startServer, trainWithCli, workspace, type ServerProcess, type Workspace } from './harness';
import type { RunRecord, RunSummary } from '../../server/protocol';

let ws: Workspace;
let runsDir: string;
let server: ServerProcess;
const cliOut = () => join(ws.dir, 'runs', 'cli');
const records = (dir: string): RunRecord[] => readFileSync(join(dir, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));

before(async () => {
  ws = workspace();
  runsDir = join(ws.dir, '.qlora', 'runs');
  trainWithCli(ws, { maxSteps: 6, saveEvery: 3, evalEvery: 3, gradAccum: 1 }, 'cli');
  server = await startServer(runsDir);
});

after(async () => {
  server?.kill('SIGKILL', true);
  await server?.exited;
  rmSync(ws.dir, { recursive: true, force: true });
});

test('qlora train records its run in output.dir: run.json (config text included) and metrics.jsonl, no .qlora copy', () => {
  const run = JSON.parse(readFileSync(join(cliOut(), 'run.json'), 'utf8'));
  assert.equal(run.state, 'done');
  assert.equal(run.origin, 'cli');
  assert.equal(run.workerPid, null);
  assert.equal(run.configText, readFileSync(join(ws.dir, 'cli.qlora'), 'utf8'));
  const recs = records(cliOut());
  assert.deepEqual(recs.map((r) => r.id), recs.map((_, i) => i + 1), 'ids 1..n');
  assert.equal(recs.filter((r) => r.type === 'step').length, 6);
  assert.deepEqual(recs.at(-1), { ...recs.at(-1)!, type: 'state', state: 'done' });
  assert.ok(existsSync(join(cliOut(), 'config.resolved.json')));
  assert.ok(!readdirSync(cliOut()).some((f) => f.endsWith('.qlora')));
});

test('the server imports a CLI run folder: listed, its history replayed, kept across a restart', async () => {
  const r = await http(server.port, 'POST', '/v1/runs/import', { body: { outputDir: cliOut() } });
  assert.equal(r.status, 200, r.text);
  const run = r.json() as RunSummary;
  assert.equal(run.origin, 'cli');
  assert.equal(run.state, 'done');
  assert.equal(run.step, 6);
  assert.deepEqual(metricsOf(runsDir, run.id), records(cliOut()), 'the runs folder links to the same record');
  // Importing again changes nothing.
  assert.equal(((await http(server.port, 'POST', '/v1/runs/import', { body: { outputDir: cliOut() } })).json() as RunSummary).id, run.id);
  server.kill('SIGTERM');
  await server.exited;
  server = await startServer(runsDir);
  const list = (await http(server.port, 'GET', '/v1/runs')).json() as { runs: RunSummary[] };
  assert.deepEqual(list.runs.map((x) => x.id), [run.id]);
  assert.equal((await http(server.port, 'POST', '/v1/runs/import', { body: { outputDir: join(ws.dir, 'nowhere') } })).status, 404);
  assert.equal((await http(server.port, 'POST', '/v1/runs/import', { body: { outputDir: 'relative' } })).status, 400);
});

test('rename sets the name in run.json; a bad name is refused', async () => {
  const [run] = ((await http(server.port, 'GET', '/v1/runs')).json() as { runs: RunSummary[] }).runs;
  const r = await http(server.port, 'POST', `/v1/runs/${run.id}/rename`, { body: { name: '  first try ' } });
  assert.equal(r.status, 200, r.text);
  assert.equal((r.json() as RunSummary).name, 'first try');
  assert.equal(JSON.parse(readFileSync(join(cliOut(), 'run.json'), 'utf8')).name, 'first try');
  assert.equal((await http(server.port, 'POST', `/v1/runs/${run.id}/rename`, { body: { name: 'two\nlines' } })).status, 400);
  assert.equal((await http(server.port, 'POST', `/v1/runs/${run.id}/rename`, { body: { name: '' } })).status, 400);
});

test('delete removes what the run wrote (record, checkpoints, adapter) and nothing else', async () => {
  const [run] = ((await http(server.port, 'GET', '/v1/runs')).json() as { runs: RunSummary[] }).runs;
  writeFileSync(join(cliOut(), 'notes.txt'), 'mine');
  const r = await http(server.port, 'DELETE', `/v1/runs/${run.id}`);
  assert.equal(r.status, 204, r.text);
  assert.deepEqual(readdirSync(cliOut()), ['notes.txt']);
  assert.ok(!existsSync(join(runsDir, run.id)));
  assert.equal((await http(server.port, 'GET', `/v1/runs/${run.id}`)).status, 404);
});

test('a folder whose run still trains in a live process is refused; one whose process is gone comes in interrupted', async () => {
  const make = (name: string, pid: number) => {
    const dir = join(ws.dir, 'runs', name);
    mkdirSync(dir, { recursive: true });
    const now = new Date().toISOString();
    writeFileSync(join(dir, 'run.json'), JSON.stringify({
      id: `20260101-000000-${name}`, state: 'training', createdAt: now, updatedAt: now, configFile: join(ws.dir, 'x.qlora'), baseDir: ws.dir,
      outputDir: dir, overwrite: false, queueSeq: 0, launches: 1, workerPid: pid, eventIdFloor: 0, error: null, origin: 'cli', configText: '',
    }));
    writeFileSync(join(dir, 'metrics.jsonl'), '');
    return dir;
  };
  const live = await http(server.port, 'POST', '/v1/runs/import', { body: { outputDir: make('aaaaaa', process.pid) } });
  assert.equal(live.status, 409);
  assert.equal(live.json().code, 'busy-elsewhere');
  const gone = await http(server.port, 'POST', '/v1/runs/import', { body: { outputDir: make('bbbbbb', 2 ** 22 + 12345) } });
  assert.equal(gone.status, 200, gone.text);
  assert.equal((gone.json() as RunSummary).state, 'interrupted');
});
