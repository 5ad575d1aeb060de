// The server going away mid-run. SIGTERM: the step finishes, a checkpoint is written,
// the run is saved as interrupted and the process exits 0. SIGKILL at five different
// points (mid-step, mid-checkpoint, between steps, as a resumed run starts; the server
// alone, whose training process must then stop by itself, or the whole process group):
// each time a restarted server finds the run interrupted, it resumes from the newest
// complete checkpoint, and in the end metrics.jsonl holds every step exactly once with
// the losses of a run never interrupted.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import {
  http, metricsOf, sse, startServer, stepsOf, trainWithCli, waitForState, workspace, type ServerProcess, type SseStream, type Workspace,
} from './harness';
import { readSafetensors } from '../../server/engine/formats/safetensors';
import type { CreateRunResponse, RunRecord, RunSummary } from '../../server/protocol';
import type { RunConfigOptions } from '../helpers/runConfig';

const CONFIG: RunConfigOptions = { maxSteps: 40, saveEvery: 4, evalEvery: 8 };
let ws: Workspace;
let reference: ReturnType<typeof trainWithCli>;
const servers: ServerProcess[] = [];

before(() => {
  ws = workspace(2);
  reference = trainWithCli(ws, CONFIG, 'cli');
});

after(async () => {
  for (const s of servers) { s.kill('SIGKILL', true); await s.exited; }
  rmSync(ws.dir, { recursive: true, force: true });
});

async function serve(runsDir: string): Promise<ServerProcess> {
  const s = await startServer(runsDir);
  servers.push(s);
  return s;
}

const refSteps = () => reference.filter((e) => e.type === 'step').map((e) => [e.step, e.loss]);
const refEvals = () => reference.filter((e) => e.type === 'eval').map((e) => [e.step, e.evalLoss]);

/** step-N folders, each checked whole; the newest step, or 0. */
function checkComplete(ck: string): number {
  if (!existsSync(ck)) return 0;
  let newest = 0;
  for (const name of readdirSync(ck)) {
    const m = /^step-(\d+)$/.exec(name);
    if (!m) continue;
    const dir = join(ck, name);
    assert.ok(existsSync(join(dir, 'trainer_state.json')), `${name} has trainer_state.json`);
    assert.doesNotThrow(() => readSafetensors(join(dir, 'adapter_model.safetensors')), `${name}/adapter_model.safetensors reads`);
    assert.doesNotThrow(() => readSafetensors(join(dir, 'optimizer.safetensors')), `${name}/optimizer.safetensors reads`);
    assert.equal(JSON.parse(readFileSync(join(dir, 'trainer_state.json'), 'utf8')).step, Number(m[1]));
    newest = Math.max(newest, Number(m[1]));
  }
  return newest;
}

/** The steps in metrics.jsonl are 1..M, each once, ids increasing; returns M. */
function checkMetrics(runsDir: string, id: string, what: string): number {
  const records = metricsOf(runsDir, id);
  const ids = records.map((r) => r.id);
  assert.deepEqual(ids, [...ids].sort((a, b) => a - b), `${what}: ids increase`);
  assert.equal(new Set(ids).size, ids.length, `${what}: ids unique`);
  const steps = stepsOf(records).map((s) => s.step);
  assert.deepEqual(steps, steps.map((_, i) => i + 1), `${what}: steps 1..${steps.length}, each once`);
  return steps.length;
}

function pidAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

