// The training server as seen from one editor window. The server outlives the window: it
// runs detached (its own process group, its output in a log file, not in pipes that die
// with the extension host) and records itself (pid, port, token, version) in a per-user
// state file, one per runs folder (server/http/stateFile.ts). On demand this manager
// reconnects to the server that file names, or starts one with a port the OS picks and a
// bearer token from a crypto RNG (passed in the environment, never on the command line);
// it watches it with health checks and restarts it after a crash. A window that closes
// leaves the server running (a reload, a closed tab or a second window never interrupts
// a run); the server stops when asked (shutdown) or by itself when idle. One function
// (setHealth) owns the health state that the status bar shows. No `vscode` here: the
// unit tests drive it directly.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { TOKEN_ENV, type HealthResponse, type ServeReady } from '../server/protocol';
import { isAlive, logFileFor, readRecord, removeStale, stateFileFor, type ServerRecord } from '../server/http/stateFile';
import type { ServerHealth } from '../webview/protocol';
import type { NodeRuntime } from './nodeRuntime';
import { ServerClient } from './serverClient';

export type { ServerHealth };

export interface ServerManagerOptions {
  /** The bundled `qlora` command (dist/cli.js). */
  cliPath: string;
  /** Where the server keeps its runs (`qlora serve --runs-dir`). */
  runsDir: string;
  /** The server's per-user record; by default the one stateFile.ts names for runsDir. */
  stateFile?: string;
  /** Which Node runs it; asked at each start, so a changed setting applies on restart. */
  runtime: () => NodeRuntime;
  /** The server's output and the manager's own notes, one line at a time. */
  log: (line: string) => void;
  /** The server stops by itself after this long with no runs and no window watching (`--idle-timeout`); 0: never. */
  idleTimeoutMs?: () => number;
  /** From spawn (or from finding a server that is starting) to a healthy answer. */
  startTimeoutMs?: number;
  /** Between health checks while ready; three failures in a row count as a crash. */
  healthIntervalMs?: number;
  /** Between checks that the server's process still lives (cheap: a signal 0). */
  livenessIntervalMs?: number;
  /** Automatic restarts allowed within restartWindowMs after crashes. */
  maxRestarts?: number;
  restartWindowMs?: number;
  /** SIGTERM lets the running step finish and checkpoint; SIGKILL after this long. */
  stopTimeoutMs?: number;
}

type Listener = (health: ServerHealth, detail: string) => void;

/** The server this window talks to: one it started (child) or one it found (reconnected). */
interface Attached {
  pid: number;
  client: ServerClient;
  child?: ChildProcess;
}

export class ServerManager {
  private healthState: ServerHealth = 'stopped';
  private healthDetail = 'not started';
  private attached: Attached | undefined;
  private starting: Promise<ServerClient> | undefined;
  private stopping = false;
  private healthTimer: NodeJS.Timeout | undefined;
  private livenessTimer: NodeJS.Timeout | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private failedChecks = 0;
  private crashes: number[] = [];
  private readonly listeners = new Set<Listener>();
  private readonly tail: LogTail;
  readonly stateFile: string;
  readonly logFile: string;
  /** The newest health answer, for the status bar's tooltip. */
  lastHealth: HealthResponse | undefined;

  constructor(private readonly options: ServerManagerOptions) {
    this.stateFile = options.stateFile ?? stateFileFor(options.runsDir);
    this.logFile = logFileFor(this.stateFile);
    this.tail = new LogTail(this.logFile, options.log);
  }

  get health(): ServerHealth {
    return this.healthState;
  }
  get detail(): string {
    return this.healthDetail;
  }
  /** The server's pid (started by this window or found running). */
  get pid(): number | undefined {
    return this.attached?.pid;
  }
  /** Whether this window found the server already running rather than starting it. */
  get reconnected(): boolean {
    return !!this.attached && !this.attached.child;
  }
  /** The client of the running server, if it is ready. */
  get current(): ServerClient | undefined {
    return this.healthState === 'ready' ? this.attached?.client : undefined;
  }

