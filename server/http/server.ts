// Starts the training server: checks the token, takes the runs folder (one server per
// folder), reloads its runs, and listens on 127.0.0.1 only.
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import pkg from '../../package.json';
import { MIN_TOKEN_LENGTH, TOKEN_ENV } from '../protocol';
import { createApp } from './app';
import { RunManager } from './runManager';
import { forkWorker, type SpawnWorker } from './trainingProcess';

export interface ServerOptions {
  /** 0 picks a free port. */
  port: number;
  runsDir: string;
  token: string | undefined;
  /** Starts a training process; by default this program again as `qlora serve --worker`. */
  spawnWorker?: SpawnWorker;
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
  takeLock(runsDir);
  await manager.init();

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

  let closing: Promise<void> | undefined;
  return {
    port,
    shutdown: () => (closing ??= (async () => {
      await manager.shutdown();
      for (const end of [...streams]) end();
      await new Promise<void>((res) => { server.close(() => res()); server.closeAllConnections(); });
      rmSync(join(runsDir, LOCK_FILE), { force: true });
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
