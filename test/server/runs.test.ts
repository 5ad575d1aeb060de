// Runs over HTTP against a real `qlora serve`: the streamed losses are those of
// `qlora train --json` on the same config; a stopped run resumes to the same losses;
// runs queue with their position; a late client with Last-Event-ID gets exactly what
// it missed and then the live tail; health answers fast while a run trains.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { constants, getPriority } from 'node:os';
import { join } from 'node:path';
import {
  http, metricsOf, sse, startServer, stepsOf, trainWithCli, waitForState, workspace, type ServerProcess, type Workspace,
} from './harness';
import type { CreateRunResponse, HealthResponse, RunRecord, RunSummary } from '../../server/protocol';
import type { RunConfigOptions } from '../helpers/runConfig';

let ws: Workspace;
let runsDir: string;
let server: ServerProcess;
const SHORT: RunConfigOptions = { maxSteps: 16, saveEvery: 5, evalEvery: 4, gradAccum: 2 };
let reference: ReturnType<typeof trainWithCli>;

before(async () => {
  ws = workspace();
  runsDir = join(ws.dir, '.qlora', 'runs');
  reference = trainWithCli(ws, SHORT, 'cli');
  server = await startServer(runsDir);
});

after(async () => {
  server?.kill('SIGKILL', true);
  await server?.exited;
  rmSync(ws.dir, { recursive: true, force: true });
});

async function create(o: RunConfigOptions, output: string, extra: object = {}): Promise<CreateRunResponse> {
  const r = await http(server.port, 'POST', '/v1/runs', { body: { configText: ws.configText(o, output), baseDir: ws.dir, ...extra } });
  assert.equal(r.status, 201, r.text);
  return r.json() as CreateRunResponse;
}

const losses = (events: { type: string; step?: number; loss?: number }[]) =>
  events.filter((e) => e.type === 'step').map((e) => [e.step, e.loss]);
const evalLosses = (events: { type: string; step?: number; evalLoss?: number }[]) =>
  events.filter((e) => e.type === 'eval').map((e) => [e.step, e.evalLoss]);

test('a run created over HTTP streams the losses `qlora train --json` prints for the same config', async () => {
  const { id, run } = await create(SHORT, './runs/http');
  assert.ok(['queued', 'training'].includes(run.state));
  const stream = sse(server.port, id);
  assert.equal(await stream.status, 200);
  await stream.waitFor((e) => e.event === 'done', 60_000, 'done event');
  await stream.waitFor((e) => e.event === 'state' && (e.data as { state?: string }).state === 'done', 5_000, 'state done');
  stream.close();
  const got = stream.events.map((e) => e.data);
  assert.deepEqual(losses(got), losses(reference), 'step losses');
  assert.deepEqual(evalLosses(got), evalLosses(reference), 'eval losses');
  assert.equal(losses(got).length, SHORT.maxSteps);
  // SSE names per DESIGN.md, ids increasing, and the stream is metrics.jsonl.
  const names = new Map([['step', 'metrics'], ['eval', 'metrics'], ['start', 'state'], ['state', 'state'], ['log', 'log'],
    ['checkpoint', 'checkpoint'], ['done', 'done'], ['error', 'error']]);
  for (const e of stream.events) assert.equal(e.event, names.get(e.data.type), e.data.type);
  const ids = stream.events.map((e) => e.id!);
  assert.deepEqual(ids, ids.map((_, i) => i + 1), 'ids 1..n');
  assert.deepEqual(metricsOf(runsDir, id), got, 'metrics.jsonl holds exactly the streamed records');
  const summary = (await http(server.port, 'GET', `/v1/runs/${id}`)).json() as RunSummary;
  assert.equal(summary.state, 'done');
  assert.equal(summary.step, SHORT.maxSteps);
  assert.equal(summary.lastEventId, ids[ids.length - 1]);
  assert.ok(summary.adapter && existsSync(join(summary.adapter, 'adapter_model.safetensors')));
  // The record lives in output.dir (the runs folder links to it), with the config text it was made from.
  const record = JSON.parse(readFileSync(join(summary.outputDir, 'run.json'), 'utf8'));
  assert.equal(record.state, 'done');
  assert.equal(record.configText, ws.configText(SHORT, './runs/http'));
  assert.equal(JSON.parse(readFileSync(join(runsDir, id, 'run.json'), 'utf8')).id, id);
  assert.ok(existsSync(join(summary.outputDir, 'metrics.jsonl')) && existsSync(join(summary.outputDir, 'config.resolved.json')));
  assert.ok(!readdirSync(summary.outputDir).some((f) => f.endsWith('.qlora')), 'no .qlora copy for the editor to flag or offer');
  const health = (await http(server.port, 'GET', '/v1/health')).json() as HealthResponse;
  assert.equal(health.backend, 'wasm');
  assert.match(health.version, /^\d+\.\d+\.\d+/);

  // The folder is now taken by a finished run's checkpoints: starting over needs overwrite.
  const again = await http(server.port, 'POST', '/v1/runs', { body: { configText: ws.configText(SHORT, './runs/http'), baseDir: ws.dir } });
  assert.equal(again.status, 409);
  assert.equal(again.json().code, 'output-exists');
  assert.equal((await http(server.port, 'POST', `/v1/runs/${id}/resume`)).status, 409, 'a done run does not resume');
});