  onDidChangeHealth(listener: Listener): { dispose(): void } {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }

  /** The running server's client: the one the state file names if it answers, else a new server. */
  ensureStarted(): Promise<ServerClient> {
    if (this.healthState === 'ready' && this.attached) return Promise.resolve(this.attached.client);
    if (!this.starting) {
      clearTimeout(this.restartTimer);
      this.stopping = false;
      this.starting = this.connectOrLaunch().finally(() => (this.starting = undefined));
    }
    return this.starting;
  }

  async restart(): Promise<ServerClient> {
    await this.shutdown();
    return this.ensureStarted();
  }

  /**
   * Stops the server (whoever started it): SIGTERM, so a training run checkpoints and
   * becomes interrupted, then SIGKILL after stopTimeoutMs. Resolves once it has exited.
   * Every window on the same runs folder loses it; each starts a new one on demand.
   */
  async shutdown(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    this.unwatch();
    const pid = this.attached?.pid ?? this.recordedPid();
    if (pid === undefined || !isAlive(pid)) {
      this.attached = undefined;
      this.setHealth('stopped', 'shut down');
      return;
    }
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // gone meanwhile
    }
    const timeout = this.options.stopTimeoutMs ?? 10_000;
    const deadline = Date.now() + timeout;
    let killed = false;
    while (isAlive(pid) && !this.reaped(pid)) {
      if (!killed && Date.now() > deadline) {
        this.options.log(`server did not exit ${timeout} ms after SIGTERM: killing it`);
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
        killed = true;
      }
      await delay(50);
    }
    removeStale(this.stateFile);
    this.attached = undefined;
    this.tail.stop();
    this.setHealth('stopped', 'shut down');
  }

  /** The window goes; the server stays (it stops by itself when idle). */
  dispose(): void {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    this.unwatch();
    this.tail.stop();
    this.attached?.child?.unref();
  }

  private setHealth(health: ServerHealth, detail: string): void {
    if (health === this.healthState && detail === this.healthDetail) return;
    this.healthState = health;
    this.healthDetail = detail;
    for (const l of this.listeners) l(health, detail);
  }

  private recordedPid(): number | undefined {
    return readRecord(this.stateFile)?.pid;
  }

  /** A child of ours that has exited is a zombie until Node reaps it: signal 0 still reaches it. */
  private reaped(pid: number): boolean {
    const child = this.attached?.child;
    return !!child && child.pid === pid && (child.exitCode !== null || child.signalCode !== null);
  }

  private async connectOrLaunch(): Promise<ServerClient> {
    this.setHealth('starting', 'starting the training server');
    const timeoutMs = this.options.startTimeoutMs ?? 30_000;
    const deadline = Date.now() + timeoutMs;
    try {
      const found = await this.connectRecorded(deadline);
      if (found) return found;
      return await this.launch(deadline, timeoutMs);
    } catch (e) {
      this.setHealth('error', (e as Error).message);
      this.options.log(`start failed: ${(e as Error).message}`);
      throw e;
    }
  }

  /**
   * The server the state file names, once it answers; undefined when there is none (a
   * stale record, whose process is gone, is removed). A server that is starting (claimed,
   * no port yet) is waited for, up to the deadline.
   */
  private async connectRecorded(deadline: number): Promise<ServerClient | undefined> {
    for (;;) {
      const record = readRecord(this.stateFile);
      if (!record) return undefined;
      if (!isAlive(record.pid)) {
        if (removeStale(this.stateFile) !== undefined) this.options.log(`removed the stale record of a server that is gone (pid ${record.pid})`);
        return undefined;
      }
      if (record.port !== null) {
        const client = new ServerClient({ port: record.port, token: record.token });
        try {
          this.lastHealth = await client.health(2000);
          if (this.lastHealth.pid !== record.pid) throw new Error(`port ${record.port} is answered by pid ${this.lastHealth.pid}, not ${record.pid}`);
          this.attach({ pid: record.pid, client }, record, 'reconnected');
          return client;
        } catch (e) {
          if (Date.now() > deadline) throw new Error(`the training server (pid ${record.pid}, ${this.stateFile}) does not answer: ${(e as Error).message}`);
        }
      } else if (Date.now() > deadline) {
        throw new Error(`the training server (pid ${record.pid}) did not finish starting`);
      }
      await delay(100);
    }
  }

  private async launch(deadline: number, timeoutMs: number): Promise<ServerClient> {
    const token = randomBytes(32).toString('base64url');
    const runtime = this.options.runtime();
    const idleMs = this.options.idleTimeoutMs?.() ?? 0;
    const args = [this.options.cliPath, 'serve', '--port', '0', '--runs-dir', this.options.runsDir, '--state-file', this.stateFile];
    if (idleMs > 0) args.push('--idle-timeout', String(Math.max(1, Math.round(idleMs / 1000))));
    this.options.log(`starting: ${runtime.command} ${args.join(' ')} (node from ${runtime.source}); its output: ${this.logFile}`);
    mkdirSync(dirname(this.logFile), { recursive: true, mode: 0o700 });
    this.tail.start();
    const out = openSync(this.logFile, 'a', 0o600);
    let child: ChildProcess;
    try {
      // detached: its own process group and session, so neither the window's end nor a
      // signal to the extension host's group reaches it; output to a file, which outlives us.
      child = spawn(runtime.command, args, {
        env: { ...process.env, ...runtime.env, [TOKEN_ENV]: token },
        stdio: ['ignore', out, out],
        detached: true,
        windowsHide: true,
      });
    } finally {
      closeSync(out);
    }
    const exited = new Promise<string>((resolve) => {
      child.once('error', (e) => resolve(`could not start ${runtime.command}: ${e.message}`));
      child.once('exit', (code, signal) => resolve(`the server exited during start (${exitText(code, signal)})`));
    });
    let exitReason: string | undefined;
    void exited.then((r) => (exitReason = r));
    for (;;) {
      const record = readRecord(this.stateFile);
      if (record && record.pid === child.pid && record.port !== null) {
        const client = new ServerClient({ port: record.port, token });
        try {
          this.lastHealth = await client.health(2000);
          this.attach({ pid: child.pid, client, child }, record, 'started');
          return client;
        } catch (e) {
          if (Date.now() > deadline) {
            child.kill('SIGKILL');
            throw new Error(`no healthy answer in ${timeoutMs} ms: ${(e as Error).message}`);
          }
        }
      }
      if (exitReason !== undefined) {
        // Another window started one at the same moment and won the claim: use that one.
        const other = readRecord(this.stateFile);
        if (other && other.pid !== child.pid && isAlive(other.pid)) {
          this.options.log(`another window started the server first (pid ${other.pid}): using it`);
          const found = await this.connectRecorded(deadline);
          if (found) return found;
        }
        await delay(200); // the last lines of its log
        throw new Error(exitReason);
      }
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(record?.pid === child.pid ? `no healthy answer in ${timeoutMs} ms` : `the server did not report its port in ${timeoutMs} ms`);
      }
      await delay(50);
    }
  }

  private attach(a: Attached, record: ServerRecord, how: 'started' | 'reconnected'): void {
    this.attached = a;
    this.failedChecks = 0;
    this.tail.start();
    if (how === 'reconnected') {
      this.options.log(`reconnected to the training server (pid ${a.pid}, version ${record.version}, since ${record.startedAt})`);
    }
    a.child?.on('exit', (code, signal) => this.onGone(a, `server exited (${exitText(code, signal)})`));
    this.setHealth('ready', `listening on 127.0.0.1:${a.client.endpoint.port}, pid ${a.pid}${how === 'reconnected' ? ' (reconnected)' : ''}`);
    this.watch(a);
  }

  private unwatch(): void {
    clearInterval(this.healthTimer);
    clearInterval(this.livenessTimer);
  }

  private watch(a: Attached): void {
    this.unwatch();
    this.healthTimer = setInterval(async () => {
      if (this.attached !== a || this.healthState !== 'ready') return;
      try {
        this.lastHealth = await a.client.health(3000);
        this.failedChecks = 0;
      } catch (e) {
        if (this.attached !== a) return;
        this.failedChecks++;
        this.options.log(`health check failed (${this.failedChecks}): ${(e as Error).message}`);
        // A server that stopped answering is treated like one that crashed.
        if (this.failedChecks >= 3) {
          try {
            process.kill(a.pid, 'SIGKILL');
          } catch {
            // gone
          }
          if (!a.child) this.onGone(a, 'server stopped answering and was killed');
        }
      }
    }, this.options.healthIntervalMs ?? 10_000);
    this.healthTimer.unref?.();
    // A server this window did not start sends no exit event: look for it.
    if (!a.child) {
      this.livenessTimer = setInterval(() => {
        if (this.attached === a && !isAlive(a.pid)) this.onGone(a, `server (pid ${a.pid}) exited`);
      }, this.options.livenessIntervalMs ?? 1000);
      this.livenessTimer.unref?.();
    }
  }

  /**
   * The server went. A clean exit (it removed its record: stopped by another window, or
   * idle) is not a crash: the next request starts it again. Otherwise it crashed, and it
   * is restarted a bounded number of times.
   */
  private onGone(a: Attached, why: string): void {
    if (this.attached !== a) return;
    this.unwatch();
    this.attached = undefined;
    this.options.log(why);
    if (this.stopping) return this.setHealth('stopped', 'shut down');
    if (this.healthState !== 'ready') return;
    const record = readRecord(this.stateFile);
    if (!record || record.pid !== a.pid) {
      this.tail.stop();
      return this.setHealth('stopped', 'the training server stopped (idle, or stopped from another window)');
    }
    removeStale(this.stateFile);
    const now = Date.now();
    const window = this.options.restartWindowMs ?? 60_000;
    this.crashes = this.crashes.filter((t) => now - t < window);
    this.crashes.push(now);
    if (this.crashes.length > (this.options.maxRestarts ?? 3)) {
      this.setHealth('error', `the server crashed ${this.crashes.length} times in ${window / 1000} s (${why}); not restarting`);
      return;
    }
    this.setHealth('error', `the server crashed (${why}); restarting`);
    this.restartTimer = setTimeout(() => {
      this.ensureStarted().catch(() => {});
    }, 500 * this.crashes.length);
  }
}

