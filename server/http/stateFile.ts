// The per-user record of a running training server: pid, port, bearer token and version,
// one file per runs folder, readable by its owner only (it holds the token). The server
// claims the file before it listens (an exclusive create: one server per user and runs
// folder), publishes its port once it listens, and removes the file when it exits. An
// editor window reads it to reconnect, so a reloaded window or a second one reaches the
// same server instead of starting another. A record whose pid is gone is stale and is
// removed by whoever finds it. No `vscode` here: the extension and `qlora serve` share it.
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

export interface ServerRecord {
  pid: number;
  /** null while the server is starting (claimed, not listening yet). */
  port: number | null;
  token: string;
  version: string;
  runsDir: string;
  startedAt: string;
}

/** Owner read/write only: the record holds the bearer token. */
export const RECORD_MODE = 0o600;

/** The per-user folder of server records: $XDG_STATE_HOME/qlora-studio, else ~/.local/state/qlora-studio. */
export function stateDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_STATE_HOME && env.XDG_STATE_HOME.startsWith('/') ? env.XDG_STATE_HOME : join(homedir(), '.local', 'state');
  return join(base, 'qlora-studio');
}

/** The record of the server for `runsDir`: one per user and runs folder. */
export function stateFileFor(runsDir: string, dir = stateDir()): string {
  const key = createHash('sha256').update(resolve(runsDir)).digest('hex').slice(0, 16);
  return join(dir, `server-${key}.json`);
}

/** The server's own output (it runs detached, with no terminal to write to). */
export function logFileFor(stateFile: string): string {
  return stateFile.replace(/\.json$/, '') + '.log';
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The record at `path`, or undefined when there is none or it is unreadable. */
export function readRecord(path: string): ServerRecord | undefined {
  let r: Partial<ServerRecord>;
  try {
    r = JSON.parse(readFileSync(path, 'utf8')) as Partial<ServerRecord>;
  } catch {
    return undefined;
  }
  if (typeof r.pid !== 'number' || !Number.isInteger(r.pid) || r.pid <= 0 || typeof r.token !== 'string') return undefined;
  if (r.port !== null && !(typeof r.port === 'number' && Number.isInteger(r.port) && r.port > 0 && r.port < 65536)) return undefined;
  return r as ServerRecord;
}

/** Removes a record whose process is gone; returns the pid it named, if it removed one. */
export function removeStale(path: string): number | undefined {
  const r = readRecord(path);
  if (r && isAlive(r.pid)) return undefined;
  const text = tryRead(path);
  if (text === undefined) return undefined;
  if (r) {
    // Remove only what was read: a server that claimed the file meanwhile keeps its record.
    if (tryRead(path) !== text) return undefined;
    rmSync(path, { force: true });
    return r.pid;
  }
  // Unreadable: a claim between its create and its write, or one cut short long ago.
  if (Date.now() - mtimeMs(path) >= UNREADABLE_GRACE_MS) rmSync(path, { force: true });
  return undefined;
}

export class ServerRunningError extends Error {
  constructor(readonly record: ServerRecord, path: string) {
    super(`another qlora server (pid ${record.pid}${record.port ? `, port ${record.port}` : ''}) already serves ${record.runsDir} (${path})`);
  }
}

/**
 * Claims the record for this process: an exclusive create, so that of two servers
 * started at once for the same runs folder exactly one goes on. A stale record is
 * removed first; a live one is a ServerRunningError.
 */
export function claimRecord(path: string, record: ServerRecord): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const until = Date.now() + 5000;
  for (;;) {
    let fd: number;
    try {
      fd = openSync(path, 'wx', RECORD_MODE);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const holder = readRecord(path);
      if (holder && holder.pid !== process.pid && isAlive(holder.pid)) throw new ServerRunningError(holder, path);
      if (!holder && Date.now() - mtimeMs(path) < UNREADABLE_GRACE_MS && Date.now() < until) {
        sleepSync(20); // another server is between its create and its write
        continue;
      }
      if (holder?.pid === process.pid || !holder) rmSync(path, { force: true });
      else removeStale(path);
      if (Date.now() > until) throw new Error(`could not claim ${path}: it keeps reappearing`);
      continue;
    }
    try {
      writeSync(fd, JSON.stringify(record) + '\n');
    } finally {
      closeSync(fd);
    }
    return;
  }
}

/** An unreadable record this young may be a claim between its create and its write. */
const UNREADABLE_GRACE_MS = 2000;

function mtimeMs(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Replaces the record atomically (a 0600 temporary file, then a rename), e.g. once the port is known. */
export function publishRecord(path: string, record: ServerRecord): void {
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', RECORD_MODE);
  try {
    writeSync(fd, JSON.stringify(record) + '\n');
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/** Removes the record if it is still this pid's (never another server's). */
export function releaseRecord(path: string, pid = process.pid): void {
  if (readRecord(path)?.pid === pid) rmSync(path, { force: true });
}

function tryRead(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}
