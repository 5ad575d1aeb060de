// What the training-server tests share: a real `qlora serve` process on loopback (from
// source, through tsx), a small HTTP client that can send any Host header and raw path,
// an SSE reader, and a workspace with a tiny model and data. Every wait is bounded.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../helpers/shared';
import { runConfig, type RunConfigOptions } from '../helpers/runConfig';
import { shipLogs } from '../../server/demo/corpus';
import { writeTinyModel, TINY_MODEL } from '../../server/demo/tinyModel';
import type { RunRecord, RunState, RunSummary } from '../../server/protocol';

export const TOKEN = 'test-token-0123456789abcdef';

export interface ServerProcess {
  port: number;
  child: ChildProcess;
  stderr: () => string;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL the server alone, or its whole process group (with its training process). */
  kill: (signal: NodeJS.Signals, group?: boolean) => void;
}

/** Starts `qlora serve --port 0 --runs-dir DIR` in its own process group and waits for {"port":N}. */
export function startServer(runsDir: string, opts: { token?: string | null; timeoutMs?: number; wrap?: string[] } = {}): Promise<ServerProcess> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (opts.token === null) delete env.QLORA_SERVER_TOKEN;
  else env.QLORA_SERVER_TOKEN = opts.token ?? TOKEN;
  // `wrap` runs it under another command (e.g. `unshare --user`, to be a user without root's read rights).
  const argv = [...(opts.wrap ?? []), process.execPath, '--import', 'tsx', join(projectRoot, 'server/cli.ts'), 'serve', '--port', '0', '--runs-dir', runsDir,
    // Its per-user record beside the runs folder, not in the home folder.
    '--state-file', `${runsDir}.server-state.json`];
  const child = spawn(argv[0], argv.slice(1), {
    cwd: projectRoot, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true,
  });
  let stderr = '', stdout = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.on('exit', (code, signal) => res({ code, signal })));
  const kill = (signal: NodeJS.Signals, group = false) => {
    try {
      if (group) process.kill(-child.pid!, signal); else child.kill(signal);
    } catch { /* already gone */ }
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { kill('SIGKILL', true); reject(new Error(`qlora serve printed no port in time\n${stderr}`)); }, opts.timeoutMs ?? 30_000);
    child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
      const line = stdout.split('\n').find((l) => l.startsWith('{'));
      if (line) {
        clearTimeout(timer);
        resolve({ port: (JSON.parse(line) as { port: number }).port, child, stderr: () => stderr, exited, kill });
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`qlora serve exited (${code ?? signal}) before listening\n${stderr}`));
    });
  });
}

export interface HttpResult { status: number; headers: Record<string, string | string[] | undefined>; text: string; json: () => any }