/**
 * Follows the server's log file into the window's log, from where it stood when
 * following began (earlier servers' lines are in the file, not repeated here).
 */
class LogTail {
  private timer: NodeJS.Timeout | undefined;
  private offset = 0;
  private partial = '';

  constructor(private readonly file: string, private readonly log: (line: string) => void) {}

  start(): void {
    if (this.timer) return;
    this.offset = size(this.file);
    this.timer = setInterval(() => this.read(), 250);
    this.timer.unref?.();
  }

  stop(): void {
    if (!this.timer) return;
    this.read();
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private read(): void {
    const now = size(this.file);
    if (now < this.offset) this.offset = 0; // replaced
    if (now === this.offset) return;
    let fd: number;
    try {
      fd = openSync(this.file, 'r');
    } catch {
      return;
    }
    try {
      const buf = Buffer.alloc(Math.min(now - this.offset, 1 << 20));
      const n = readSync(fd, buf, 0, buf.length, this.offset);
      this.offset += n;
      const lines = (this.partial + buf.subarray(0, n).toString('utf8')).split('\n');
      this.partial = lines.pop() ?? '';
      for (const line of lines) if (line) this.log(line);
    } finally {
      closeSync(fd);
    }
  }
}

function size(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
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

function exitText(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `signal ${signal}` : `code ${code}`;
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