test('a config the trainer refuses at run time ends in state error with its message, and warnings come back on create', async () => {
  // Longer than the tiny model's context (128): a warning for the editor, an error for the trainer.
  const { id, diagnostics } = await create({ ...SHORT, maxSeqLen: 256 }, './runs/too-long');
  assert.ok(diagnostics.some((d) => d.severity === 'warning' && /max_seq_len/.test(d.message)), JSON.stringify(diagnostics));
  const failed = await waitForState(server.port, id, ['error'], 30_000);
  assert.match(failed.error ?? '', /max_seq_len is 256 but the model's context is 128 tokens/);
  const records = metricsOf(runsDir, id);
  assert.ok(records.some((r) => r.type === 'error' && /context/.test(r.message)));
  assert.equal(records[records.length - 1].type, 'state');
});

test('stop checkpoints and stops; resume continues from that checkpoint to the same losses', async () => {
  const { id } = await create(SHORT, './runs/stopped');
  const stream = sse(server.port, id);
  await stream.waitFor((e) => e.data.type === 'step' && (e.data as { step: number }).step >= 6, 60_000, 'step 6');
  const stop = await http(server.port, 'POST', `/v1/runs/${id}/stop`);
  assert.equal(stop.status, 200, stop.text);
  assert.ok(['stopping', 'stopped'].includes((stop.json() as RunSummary).state));
  const stopped = await waitForState(server.port, id, ['stopped'], 30_000);
  const done = await stream.waitFor((e) => e.data.type === 'done', 5_000, 'done (stopped)');
  assert.equal((done.data as { stopped: boolean }).stopped, true);
  const at = stopped.step;
  assert.ok(at >= 6 && at < SHORT.maxSteps, `stopped at step ${at}`);
  assert.equal(stopped.checkpointStep, at, 'a checkpoint at the step it stopped');
  assert.ok(existsSync(join(ws.dir, 'runs/stopped/checkpoints', `step-${at}`, 'trainer_state.json')));

  assert.equal((await http(server.port, 'POST', `/v1/runs/${id}/resume`)).status, 200);
  await stream.waitFor((e) => e.data.type === 'done' && !(e.data as { stopped: boolean }).stopped, 60_000, 'done after resume');
  await waitForState(server.port, id, ['done'], 5_000);
  stream.close();
  const steps = stepsOf(metricsOf(runsDir, id));
  assert.deepEqual(steps.map((s) => s.step), Array.from({ length: SHORT.maxSteps }, (_, i) => i + 1), 'each step once');
  assert.deepEqual(steps.map((s) => [s.step, s.loss]), losses(reference), 'the same losses as a run never stopped');
});

test('one run trains at a time; the others queue with their position; a queued run can be stopped', async () => {
  const long = await create({ ...SHORT, maxSteps: 40 }, './runs/q1');
  const second = await create(SHORT, './runs/q2');
  const third = await create(SHORT, './runs/q3');
  assert.equal(second.run.state, 'queued');
  assert.equal(second.run.queuePosition, 1);
  assert.equal(third.run.queuePosition, 2);
  const inUse = await http(server.port, 'POST', '/v1/runs', { body: { configText: ws.configText(SHORT, './runs/q2'), baseDir: ws.dir, overwrite: true } });
  assert.equal(inUse.status, 409);
  assert.equal(inUse.json().code, 'output-in-use');
  const list = ((await http(server.port, 'GET', '/v1/runs')).json() as { runs: RunSummary[] }).runs;
  assert.deepEqual(list.filter((r) => r.state === 'training').map((r) => r.id), [long.id]);
  const health = (await http(server.port, 'GET', '/v1/health')).json() as HealthResponse;
  assert.deepEqual(health.runs, { queued: 2, training: long.id });

  // The third hears its position change when the second stops waiting.
  const thirdEvents = sse(server.port, third.id);
  const s = await http(server.port, 'POST', `/v1/runs/${second.id}/stop`);
  assert.equal((s.json() as RunSummary).state, 'stopped');
  await thirdEvents.waitFor((e) => e.data.type === 'state' && (e.data as { queuePosition: number | null }).queuePosition === 1, 5_000, 'position 1');
  assert.equal(((await http(server.port, 'GET', `/v1/runs/${third.id}`)).json() as RunSummary).queuePosition, 1);
  await thirdEvents.waitFor((e) => e.data.type === 'state' && (e.data as { state: string }).state === 'training', 60_000, 'third starts');
  assert.equal(((await http(server.port, 'GET', `/v1/runs/${long.id}`)).json() as RunSummary).state, 'done', 'the third started after the first ended');
  await waitForState(server.port, third.id, ['done'], 60_000);
  thirdEvents.close();
  // A run stopped before it started resumes from scratch.
  assert.equal((await http(server.port, 'POST', `/v1/runs/${second.id}/resume`)).status, 200);
  const resumed = await waitForState(server.port, second.id, ['done', 'error'], 60_000);
  assert.equal(resumed.state, 'done', resumed.error ?? '');
  assert.deepEqual(stepsOf(metricsOf(runsDir, second.id)).map((s) => [s.step, s.loss]), losses(reference));
});

test('a client that reconnects with Last-Event-ID after missing 50 events gets exactly those, in order, then the live tail', async () => {
  const { id } = await create({ maxSteps: 150, saveEvery: 10, evalEvery: 25 }, './runs/replay');
  const all = sse(server.port, id);
  const first = await all.waitFor((e) => e.data.type === 'step' && (e.data as { step: number }).step === 3, 60_000, 'step 3');
  const lastSeen = first.id!;
  // The late client was away while 50 more events happened.
  await all.waitFor((e) => e.id !== null && e.id >= lastSeen + 50, 60_000, '50 more events');
  const seenAtReconnect = all.events.length;
  const late = sse(server.port, id, lastSeen);
  assert.equal(await late.status, 200);
  await all.waitFor((e) => e.data.type === 'state' && (e.data as { state: string }).state === 'done', 60_000, 'run done (first client)');
  await late.waitFor((e) => e.data.type === 'state' && (e.data as { state: string }).state === 'done', 10_000, 'run done (late client)');
  all.close();
  late.close();
  // What each client got, without when it got it.
  const sent = (events: typeof all.events) => events.map(({ id, event, data }) => ({ id, event, data }));
  const expected = sent(all.events.filter((e) => e.id! > lastSeen));
  assert.ok(expected.length >= 50);
  assert.deepEqual(sent(late.events).slice(0, 50), expected.slice(0, 50), 'the 50 missed events, in order');
  assert.deepEqual(sent(late.events), expected, 'then everything after, nothing missing or repeated');
  const tail = all.events.length - seenAtReconnect;
  assert.ok(tail > 20, `the run went on after the reconnect (${tail} live events)`);
  console.log(`# Last-Event-ID ${lastSeen}: ${late.events.length} events replayed and streamed; ${tail} of them arrived live after the reconnect`);
  // Replay of a finished run from any id is the file from that id on.
  const replay = sse(server.port, id, 100);
  await replay.waitFor((e) => e.data.type === 'state' && (e.data as { state: string }).state === 'done', 10_000, 'replayed end');
  replay.close();
  assert.deepEqual(replay.events.map((e) => e.data), metricsOf(runsDir, id).filter((r: RunRecord) => r.id > 100));
});

// The latency itself is a benchmark's figure (test/bench/server.bench.ts); here: every request is answered, correctly, mid-run.
test('health answers every one of 100 requests while a run trains', async () => {
  const { id } = await create({ maxSteps: 5000, saveEvery: 20, evalEvery: 50, maxSeqLen: 64 }, './runs/busy'); // stopped below
  await waitForState(server.port, id, ['training'], 30_000);
  const stream = sse(server.port, id);
  await stream.waitFor((e) => e.data.type === 'step', 60_000, 'first step');
  const times: number[] = [];
  for (let i = 0; i < 100; i++) {
    const t0 = performance.now();
    const r = await http(server.port, 'GET', '/v1/health');
    times.push(performance.now() - t0);
    assert.equal(r.status, 200);
    assert.equal((r.json() as HealthResponse).runs.training, id);
    await new Promise((res) => setTimeout(res, 20)); // spread over steps, evals and checkpoints
  }
  const stepsDuring = stream.events.filter((e) => e.data.type === 'step').length;
  const still = (await http(server.port, 'GET', `/v1/runs/${id}`)).json() as RunSummary;
  assert.equal(still.state, 'training', 'every request was answered while the run trained');
  const sorted = [...times].sort((a, b) => a - b);
  const p50 = sorted[49], p99 = sorted[98];
  console.log(`# health while training: p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms, max ${sorted[99].toFixed(2)} ms over 100 requests (${stepsDuring} steps streamed meanwhile)`);
  const h = (await http(server.port, 'GET', '/v1/health')).json() as HealthResponse;
  assert.ok(h.memory.training && h.memory.training.rssBytes > 0 && h.memory.rssBytes > 0);
  // The training process yields to the editor: below-normal priority (nice 10 on POSIX).
  const worker = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(server.child.pid)], { encoding: 'utf8' })
    .split('\n').find((l) => l.includes('serve --worker'));
  assert.ok(worker, 'the training process is a child of the server');
  assert.equal(getPriority(Number(worker.trim().split(/\s+/)[0])), constants.priority.PRIORITY_BELOW_NORMAL);
  await http(server.port, 'POST', `/v1/runs/${id}/stop`);
  await waitForState(server.port, id, ['stopped'], 30_000);
  stream.close();
});

test('a stop while the model is still loading ends the run at once, as stopped, with nothing written', async () => {
  const { id, run } = await create({ ...SHORT, maxSteps: 50 }, './runs/early-stop');
  // The training process is a fresh Node that must compile and load before it can report
  // its start: a stop sent now always lands before it.
  assert.equal(run.state, 'training');
  const stopped = await http(server.port, 'POST', `/v1/runs/${id}/stop`);
  assert.equal(stopped.status, 200, stopped.text);
  const end = await waitForState(server.port, id, ['stopped', 'error', 'done'], 30_000);
  assert.equal(end.state, 'stopped');
  const records = metricsOf(runsDir, id) as RunRecord[];
  assert.ok(!records.some((r) => r.type === 'step' || r.type === 'start'), 'no step ran');
  assert.ok(records.some((r) => r.type === 'state' && /while the model was loading/.test(r.message ?? '')), JSON.stringify(records.map((r) => r.type)));
  assert.ok(!existsSync(join(end.outputDir, 'checkpoints')) || readdirSync(join(end.outputDir, 'checkpoints')).length === 0);
});
