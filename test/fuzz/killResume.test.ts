// SIGKILL at 10 seeded random points of one run, through the HTTP API (issue 20): mid-step
// after a random delay, as a checkpoint's temporary folder appears, right after a
// checkpoint, as a resumed run starts; the server alone (its training process must stop by
// itself) or its whole process group. After each kill a new server finds the run
// interrupted and resumes it from its newest complete checkpoint; in the end no checkpoint
// is corrupt, metrics.jsonl holds every step once, and the losses and the final adapter
// equal those of a run never interrupted. Replay with FUZZ_SEED.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import {
  http, metricsOf, sse, startServer, stepsOf, trainWithCli, waitForState, workspace, type ServerProcess, type SseStream, type Workspace,
} from '../server/harness';
import { readSafetensors } from '../../server/engine/formats/safetensors';
import type { CreateRunResponse, RunSummary } from '../../server/protocol';
import type { RunConfigOptions } from '../helpers/runConfig';
import { mulberry32, pick } from './random';

const SEED = Number(process.env.FUZZ_SEED ?? 20);
const KILLS = 10;
const CONFIG: RunConfigOptions = { maxSteps: 30, saveEvery: 3, evalEvery: 0 };
let ws: Workspace;
let reference: ReturnType<typeof trainWithCli>;
const servers: ServerProcess[] = [];

before(() => {
  ws = workspace(1);
  reference = trainWithCli(ws, CONFIG, 'cli');
});
after(async () => {
  for (const s of servers) { s.kill('SIGKILL', true); await s.exited; }
  rmSync(ws.dir, { recursive: true, force: true });
});

type KillAt = { on: 'step' | 'checkpoint' | 'start' | 'tmp'; nth: number; delayMs: number; group: boolean };

function randomKill(next: () => number, round: number): KillAt {
  const on = round === 0 ? pick(next, ['step', 'checkpoint'] as const) : pick(next, ['step', 'step', 'checkpoint', 'start', 'tmp'] as const);
  return { on, nth: on === 'step' ? 1 + Math.floor(next() * 3) : 1, delayMs: pick(next, [0, 0, 5, 15, 40]), group: next() < 0.5 };
}

/** Each step-N folder is whole; returns the newest step, or 0. */
function checkComplete(ck: string): number {
  if (!existsSync(ck)) return 0;
  let newest = 0;
  for (const name of readdirSync(ck)) {
    const m = /^step-(\d+)$/.exec(name);
    if (!m) continue;
    const dir = join(ck, name);
    assert.equal(JSON.parse(readFileSync(join(dir, 'trainer_state.json'), 'utf8')).step, Number(m[1]), `${name}/trainer_state.json`);
    assert.doesNotThrow(() => readSafetensors(join(dir, 'adapter_model.safetensors')), `${name}/adapter_model.safetensors reads`);
    assert.doesNotThrow(() => readSafetensors(join(dir, 'optimizer.safetensors')), `${name}/optimizer.safetensors reads`);
    newest = Math.max(newest, Number(m[1]));
  }
  return newest;
}

/** Steps 1..M in metrics.jsonl, each once, ids increasing; returns M. */
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

/** Sends SIGKILL at the kill point; resolves with what it saw, or 'done' if the run finished first. */
function killWhen(server: ServerProcess, stream: SseStream, k: KillAt, ck: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let watcher: FSWatcher | undefined;
    let fired = false;
    const guard = setTimeout(() => { watcher?.close(); reject(new Error(`kill point ${JSON.stringify(k)} never came`)); }, 90_000);
    const fire = (why: string) => {
      if (fired) return;
      fired = true;
      clearTimeout(guard);
      watcher?.close();
      server.kill('SIGKILL', k.group);
      const last = stream.events.filter((e) => e.data.type === 'step').pop();
      resolve(`${why} (last step streamed: ${last ? (last.data as { step: number }).step : 'none'})`);
    };
    void stream.waitFor((e) => e.data.type === 'done', 90_000, 'done').then(() => { if (!fired) { fired = true; clearTimeout(guard); watcher?.close(); resolve('done'); } }, () => {});
    if (k.on === 'tmp') {
      const seen = new Set(existsSync(ck) ? readdirSync(ck) : []);
      watcher = watch(ck, (_e, name) => { if (name && String(name).startsWith('.') && !seen.has(String(name))) fire(`as ${name} appeared`); });
      return;
    }
    stream.waitFor((_e, all) => all.filter((x) => x.data.type === k.on).length >= k.nth, 90_000, `${k.on} #${k.nth}`).then(() => {
      const why = `${k.delayMs} ms after ${k.on} #${k.nth}`;
      if (k.delayMs === 0) fire(why); else setTimeout(() => fire(why), k.delayMs);
    }, () => {});
  });
}