/** One request; `host` and `path` are sent exactly as given. */
export function http(port: number, method: string, path: string, o: { token?: string | null; authorization?: string; host?: string; body?: string | object; timeoutMs?: number } = {}): Promise<HttpResult> {
  const headers: Record<string, string> = { Host: o.host ?? `127.0.0.1:${port}` };
  if (o.authorization !== undefined) headers.Authorization = o.authorization;
  else if (o.token !== null) headers.Authorization = `Bearer ${o.token ?? TOKEN}`;
  const body = o.body === undefined ? undefined : typeof o.body === 'string' ? o.body : JSON.stringify(o.body);
  if (body !== undefined) { headers['Content-Type'] = 'application/json'; headers['Content-Length'] = String(Buffer.byteLength(body)); }
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, timeout: o.timeoutMs ?? 10_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (s: string) => { text += s; }).on('end', () => {
        resolve({ status: res.statusCode!, headers: res.headers, text, json: () => JSON.parse(text) });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in time`)));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** `receivedAt`: Date.now() when the event's block arrived (its record's `time` is when the trainer wrote it). */
export interface SseEvent { id: number | null; event: string; data: RunRecord; receivedAt: number }

/** An open event stream: what came so far, and bounded waits for more. */
export interface SseStream {
  events: SseEvent[];
  status: Promise<number>;
  waitFor: (pred: (e: SseEvent, all: SseEvent[]) => boolean, timeoutMs: number, what: string) => Promise<SseEvent>;
  close: () => void;
}

export function sse(port: number, id: string, lastEventId?: number): SseStream {
  const events: SseEvent[] = [];
  const waiters = new Set<() => void>();
  let failure: Error | null = null;
  let buf = '';
  let resolveStatus!: (n: number) => void;
  const status = new Promise<number>((r) => { resolveStatus = r; });
  const headers: Record<string, string> = { Host: `127.0.0.1:${port}`, Authorization: `Bearer ${TOKEN}`, Accept: 'text/event-stream' };
  if (lastEventId !== undefined) headers['Last-Event-ID'] = String(lastEventId);
  const req = request({ host: '127.0.0.1', port, path: `/v1/runs/${id}/events`, headers }, (res) => {
    resolveStatus(res.statusCode!);
    res.setEncoding('utf8').on('data', (s: string) => {
      buf += s;
      let end: number;
      while ((end = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, end);
        buf = buf.slice(end + 2);
        let eid: number | null = null, event = 'message', data = '';
        for (const line of block.split('\n')) {
          if (line.startsWith('id: ')) eid = Number(line.slice(4));
          else if (line.startsWith('event: ')) event = line.slice(7);
          else if (line.startsWith('data: ')) data += line.slice(6);
        }
        if (data) events.push({ id: eid, event, data: JSON.parse(data) as RunRecord, receivedAt: Date.now() });
      }
      for (const w of [...waiters]) w();
    });
  });
  req.on('error', (e) => { failure = e; for (const w of [...waiters]) w(); });
  req.end();
  const waitFor: SseStream['waitFor'] = (pred, timeoutMs, what) => new Promise((resolve, reject) => {
    const check = () => {
      const hit = events.find((e) => pred(e, events));
      if (hit) { done(); resolve(hit); } else if (failure) { done(); reject(failure); }
    };
    const timer = setTimeout(() => { done(); reject(new Error(`no ${what} within ${timeoutMs} ms (got ${events.length} events)`)); }, timeoutMs);
    const done = () => { clearTimeout(timer); waiters.delete(check); };
    waiters.add(check);
    check();
  });
  return { events, status, waitFor, close: () => req.destroy() };
}

/** Polls GET /v1/runs/:id until the state is one of `states`. */
export async function waitForState(port: number, id: string, states: RunState[], timeoutMs: number): Promise<RunSummary> {
  const until = Date.now() + timeoutMs;
  let last: RunSummary | undefined;
  while (Date.now() < until) {
    const r = await http(port, 'GET', `/v1/runs/${id}`);
    if (r.status === 200) {
      last = r.json() as RunSummary;
      if (states.includes(last.state)) return last;
    }
    await new Promise((res) => setTimeout(res, 50));
  }
  throw new Error(`run ${id} did not reach ${states.join('|')} within ${timeoutMs} ms (last: ${last?.state} at step ${last?.step})`);
}

export interface Workspace { dir: string; modelDir: string; configText: (o: RunConfigOptions, outputDir?: string) => string }

/** A folder with a tiny llama2.c model and train.jsonl; configs write under ./runs/. */
export function workspace(nLayers = 1): Workspace {
  const dir = mkdtempSync(join(tmpdir(), 'qlora-serve-'));
  const modelDir = join(dir, 'model');
  writeTinyModel(modelDir, shipLogs(200, 1), { ...TINY_MODEL, nLayers });
  writeFileSync(join(dir, 'train.jsonl'), shipLogs(120, 3).map((text) => JSON.stringify({ text })).join('\n') + '\n');
  return {
    dir, modelDir,
    configText: (o, outputDir = './runs/r') => runConfig(modelDir, o).replace('dir: ./runs/r', `dir: ${outputDir}`),
  };
}

/** The records of a run's metrics.jsonl. */
export function metricsOf(runsDir: string, id: string): RunRecord[] {
  return readFileSync(join(runsDir, id, 'metrics.jsonl'), 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as RunRecord);
}

export function stepsOf(records: { type: string }[]): { step: number; loss: number }[] {
  return records.filter((r): r is Extract<RunRecord, { type: 'step' }> => r.type === 'step').map((r) => ({ step: r.step, loss: r.loss }));
}

/** `qlora train --json` on the same config (its own output folder): the events it printed. */
export function trainWithCli(ws: Workspace, o: RunConfigOptions, name: string): { type: string; step?: number; loss?: number; evalLoss?: number }[] {
  const file = join(ws.dir, `${name}.qlora`);
  writeFileSync(file, ws.configText(o, `./runs/${name}`));
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(projectRoot, 'server/cli.ts'), 'train', file, '--json'], {
    cwd: projectRoot, encoding: 'utf8', timeout: 120_000,
  });
  if (r.status !== 0) throw new Error(`qlora train exited ${r.status}: ${r.stderr}`);
  return r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
}
