// The training server as a child process of the extension host: started on demand on
// 127.0.0.1 with a port the OS picks and a bearer token from a crypto RNG (passed in the
// environment, never on the command line), watched with health checks, restarted after a
// crash, and shut down with the window. One function (setHealth) owns the health state
// that the status bar shows. No `vscode` here: the unit tests drive it directly.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { TOKEN_ENV, type HealthResponse, type ServeReady } from '../server/protocol';
import type { ServerHealth } from '../webview/protocol';
import type { NodeRuntime } from './nodeRuntime';
import { ServerClient } from './serverClient';

export type { ServerHealth };

export interface ServerManagerOptions {
  /** The bundled `qlora` command (dist/cli.js). */
  cliPath: string;
  /** Where the server keeps its runs (`qlora serve --runs-dir`). */
  runsDir: string;
  /** Which Node runs it; asked at each start, so a changed setting applies on restart. */
  runtime: () => NodeRuntime;
  /** The server's output and the manager's own notes, one line at a time. */
  log: (line: string) => void;
  /** From spawn to a healthy answer. */
  startTimeoutMs?: number;
  /** Between health checks while ready; three failures in a row count as a crash. */
  healthIntervalMs?: number;
  /** Automatic restarts allowed within restartWindowMs after crashes. */
  maxRestarts?: number;
  restartWindowMs?: number;
  /** SIGTERM lets the running step finish and checkpoint; SIGKILL after this long. */
  stopTimeoutMs?: number;
}

type Listener = (health: ServerHealth, detail: string) => void;

export class ServerManager {
  private healthState: ServerHealth = 'stopped';
  private healthDetail = 'not started';
  private child: ChildProcess | undefined;
  private client: ServerClient | undefined;
  private starting: Promise<ServerClient> | undefined;
  private stopping = false;
  private healthTimer: NodeJS.Timeout | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private failedChecks = 0;
  private crashes: number[] = [];
  private readonly listeners = new Set<Listener>();
  /** The newest health answer, for the status bar's tooltip. */
  lastHealth: HealthResponse | undefined;

  constructor(private readonly options: ServerManagerOptions) {}

  get health(): ServerHealth {
    return this.healthState;
  }
  get detail(): string {
    return this.healthDetail;
  }
  get pid(): number | undefined {
    return this.child?.pid;
  }
  /** The client of the running server, if it is ready. */
  get current(): ServerClient | undefined {
    return this.healthState === 'ready' ? this.client : undefined;
  }

  onDidChangeHealth(listener: Listener): { dispose(): void } {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }

  /** The running server's client, starting the server first if it is not running. */
  ensureStarted(): Promise<ServerClient> {
    if (this.healthState === 'ready' && this.client) return Promise.resolve(this.client);
    if (!this.starting) {
      clearTimeout(this.restartTimer);
      this.stopping = false;
      this.starting = this.launch().finally(() => (this.starting = undefined));
    }
    return this.starting;
  }

  async restart(): Promise<ServerClient> {
    await this.shutdown();
    return this.ensureStarted();
  }