test(`SIGKILL at ${KILLS} random points through the HTTP API: each restart resumes; no corrupt checkpoint, no step lost or repeated`, async () => {
  const next = mulberry32(SEED);
  const runsDir = join(ws.dir, 'kill-runs');
  const ck = join(ws.dir, 'runs/kill/checkpoints');
  const workerPids: number[] = [];
  let server = await startServer(runsDir);
  servers.push(server);
  const created = await http(server.port, 'POST', '/v1/runs', { body: { configText: ws.configText(CONFIG, './runs/kill'), baseDir: ws.dir } });
  assert.equal(created.status, 201, created.text);
  const { id } = created.json() as CreateRunResponse;
  let kills = 0;
  const t0 = Date.now();
  for (let round = 0; ; round++) {
    if (round > 0) {
      server = await startServer(runsDir);
      servers.push(server);
      const summary = (await http(server.port, 'GET', `/v1/runs/${id}`)).json() as RunSummary;
      assert.equal(summary.state, 'interrupted', `round ${round}: interrupted after the kill`);
      const from = checkComplete(ck);
      assert.ok(checkMetrics(runsDir, id, `round ${round}`) >= from, `round ${round}: every step up to the checkpoint is in metrics.jsonl`);
      const r = await http(server.port, 'POST', `/v1/runs/${id}/resume`);
      assert.equal(r.status, 200, r.text);
    }
    const stream = sse(server.port, id, round > 0 ? (await http(server.port, 'GET', `/v1/runs/${id}`)).json().lastEventId : 0);
    if (kills === KILLS) {
      const done = await waitForState(server.port, id, ['done', 'error'], 120_000);
      assert.equal(done.state, 'done', done.error ?? '');
      stream.close();
      break;
    }
    const k = randomKill(next, round);
    const what = await killWhen(server, stream, k, ck);
    stream.close();
    if (what === 'done') break; // finished before the kill point: nothing left to interrupt
    const run = JSON.parse(readFileSync(join(runsDir, id, 'run.json'), 'utf8'));
    if (run.workerPid) workerPids.push(run.workerPid);
    assert.equal((await server.exited).signal, 'SIGKILL');
    kills++;
    console.log(`# kill ${kills} (${k.group ? 'server and training process' : 'server alone'}): ${what} [${((Date.now() - t0) / 1000).toFixed(0)} s]`);
  }
  assert.equal(kills, KILLS, `all ${KILLS} kills landed before the run finished`);
  const until = Date.now() + 15_000;
  while (workerPids.some(pidAlive) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(workerPids.filter(pidAlive), [], 'no training process outlives its server');
  checkComplete(ck);
  assert.equal(checkMetrics(runsDir, id, 'final'), CONFIG.maxSteps);
  const refSteps = reference.filter((e) => e.type === 'step').map((e) => [e.step, e.loss]);
  assert.deepEqual(stepsOf(metricsOf(runsDir, id)).map((s) => [s.step, s.loss]), refSteps, 'the losses of a run never interrupted');
  const adapter = (dir: string) => [...readSafetensors(join(dir, 'adapter_model.safetensors')).tensors].map(([k, t]) => [k, Buffer.from(t.data.buffer).toString('base64')]);
  assert.deepEqual(adapter(join(ws.dir, 'runs/kill/adapter')), adapter(join(ws.dir, 'runs/cli/adapter')), 'the final adapter is bit-identical');
});