test('SIGTERM: the step finishes, a checkpoint is written, the run is saved as interrupted, and it resumes', async () => {
  const runsDir = join(ws.dir, 'term-runs');
  let server = await serve(runsDir);
  const created = await http(server.port, 'POST', '/v1/runs', { body: { configText: ws.configText(CONFIG, './runs/term'), baseDir: ws.dir } });
  assert.equal(created.status, 201, created.text);
  const { id } = created.json() as CreateRunResponse;
  const queued = await http(server.port, 'POST', '/v1/runs', { body: { configText: ws.configText({ ...CONFIG, maxSteps: 8 }, './runs/term-queued'), baseDir: ws.dir } });
  assert.equal((queued.json() as CreateRunResponse).run.state, 'queued');
  const stream = sse(server.port, id);
  await stream.waitFor((e) => e.data.type === 'step' && (e.data as { step: number }).step === 6, 60_000, 'step 6');
  const workerPid = JSON.parse(readFileSync(join(runsDir, id, 'run.json'), 'utf8')).workerPid as number;
  assert.ok(workerPid > 0 && pidAlive(workerPid));
  server.kill('SIGTERM', true); // to the process group, as a terminal or a session ending would: the training process too
  let timer: NodeJS.Timeout | undefined;
  const exit = await Promise.race([server.exited, new Promise<null>((r) => { timer = setTimeout(() => r(null), 30_000); })]);
  clearTimeout(timer);
  assert.deepEqual(exit, { code: 0, signal: null }, `the server exits by itself, with 0\n${server.stderr()}`);
  assert.ok(!pidAlive(workerPid), 'the training process is gone');
  const run = JSON.parse(readFileSync(join(runsDir, id, 'run.json'), 'utf8'));
  assert.equal(run.state, 'interrupted');
  const records = metricsOf(runsDir, id);
  const last = stepsOf(records).pop()!.step;
  assert.ok(last >= 6 && last < CONFIG.maxSteps, `stopped at step ${last}`);
  assert.deepEqual(records.filter((r) => r.type === 'done').map((r) => [(r as { step: number }).step, (r as { stopped: boolean }).stopped]), [[last, true]]);
  assert.equal(checkComplete(join(ws.dir, 'runs/term/checkpoints')), last, 'a complete checkpoint at the last step');
  assert.ok(stream.events.some((e) => e.data.type === 'checkpoint' && (e.data as { step: number }).step === last), 'clients saw the checkpoint');
  stream.close();

  assert.equal(JSON.parse(readFileSync(join(runsDir, (queued.json() as CreateRunResponse).id, 'run.json'), 'utf8')).state, 'queued');

  // After a restart the interrupted run waits to be resumed; the queued one trains.
  server = await serve(runsDir);
  assert.equal(((await http(server.port, 'GET', `/v1/runs/${id}`)).json() as RunSummary).state, 'interrupted');
  const other = await waitForState(server.port, (queued.json() as CreateRunResponse).id, ['done', 'error'], 60_000);
  assert.equal(other.state, 'done', other.error ?? '');
  assert.equal((await http(server.port, 'POST', `/v1/runs/${id}/resume`)).status, 200);
  const done = await waitForState(server.port, id, ['done', 'error'], 60_000);
  assert.equal(done.state, 'done', done.error ?? '');
  checkMetrics(runsDir, id, 'after resume');
  assert.deepEqual(stepsOf(metricsOf(runsDir, id)).map((s) => [s.step, s.loss]), refSteps());
  server.kill('SIGTERM');
  assert.deepEqual(await server.exited, { code: 0, signal: null }, 'an idle server exits 0 on SIGTERM');
});

type KillAt =
  | { on: 'step' | 'checkpoint' | 'start'; nth: number; delayMs: number; group: boolean; where: string }
  | { on: 'tmp'; group: boolean; where: string };

