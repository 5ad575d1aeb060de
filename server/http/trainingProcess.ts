// The server's side of one training process (worker.ts): starts it, pumps the lines it
// appends to metrics.jsonl as it reports them, asks it to stop, and says how it ended.
import { fork, type ChildProcess } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { constants, setPriority } from 'node:os';
import { TOKEN_ENV, type RunRecord, type StartEvent } from '../protocol';
import { withTrainingFlags } from '../trainingNodeFlags';
import type { Run } from './run';
import type { WorkerJob, WorkerMessage } from './worker';

export type SpawnWorker = (job: WorkerJob) => ChildProcess;

/** How a training process ended: its last done or error record, if it wrote one, and its exit. */
export interface Outcome {
  done?: Extract<RunRecord, { type: 'done' }>;
  error?: Extract<RunRecord, { type: 'error' }>;
  code: number | null;
  signal: NodeJS.Signals | null;
  spawnError?: Error;
  /** The end of what it wrote to stderr, for the message of a crash. */
  stderrTail: string;
}

const STDERR_TAIL = 4096;

export class TrainingProcess {
  readonly exited: Promise<Outcome>;
  readonly pid: number | null;
  rssBytes = 0;
  tensorBytes: number | null = null;
  /** Whether the trainer has reported its start (the model is loaded); before it, a stop ends the process at once. */
  started = false;
  /** The process was ended by a stop that came while it was still loading. */
  stoppedWhileLoading = false;
  private readonly child: ChildProcess;

  constructor(readonly run: Run, job: WorkerJob, spawn: SpawnWorker, onStart: (e: StartEvent) => void) {
    rmSync(run.stopFile, { force: true });
    const outcome: Omit<Outcome, 'code' | 'signal'> = { stderrTail: '' };
    const unsubscribe = run.log.subscribe((r) => {
      if (r.type === 'done') outcome.done = r;
      if (r.type === 'error') outcome.error = r;
      if (r.type === 'start') { this.started = true; onStart(r); }
    });
    this.child = spawn(job);
    this.pid = this.child.pid ?? null;
    this.child.stderr?.setEncoding('utf8');
    this.child.stderr?.on('data', (s: string) => {
      outcome.stderrTail = (outcome.stderrTail + s).slice(-STDERR_TAIL);
      process.stderr.write(s);
    });
    this.child.stdout?.on('data', (s: Buffer) => process.stderr.write(s));
    this.child.on('message', (m: WorkerMessage) => {
      if (m?.kind !== 'appended') return;
      this.rssBytes = m.rssBytes;
      this.tensorBytes = m.tensorBytes;
      run.log.pump();
    });
    this.exited = new Promise((resolve) => {
      let ended = false;
      const end = (code: number | null, signal: NodeJS.Signals | null, spawnError?: Error) => {
        if (ended) return;
        ended = true;
        run.log.pump(); // lines written after the last message
        unsubscribe();
        rmSync(run.stopFile, { force: true });
        resolve({ ...outcome, code, signal, ...(spawnError ? { spawnError } : {}) });
      };
      this.child.on('error', (e) => end(null, null, e));
      this.child.on('close', (code, signal) => end(code, signal));
    });
  }

  /**
   * Asks for a checkpoint and a stop at the end of the current step. The stop file is
   * what a busy training loop sees (it checks it between steps); the message is for an idle one.
   */
  requestStop(): void {
    // Loading a model is one long synchronous stretch that reads no message and no stop file,
    // and has written nothing a stop must keep (no step, no checkpoint): end it now.
    if (!this.started) {
      this.stoppedWhileLoading = true;
      this.child.kill('SIGKILL');
      return;
    }
    writeFileSync(this.run.stopFile, '');
    if (this.child.connected) this.child.send({ kind: 'stop' }, () => { /* it may have just ended */ });
  }
}

/** This same program in a child process, `qlora serve --worker`, the job sent over IPC. */
export const forkWorker: SpawnWorker = (job) => {
  const env = { ...process.env };
  delete env[TOKEN_ENV]; // the training process talks to nobody
  // Node's flags for training (a young generation for a step's garbage; see trainingNodeFlags.ts).
  const child = fork(process.argv[1], ['serve', '--worker'], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], env, execArgv: withTrainingFlags(process.execArgv) });
  // Below-normal priority from its first instruction, not only from runWorker's (worker.ts):
  // loading this bundle, the backend and the model took most of a core at normal priority
  // for the first second or so of a run, while the editor was handling the run's start.
  if (child.pid !== undefined) {
    try {
      setPriority(child.pid, constants.priority.PRIORITY_BELOW_NORMAL);
    } catch {
      // runWorker sets it again, and says so if it cannot
    }
  }
  child.send({ kind: 'job', job });
  return child;
};
