// Starts the training server: checks the token, takes the runs folder (one server per
// folder), reloads its runs, and listens on 127.0.0.1 only.
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import pkg from '../../package.json';
import { MIN_TOKEN_LENGTH, TOKEN_ENV } from '../protocol';
import { createApp } from './app';
import { RunManager } from './runManager';
import { claimRecord, publishRecord, releaseRecord, type ServerRecord } from './stateFile';
import { forkWorker, type SpawnWorker } from './trainingProcess';

export interface ServerOptions {
  /** 0 picks a free port. */
  port: number;
  runsDir: string;
  token: string | undefined;
  /** Starts a training process; by default this program again as `qlora serve --worker`. */
  spawnWorker?: SpawnWorker;
  /** The per-user record (stateFile.ts) that lets editor windows find this server; none when omitted. */
  stateFile?: string;
  /** With no run queued or training and no event stream open for this long, onIdle is called; 0 or absent: never. */
  idleTimeoutMs?: number;
  onIdle?: () => void;
}

export interface RunningServer {
  port: number;
  /** Stops taking runs, lets a training run checkpoint and stop, then closes every connection. */
  shutdown(): Promise<void>;
}

const LOCK_FILE = 'server.json';

export async function startServer(o: ServerOptions): Promise<RunningServer> {
  const token = o.token ?? '';
  if (!token) throw new Error(`${TOKEN_ENV} is not set: the server needs a bearer token and will not start without one`);
  if (token.length < MIN_TOKEN_LENGTH) throw new Error(`${TOKEN_ENV} is too short (at least ${MIN_TOKEN_LENGTH} characters)`);
  const runsDir = resolve(o.runsDir);
  const manager = new RunManager({ runsDir, spawnWorker: o.spawnWorker ?? forkWorker });
  const record: ServerRecord = { pid: process.pid, port: null, token, version: pkg.version, runsDir, startedAt: new Date().toISOString() };
  if (o.stateFile) claimRecord(o.stateFile, record);
  try {
    takeLock(runsDir);
    await manager.init();
  } catch (e) {
    if (o.stateFile) releaseRecord(o.stateFile);
    throw e;
  }

  let port = 0;
  const streams = new Set<() => void>();
  const app = createApp({
    token, port: () => port, manager, version: pkg.version,
    trackStream: (end) => { streams.add(end); return () => streams.delete(end); },
  });
  const server = await new Promise<ReturnType<typeof app.listen>>((res, rej) => {
    const s = app.listen(o.port, '127.0.0.1', (err?: Error) => (err ? rej(err) : res(s)));
    s.once('error', rej);
  });
  port = (server.address() as AddressInfo).port;
  writeFileSync(join(runsDir, LOCK_FILE), JSON.stringify({ pid: process.pid, port }) + '\n');
  if (o.stateFile) publishRecord(o.stateFile, { ...record, port });

  // Idle: nothing to train and nobody watching. Checked on a timer rather than on every
  // event, so a run queued right after another ends never sees the server go.
  let idleSince = Date.now();
  const idleTimer = o.idleTimeoutMs && o.onIdle ? setInterval(() => {
    const h = manager.health();
    if (h.training || h.queued > 0 || streams.size > 0) idleSince = Date.now();
    else if (Date.now() - idleSince >= o.idleTimeoutMs!) { clearInterval(idleTimer); o.onIdle!(); }
  }, Math.min(1000, o.idleTimeoutMs)) : undefined;
  idleTimer?.unref();

  let closing: Promise<void> | undefined;
  return {
    port,
    shutdown: () => (closing ??= (async () => {
      clearInterval(idleTimer);
      await manager.shutdown();
      for (const end of [...streams]) end();
      await new Promise<void>((res) => { server.close(() => res()); server.closeAllConnections(); });
      rmSync(join(runsDir, LOCK_FILE), { force: true });
      if (o.stateFile) releaseRecord(o.stateFile);
    })()),
  };
}

/** Refuses a runs folder that a live server already manages. */
function takeLock(runsDir: string): void {
  const path = join(runsDir, LOCK_FILE);
  if (!existsSync(path)) return;
  let holder: { pid?: number; port?: number } = {};
  try {
    holder = JSON.parse(readFileSync(path, 'utf8')) as typeof holder;
  } catch {
    return;
  }
  if (!holder.pid || holder.pid === process.pid) return;
  try {
    process.kill(holder.pid, 0);
  } catch {
    return; // the holder died without cleaning up
  }
  throw new Error(`another qlora server (pid ${holder.pid}, port ${holder.port}) is using ${runsDir}; ` +
    `stop it, or delete ${path} if that process is not a qlora server`);
}