test('SIGKILL at 5 points of a run: every restart resumes, no checkpoint is corrupt, no step lost or repeated', async () => {
  const runsDir = join(ws.dir, 'kill-runs');
  const ck = join(ws.dir, 'runs/kill/checkpoints');
  const plan: KillAt[] = [
    { on: 'step', nth: 6, delayMs: 15, group: false, where: 'mid-step, server alone' },
    { on: 'tmp', group: true, where: 'mid-checkpoint, server and training process' },
    { on: 'checkpoint', nth: 1, delayMs: 0, group: false, where: 'between steps (right after a checkpoint), server alone' },
    { on: 'step', nth: 2, delayMs: 20, group: true, where: 'mid-step, server and training process' },
    { on: 'start', nth: 1, delayMs: 0, group: false, where: 'between steps (as the resumed run starts), server alone' },
  ];
  const workerPids: number[] = [];
  let server = await serve(runsDir);
  const created = await http(server.port, 'POST', '/v1/runs', { body: { configText: ws.configText(CONFIG, './runs/kill'), baseDir: ws.dir } });
  assert.equal(created.status, 201, created.text);
  const { id } = created.json() as CreateRunResponse;
  let replayed = 0;

  for (let round = 0; round <= plan.length; round++) {
    let from = 0;
    if (round > 0) {
      server = await serve(runsDir);
      const summary = (await http(server.port, 'GET', `/v1/runs/${id}`)).json() as RunSummary;
      assert.equal(summary.state, 'interrupted', `round ${round}: interrupted after the kill`);
      from = checkComplete(ck);
      const written = checkMetrics(runsDir, id, `round ${round}, before resume`);
      assert.ok(written >= from, `round ${round}: metrics.jsonl has every step up to the checkpoint (${written} >= ${from})`);
      replayed += written - from;
      const r = await http(server.port, 'POST', `/v1/runs/${id}/resume`);
      assert.equal(r.status, 200, r.text);
    }
    const stream = sse(server.port, id, round > 0 ? (await http(server.port, 'GET', `/v1/runs/${id}`)).json().lastEventId : 0);
    const kill = plan[round];
    if (!kill) {
      const done = await waitForState(server.port, id, ['done', 'error'], 60_000);
      assert.equal(done.state, 'done', done.error ?? '');
      stream.close();
      console.log(`# final: resumed from step-${from}, done at step ${done.step}`);
      break;
    }
    const what = await killWhen(server, stream, kill, ck);
    const run = JSON.parse(readFileSync(join(runsDir, id, 'run.json'), 'utf8'));
    if (run.workerPid) workerPids.push(run.workerPid);
    const exit = await server.exited;
    assert.equal(exit.signal, 'SIGKILL');
    stream.close();
    assert.ok(!stream.events.some((e) => e.data.type === 'done'), `round ${round}: the run was still going when killed`);
    console.log(`# kill ${round + 1} (${kill.where}): ${what}; resumed from step-${from}`);
  }

  // Every training process the killed servers left has gone.
  const until = Date.now() + 10_000;
  while (workerPids.some(pidAlive) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(workerPids.filter(pidAlive), [], 'no training process outlives its server');
  checkComplete(ck);
  assert.equal(checkMetrics(runsDir, id, 'final'), CONFIG.maxSteps);
  const records = metricsOf(runsDir, id);
  assert.deepEqual(stepsOf(records).map((s) => [s.step, s.loss]), refSteps(), 'losses of a run never interrupted');
  assert.deepEqual(records.filter((r) => r.type === 'eval').map((r) => [(r as { step: number }).step, (r as { evalLoss: number }).evalLoss]), refEvals(),
    'each eval once, as in a run never interrupted');
  assert.equal(records.filter((r: RunRecord) => r.type === 'done').length, 1);
  assert.ok(replayed > 0, 'some steps past a checkpoint were trained again (and their old lines dropped)');
  console.log(`# ${replayed} step lines past a checkpoint were dropped and trained again; metrics.jsonl: steps 1..${CONFIG.maxSteps} once each`);
});

/** Arms the kill; resolves with what was last seen once the signal is sent. */
function killWhen(server: ServerProcess, stream: SseStream, k: KillAt, ck: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let watcher: FSWatcher | undefined;
    const guard = setTimeout(() => { watcher?.close(); reject(new Error(`kill point '${k.where}' never came`)); }, 60_000);
    const fire = (why: string) => {
      clearTimeout(guard);
      watcher?.close();
      const last = stream.events.filter((e) => e.data.type === 'step').pop();
      server.kill('SIGKILL', k.group);
      resolve(`${why} (last step streamed: ${last ? (last.data as { step: number }).step : 'none'})`);
    };
    if (k.on === 'tmp') {
      const before = new Set(existsSync(ck) ? readdirSync(ck) : []);
      watcher = watch(ck, (_e, name) => {
        if (name && String(name).startsWith('.') && !before.has(String(name))) fire(`as ${name} appeared`);
      });
      return;
    }
    const { on, nth, delayMs } = k;
    stream.waitFor((_e, all) => all.filter((x) => x.data.type === on).length >= nth, 60_000, `${on} #${nth}`).then(() => {
      const e = stream.events.filter((x) => x.data.type === on)[nth - 1];
      const why = `${delayMs} ms after ${on}${'step' in e.data ? ` ${(e.data as { step: number }).step}` : ''}`;
      if (delayMs === 0) fire(why); else setTimeout(() => fire(why), delayMs);
    }, (e: Error) => { clearTimeout(guard); reject(e); });
  });
}

test('a training process that dies (say, killed for memory) fails its run with the reason; resume finishes it', async () => {
  const runsDir = join(ws.dir, 'crash-runs');
  const server = await serve(runsDir);
  const created = await http(server.port, 'POST', '/v1/runs', { body: { configText: ws.configText(CONFIG, './runs/crash'), baseDir: ws.dir } });
  const { id } = created.json() as CreateRunResponse;
  const stream = sse(server.port, id);
  await stream.waitFor((e) => e.data.type === 'step' && (e.data as { step: number }).step === 5, 60_000, 'step 5');
  const workerPid = JSON.parse(readFileSync(join(runsDir, id, 'run.json'), 'utf8')).workerPid as number;
  process.kill(workerPid, 'SIGKILL');
  const failed = await waitForState(server.port, id, ['error'], 30_000);
  assert.match(failed.error ?? '', /training process ended without finishing \(signal SIGKILL\)/);
  await stream.waitFor((e) => e.event === 'error', 5_000, 'error event');
  assert.equal((await http(server.port, 'GET', '/v1/health')).status, 200, 'the server lives on');
  assert.equal((await http(server.port, 'POST', `/v1/runs/${id}/resume`)).status, 200);
  const done = await waitForState(server.port, id, ['done', 'error'], 60_000);
  assert.equal(done.state, 'done', done.error ?? '');
  stream.close();
  checkMetrics(runsDir, id, 'after the crash and resume');
  assert.deepEqual(stepsOf(metricsOf(runsDir, id)).map((s) => [s.step, s.loss]), refSteps());
});
