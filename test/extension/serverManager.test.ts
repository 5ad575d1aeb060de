// The server manager against a stand-in server (spawn, token, health, crash and restart,
// shutdown, failures, the per-user state file: reconnecting, sharing, stale records) and
// against the real `qlora serve` from dist/ when it is built.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { readyPort, ServerManager, type ServerHealth, type ServerManagerOptions } from '../../extension/serverManager';
import { ServerClient, ServerError } from '../../extension/serverClient';
import type { NodeRuntime } from '../../extension/nodeRuntime';
import { RunStream } from '../../extension/runStream';
import type { RunRecord } from '../../server/protocol';
import { configText, RIGHT_VALUE, writeWorkspace } from '../e2e/fixture';

const root = join(__dirname, '..', '..');
const fake = join(__dirname, 'fixtures', 'fakeServer.mjs');
// Runs folders live one level down, so that the manager's owner file beside them is cleaned up too.
const base = mkdtempSync(join(tmpdir(), 'qlora-manager-'));
const runsDir = join(base, 'runs');
const stateDir = join(base, 'state');
const managers: ServerManager[] = [];
let nextState = 0;
/** A state file of its own per test, unless one is named (windows sharing a server). */
const freshStateFile = () => join(stateDir, `server-${++nextState}.json`);
// A failed assertion must not leave a server running (nor keep this process alive).
after(async () => {
  await Promise.all(managers.map((m) => m.shutdown()));
  rmSync(base, { recursive: true, force: true });
});