  /** SIGTERM, then SIGKILL after stopTimeoutMs; resolves once the process has exited. */
  async shutdown(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    clearInterval(this.healthTimer);
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) {
      this.setHealth('stopped', 'shut down');
      return;
    }
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timeout = this.options.stopTimeoutMs ?? 10_000;
    const timer = setTimeout(() => {
      this.options.log(`server did not exit ${timeout} ms after SIGTERM: killing it`);
      child.kill('SIGKILL');
    }, timeout);
    await exited;
    clearTimeout(timer);
    this.setHealth('stopped', 'shut down');
  }

  private setHealth(health: ServerHealth, detail: string): void {
    if (health === this.healthState && detail === this.healthDetail) return;
    this.healthState = health;
    this.healthDetail = detail;
    for (const l of this.listeners) l(health, detail);
  }

  private async launch(): Promise<ServerClient> {
    this.setHealth('starting', 'starting the training server');
    const token = randomBytes(32).toString('base64url');
    let runtime: NodeRuntime;
    try {
      runtime = this.options.runtime();
    } catch (e) {
      this.setHealth('error', (e as Error).message);
      throw e;
    }
    await this.reclaimOrphan();
    const args = [this.options.cliPath, 'serve', '--port', '0', '--runs-dir', this.options.runsDir];
    this.options.log(`starting: ${runtime.command} ${args.join(' ')} (node from ${runtime.source})`);
    const child = spawn(runtime.command, args, {
      env: { ...process.env, ...runtime.env, [TOKEN_ENV]: token },
      stdio: ['ignore', 'pipe', 'pipe'],
      windowsHide: true,
    });
    this.child = child;
    this.client = undefined;

    const ready = new Promise<number>((resolve, reject) => {
      let announced = false;
      createInterface({ input: child.stdout! }).on('line', (line) => {
        if (!announced) {
          const port = readyPort(line);
          if (port !== undefined) {
            announced = true;
            return resolve(port);
          }
        }
        this.options.log(line);
      });
      createInterface({ input: child.stderr! }).on('line', (line) => this.options.log(line));
      child.once('error', (e) => reject(new Error(`could not start ${runtime.command}: ${e.message}`)));
      child.once('exit', (code, signal) => reject(new Error(`the server exited during start (${exitText(code, signal)})`)));
    });
    child.on('exit', (code, signal) => this.onExit(child, code, signal));
    try {
      writeFileSync(this.ownerFile, JSON.stringify({ serverPid: child.pid, hostPid: process.pid }) + '\n');
    } catch (e) {
      this.options.log(`could not write ${this.ownerFile}: ${(e as Error).message}`);
    }

    const timeoutMs = this.options.startTimeoutMs ?? 30_000;
    const deadline = Date.now() + timeoutMs;
    try {
      const port = await withTimeout(ready, timeoutMs, 'the server did not report its port');
      const client = new ServerClient({ port, token });
      for (;;) {
        try {
          this.lastHealth = await client.health(2000);
          break;
        } catch (e) {
          if (Date.now() > deadline) throw new Error(`no healthy answer in ${timeoutMs} ms: ${(e as Error).message}`);
          if (child.exitCode !== null || child.signalCode !== null) throw new Error('the server exited during start');
          await delay(100);
        }
      }
      if (this.child !== child) throw new Error('the server was replaced while starting');
      this.client = client;
      this.failedChecks = 0;
      this.setHealth('ready', `listening on 127.0.0.1:${port}, pid ${child.pid}`);
      this.watchHealth(child, client);
      return client;
    } catch (e) {
      if (this.child === child) {
        child.kill('SIGKILL');
        this.setHealth('error', (e as Error).message);
      }
      this.options.log(`start failed: ${(e as Error).message}`);
      throw e;
    }
  }

  /** Who started the server now holding the runs folder: lets a later window tell an orphan. */
  private get ownerFile(): string {
    return `${this.options.runsDir}.owner.json`;
  }

  /**
   * A server whose extension host died without shutting it down (a killed window) still
   * holds the runs folder's lock, and a new server would refuse the folder. Such an
   * orphan is ended first. It is recognised by the owner file this manager writes at each
   * start (its host process is gone), or on Linux by a parent that is gone; a server
   * whose window still lives (another window on the same folder) is left alone, and the
   * new one reports the conflict.
   */
  private async reclaimOrphan(): Promise<void> {
    const holder = readJson(join(this.options.runsDir, 'server.json'));
    const pid = holder?.pid;
    if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 1 || pid === process.pid || !isAlive(pid)) return;
    const owner = readJson(this.ownerFile);
    const proc = processInfo(pid);
    if (proc && !(proc.cmdline.includes('serve') && proc.cmdline.includes(this.options.runsDir))) return; // not ours: a reused pid
    const ownerGone = owner?.serverPid === pid && typeof owner.hostPid === 'number' && !isAlive(owner.hostPid);
    if (!ownerGone && !proc?.parentGone) return;
    this.options.log(`ending an orphaned training server (pid ${pid}) that still holds ${this.options.runsDir}`);
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      return;
    }
    const deadline = Date.now() + (this.options.stopTimeoutMs ?? 10_000);
    while (isAlive(pid)) {
      if (Date.now() > deadline) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
        break;
      }
      await delay(100);
    }
  }

  private watchHealth(child: ChildProcess, client: ServerClient): void {
    clearInterval(this.healthTimer);
    this.healthTimer = setInterval(async () => {
      if (this.child !== child || this.healthState !== 'ready') return;
      try {
        this.lastHealth = await client.health(3000);
        this.failedChecks = 0;
      } catch (e) {
        this.failedChecks++;
        this.options.log(`health check failed (${this.failedChecks}): ${(e as Error).message}`);
        // A server that stopped answering is treated like one that crashed.
        if (this.failedChecks >= 3 && this.child === child) child.kill('SIGKILL');
      }
    }, this.options.healthIntervalMs ?? 10_000);
    this.healthTimer.unref?.();
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child !== child) return;
    clearInterval(this.healthTimer);
    this.client = undefined;
    this.options.log(`server exited (${exitText(code, signal)})`);
    if (this.stopping) return this.setHealth('stopped', 'shut down');
    if (this.healthState !== 'ready') return; // a failed start reports itself
    const now = Date.now();
    const window = this.options.restartWindowMs ?? 60_000;
    this.crashes = this.crashes.filter((t) => now - t < window);
    this.crashes.push(now);
    if (this.crashes.length > (this.options.maxRestarts ?? 3)) {
      this.setHealth('error', `the server crashed ${this.crashes.length} times in ${window / 1000} s (${exitText(code, signal)}); not restarting`);
      return;
    }
    this.setHealth('error', `the server crashed (${exitText(code, signal)}); restarting`);
    this.restartTimer = setTimeout(() => {
      this.ensureStarted().catch(() => {});
    }, 500 * this.crashes.length);
  }
}

/** The port from `qlora serve`'s ready line (`{"port":N}`), if this line is it. */
export function readyPort(line: string): number | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const port = (JSON.parse(line) as Partial<ServeReady>).port;
    return typeof port === 'number' && Number.isInteger(port) && port > 0 && port < 65536 ? port : undefined;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readJson(path: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** Linux only (undefined elsewhere, or when the process is gone): its command line and whether its parent is gone. */
function processInfo(pid: number): { cmdline: string; parentGone: boolean } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The fields after the parenthesised name: state, ppid, ...
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z') return undefined;
    const ppid = Number(fields[1]);
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
    return { cmdline, parentGone: ppid <= 1 || !isAlive(ppid) };
  } catch {
    return undefined;
  }
}

function exitText(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `signal ${signal}` : `code ${code}`;
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${message} in ${ms} ms`)), ms))),
  ]);
}