function manager(env: Record<string, string> = {}, options: Partial<ServerManagerOptions> = {}) {
  const log: string[] = [];
  const health: ServerHealth[] = [];
  const runtime = (): NodeRuntime => ({ command: process.execPath, env, source: 'setting' });
  const m = new ServerManager({
    cliPath: fake, runsDir, runtime, log: (l) => log.push(l), startTimeoutMs: 10_000, stateFile: freshStateFile(), ...options,
  });
  m.onDidChangeHealth((h) => health.push(h));
  managers.push(m);
  return { m, log, health };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('server manager', () => {
  test('readyPort reads only the ready line', () => {
    assert.equal(readyPort('{"port":4123}'), 4123);
    assert.equal(readyPort('{"port":0}'), undefined);
    assert.equal(readyPort('{"port":"80"}'), undefined);
    assert.equal(readyPort('listening on 4123'), undefined);
    assert.equal(readyPort('{not json'), undefined);
  });

  test('spawns on demand with a crypto token in the environment, and is healthy', async () => {
    const { m, log, health } = manager();
    assert.equal(m.health, 'stopped');
    const client = await m.ensureStarted();
    assert.equal(m.health, 'ready');
    assert.deepEqual(health, ['starting', 'ready']);
    // Concurrent callers share the running server.
    assert.equal(await m.ensureStarted(), client);
    const h = (await client.health()) as unknown as { argv: string[]; pid: number };
    assert.equal(h.pid, m.pid);
    // The token is never on the command line, and it is long and random.
    assert.ok(!h.argv.join(' ').includes(client.endpoint.token));
    assert.ok(client.endpoint.token.length >= 40, 'a 32-byte token');
    assert.deepEqual(h.argv.slice(2), ['serve', '--port', '0', '--runs-dir', runsDir, '--state-file', m.stateFile]);
    // Without the token the server answers 401: the manager's token is the one it checks.
    await assert.rejects(new ServerClient({ port: client.endpoint.port, token: 'x'.repeat(43) }).health(), (e: ServerError) => e.status === 401);
    // Lines before the port (stderr) and after it (stdout) reach the log.
    await until('log lines', () => log.includes('fake: listening'));
    assert.ok(log.includes('fake: a log line before the port'));
    await m.shutdown();
  });

  test('each server gets its own token', async () => {
    const a = manager();
    const b = manager();
    const [ca, cb] = await Promise.all([a.m.ensureStarted(), b.m.ensureStarted()]);
    assert.notEqual(ca.endpoint.token, cb.endpoint.token);
    assert.notEqual(ca.endpoint.port, cb.endpoint.port);
    await Promise.all([a.m.shutdown(), b.m.shutdown()]);
  });

  test('the state file: pid, port, token and version, readable by its owner only (0600)', async () => {
    const { m } = manager();
    const client = await m.ensureStarted();
    const record = JSON.parse(readFileSync(m.stateFile, 'utf8'));
    assert.equal(record.pid, m.pid);
    assert.equal(record.port, client.endpoint.port);
    assert.equal(record.token, client.endpoint.token);
    assert.equal(typeof record.version, 'string');
    assert.equal(statSync(m.stateFile).mode & 0o777, 0o600);
    await m.shutdown();
    assert.ok(!existsSync(m.stateFile), 'a server that stops removes its record');
  });

  test('two windows share one server: the second reconnects, even when both start at once', async () => {
    const shared = freshStateFile();
    const a = manager({}, { stateFile: shared });
    const b = manager({}, { stateFile: shared });
    const [ca, cb] = await Promise.all([a.m.ensureStarted(), b.m.ensureStarted()]);
    assert.equal(a.m.pid, b.m.pid);
    assert.equal(ca.endpoint.port, cb.endpoint.port);
    assert.equal(ca.endpoint.token, cb.endpoint.token);
    // A third window, later, finds it through the record.
    const c = manager({}, { stateFile: shared });
    await c.m.ensureStarted();
    assert.equal(c.m.pid, a.m.pid);
    assert.ok(c.m.reconnected);
    assert.ok(c.log.some((l) => l.startsWith(`reconnected to the training server (pid ${a.m.pid}`)));
    // Stopping it from one window: the others see it stopped (not crashed) and do not restart it.
    await a.m.shutdown();
    await until('the other windows see it stopped', () => b.m.health === 'stopped' && c.m.health === 'stopped');
    await new Promise((r) => setTimeout(r, 700));
    assert.equal(c.m.health, 'stopped');
    assert.ok(!existsSync(shared));
  });

  test('a window that closes leaves the server running; the next window reconnects to it', async () => {
    const shared = freshStateFile();
    const first = manager({}, { stateFile: shared });
    const client = await first.m.ensureStarted();
    const pid = first.m.pid!;
    first.m.dispose();
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(alive(pid), 'the server outlives the window');
    const second = manager({}, { stateFile: shared });
    const again = await second.m.ensureStarted();
    assert.equal(second.m.pid, pid);
    assert.equal(again.endpoint.token, client.endpoint.token);
    assert.equal((await again.health()).pid, pid);
    // A reconnected window notices a crash too (no exit event: the pid is watched) and restarts it.
    process.kill(pid, 'SIGKILL');
    await until('restarted', () => second.m.health === 'ready' && second.m.pid !== pid);
    await second.m.shutdown();
  });

  test('a stale record (its pid is gone) is removed and a new server starts', async () => {
    const stale = freshStateFile();
    mkdirSync(stateDir, { recursive: true });
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const deadPid = Number(dead.stdout);
    writeFileSync(stale, JSON.stringify({ pid: deadPid, port: 1, token: 't'.repeat(43), version: 'old', runsDir, startedAt: '' }), { mode: 0o600 });
    const { m, log } = manager({}, { stateFile: stale });
    await m.ensureStarted();
    assert.notEqual(m.pid, deadPid);
    assert.ok(log.some((l) => l.includes(`stale record of a server that is gone (pid ${deadPid})`)));
    assert.equal(JSON.parse(readFileSync(stale, 'utf8')).pid, m.pid);
    await m.shutdown();
  });

  test('restarts after a crash, on a new port, and serves again', async () => {
    const { m, health, log } = manager();
    const first = await m.ensureStarted();
    const pid = m.pid!;
    process.kill(pid, 'SIGKILL');
    await until('error after the crash', () => health.includes('error'));
    assert.ok(log.some((l) => l.includes('server exited (signal SIGKILL)')));
    await until('ready again', () => m.health === 'ready' && m.pid !== pid);
    assert.deepEqual(health, ['starting', 'ready', 'error', 'starting', 'ready']);
    const second = await m.ensureStarted();
    assert.notEqual(second, first);
    assert.equal(((await second.health()) as { pid: number }).pid, m.pid);
    await m.shutdown();
  });

  test('gives up after too many crashes in a short time', async () => {
    const { m } = manager({}, { maxRestarts: 1, restartWindowMs: 60_000 });
    try {
      await m.ensureStarted();
      const first = m.pid!;
      process.kill(first, 'SIGKILL');
      await until('restarted once', () => m.health === 'ready' && m.pid !== first);
      const second = m.pid!;
      process.kill(second, 'SIGKILL');
      await until('an error that stays', () => m.health === 'error' && m.detail.includes('not restarting'));
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(m.health, 'error');
      assert.equal(m.pid, undefined, 'no server was started since');
      // A user action starts it again.
      await m.ensureStarted();
      assert.equal(m.health, 'ready');
    } finally {
      await m.shutdown();
    }
  });

  test('a server that stops answering health checks is killed and restarted', async () => {
    const { m, log } = manager({}, { healthIntervalMs: 100 });
    await m.ensureStarted();
    const pid = m.pid!;
    // Freeze it: the process lives but answers nothing.
    process.kill(pid, 'SIGSTOP');
    await until('restarted', () => m.health === 'ready' && m.pid !== pid, 20_000);
    assert.ok(log.some((l) => l.startsWith('health check failed (3)')));
    assert.ok(!alive(pid));
    await m.shutdown();
  });

  test('shutdown: SIGTERM, and the process is gone', async () => {
    const { m, log } = manager();
    await m.ensureStarted();
    const pid = m.pid!;
    await m.shutdown();
    assert.equal(m.health, 'stopped');
    assert.ok(!alive(pid));
    assert.ok(log.includes('fake: SIGTERM'));
    // No restart follows a requested shutdown.
    await new Promise((r) => setTimeout(r, 700));
    assert.equal(m.health, 'stopped');
  });

  test('shutdown: SIGKILL when SIGTERM is ignored', async () => {
    const { m, log } = manager({ FAKE_IGNORE_SIGTERM: '1' }, { stopTimeoutMs: 300 });
    await m.ensureStarted();
    const pid = m.pid!;
    const t0 = Date.now();
    await m.shutdown();
    assert.ok(Date.now() - t0 >= 250);
    assert.ok(!alive(pid));
    assert.ok(log.some((l) => l.includes('killing it')));
  });

  test('a server that fails to start reports an error and is not restarted in a loop', async () => {
    const { m, health } = manager({ FAKE_EXIT_BEFORE_READY: '1' });
    await assert.rejects(m.ensureStarted(), /exited during start/);
    assert.equal(m.health, 'error');
    await new Promise((r) => setTimeout(r, 700));
    assert.deepEqual(health, ['starting', 'error']);
  });

  test('a missing runtime is an error, not a hang', async () => {
    const log: string[] = [];
    const m = new ServerManager({
      cliPath: fake, runsDir, log: (l) => log.push(l), stateFile: freshStateFile(),
      runtime: () => ({ command: join(runsDir, 'no-such-node'), env: {}, source: 'setting' }),
    });
    await assert.rejects(m.ensureStarted(), /could not start|exited during start/);
    assert.equal(m.health, 'error');
  });

  test('no healthy answer within the start timeout is an error', async () => {
    const { m } = manager({ FAKE_HANG_HEALTH: '1' }, { startTimeoutMs: 1500 });
    await assert.rejects(m.ensureStarted(), /no healthy answer/);
    assert.equal(m.health, 'error');
  });
});

const cli = join(root, 'dist', 'cli.js');
describe('server manager with the real qlora serve', { skip: existsSync(cli) ? false : 'dist/cli.js is not built (npm run build)' }, () => {
  test('starts, answers health, and exits on shutdown', async () => {
    const dir = join(base, 'real');
    const log: string[] = [];
    const m = new ServerManager({
      cliPath: cli, runsDir: dir, log: (l) => log.push(l), stateFile: freshStateFile(),
      runtime: () => ({ command: process.execPath, env: {}, source: 'setting' }),
    });
    try {
      const client = await m.ensureStarted();
      const h = await client.health();
      assert.equal(statSync(m.stateFile).mode & 0o777, 0o600);
      assert.equal(JSON.parse(readFileSync(m.stateFile, 'utf8')).token, client.endpoint.token);
      assert.equal(h.ok, true);
      assert.equal(h.pid, m.pid);
      const pid = m.pid!;
      // The server holds a lock in its runs folder while it runs and removes it on a clean exit.
      assert.ok(existsSync(join(dir, 'server.json')));
      assert.equal(JSON.parse(readFileSync(join(dir, 'server.json'), 'utf8')).pid, pid);
      await m.shutdown();
      assert.ok(!alive(pid));
      assert.ok(!existsSync(join(dir, 'server.json')));
      assert.ok(!existsSync(m.stateFile));
    } finally {
      await m.shutdown();
    }
  });

  test('stops by itself when idle (--idle-timeout), removing its record', async () => {
    const m = new ServerManager({
      cliPath: cli, runsDir: join(base, 'idle'), log: () => {}, stateFile: freshStateFile(), idleTimeoutMs: () => 1000,
      runtime: () => ({ command: process.execPath, env: {}, source: 'setting' }),
    });
    try {
      await m.ensureStarted();
      const pid = m.pid!;
      await until('the idle server to go', () => !alive(pid), 15_000);
      assert.ok(!existsSync(m.stateFile));
      await until('the window to see it stopped', () => m.health === 'stopped');
    } finally {
      await m.shutdown();
    }
  });

  test('one server per user and runs folder: a second qlora serve is refused while the first lives', async () => {
    const dir = join(base, 'single');
    const state = freshStateFile();
    const m = new ServerManager({
      cliPath: cli, runsDir: dir, log: () => {}, stateFile: state, runtime: () => ({ command: process.execPath, env: {}, source: 'setting' }),
    });
    try {
      await m.ensureStarted();
      const r = spawnSync(process.execPath, [cli, 'serve', '--port', '0', '--runs-dir', dir, '--state-file', state], {
        env: { ...process.env, QLORA_SERVER_TOKEN: 'o'.repeat(43) }, encoding: 'utf8', timeout: 20_000,
      });
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, new RegExp(`another qlora server \\(pid ${m.pid}`));
      assert.equal(JSON.parse(readFileSync(state, 'utf8')).pid, m.pid, 'the first keeps its record');
    } finally {
      await m.shutdown();
    }
  });

  test('the event stream of a run survives a server crash: Last-Event-ID resumes it without gaps or repeats', async () => {
    const ws = mkdtempSync(join(tmpdir(), 'qlora-stream-'));
    writeWorkspace(ws);
    const m = new ServerManager({
      cliPath: cli, runsDir: join(ws, '.runs'), log: () => {}, stateFile: freshStateFile(),
      runtime: () => ({ command: process.execPath, env: {}, source: 'setting' }),
    });
    const streams: RunStream[] = [];
    try {
      const client = await m.ensureStarted();
      const { id } = await client.createRun({ configText: configText(RIGHT_VALUE), baseDir: ws, configFile: join(ws, 'train.qlora') });
      const live: RunRecord[] = [];
      streams.push(new RunStream({ runId: id, client: () => m.ensureStarted(), onRecord: (rec) => live.push(rec), retryMs: 100 }));
      await until('8 steps', () => live.filter((x) => x.type === 'step').length >= 8, 60_000);
      const pid = m.pid!;
      process.kill(pid, 'SIGKILL');
      // The manager restarts the server; the server marks the run interrupted; the stream reconnects.
      await until('the interrupted state after the restart', () => live.some((x) => x.type === 'state' && x.state === 'interrupted'), 30_000);
      assert.notEqual(m.pid, pid);
      const ids = live.map((x) => x.id);
      for (let i = 1; i < ids.length; i++) assert.ok(ids[i] > ids[i - 1], `ids increase: ${ids[i - 1]} then ${ids[i]}`);
      // What the stream delivered across the crash is the run's whole history, as a fresh reader sees it.
      const fresh: RunRecord[] = [];
      streams.push(new RunStream({ runId: id, client: () => m.ensureStarted(), onRecord: (rec) => fresh.push(rec) }));
      await until('the full replay', () => fresh.length >= live.length && fresh.at(-1)!.id >= live.at(-1)!.id, 10_000);
      assert.deepEqual(fresh.map((x) => x.id), ids);
    } finally {
      streams.forEach((x) => x.dispose());
      await m.shutdown();
      rmSync(ws, { recursive: true, force: true });
    }
  });
});
