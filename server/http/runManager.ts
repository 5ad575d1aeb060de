// The runs of one server: created from config text, queued, trained one at a time in a
// child process, stopped, resumed, and found again after a restart. Everything it knows
// is on disk under the runs folder (see run.ts), so a killed server loses nothing that
// a checkpoint covers.
import { lstatSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { estimateCost, hasErrors, parseAndCheck, type ConfigDiagnostic } from '../config';
import { modelFacts } from '../config/modelFacts';
import type { ResolvedConfig } from '../config/schema';
import { ConfigError } from '../config/load';
import { checkpointsDir, newestCheckpoint, readTrainerState } from '../engine/train/checkpoint';
import {
  BUSY_STATES, RESUMABLE_STATES, RUN_ID_PATTERN,
  type CreateRunRequest, type CreateRunResponse, type RunState, type RunSummary, type StateEvent,
} from '../protocol';
import { ApiError } from './errors';
import { deleteRunOutputs, isCreationDebris, linkRun, newRunId, Run, unlinkRun, type RunFile } from './run';
import { TrainingProcess, type Outcome, type SpawnWorker } from './trainingProcess';

export interface RunManagerOptions {
  runsDir: string;
  spawnWorker: SpawnWorker;
  /** Diagnostics for the server's own log (stderr). */
  log?: (message: string) => void;
  /** How long a restarted server waits for a training process its predecessor left behind. */
  orphanWaitMs?: number;
}

interface Active {
  process: TrainingProcess;
  /** The stop was asked for by a client (not by a shutdown). */
  userStop: boolean;
  /** Settles once the run's new state is saved. */
  finished: Promise<void>;
}

/** Events sent to the live streams only: a stop under way (the file belongs to the training process then). */
export type TransientListener = (e: StateEvent) => void;

export class RunManager {
  private readonly runs = new Map<string, Run>();
  private active: Active | null = null;
  private shuttingDown = false;
  private queueSeq = 0;
  private readonly positions = new Map<string, number>();
  private readonly transient = new Map<string, Set<TransientListener>>();
  private lastBackend: { backend: string | null; device: string | null } = { backend: null, device: null };
  private readonly log: (message: string) => void;

  constructor(private readonly opts: RunManagerOptions) {
    this.log = opts.log ?? ((m) => process.stderr.write(`qlora serve: ${m}\n`));
  }

  /**
   * Reads the runs folder. Runs that were training when the previous server died become
   * `interrupted` (once the training process it left has gone); queued runs stay queued.
   */
  async init(): Promise<void> {
    mkdirSync(this.opts.runsDir, { recursive: true });
    const loaded: Run[] = [];
    for (const name of readdirSync(this.opts.runsDir)) {
      const dir = join(this.opts.runsDir, name);
      if (isCreationDebris(this.opts.runsDir, name)) { rmSync(dir, { recursive: true, force: true }); continue; } // a creation cut short
      if (!RUN_ID_PATTERN.test(name)) continue;
      const run = Run.load(dir);
      if (!run || run.id !== name) {
        // A link whose output.dir was deleted, or now holds a later run's record: the index entry goes.
        if (isLink(dir)) { rmSync(dir, { force: true }); this.log(`${dir}: the run's output folder is gone or holds another run; forgotten`); continue; }
        this.log(`${dir}: not a run folder (no readable run.json); ignored`);
        continue;
      }
      loaded.push(run);
    }
    loaded.sort((a, b) => a.file.createdAt.localeCompare(b.file.createdAt));
    for (const run of loaded) {
      this.runs.set(run.id, run);
      this.queueSeq = Math.max(this.queueSeq, run.file.queueSeq);
      if (run.backend.backend) this.lastBackend = run.backend;
      if (run.state === 'training' || run.state === 'stopping') {
        if (run.file.workerPid) await waitForExit(run.file.workerPid, this.opts.orphanWaitMs ?? 30_000);
        this.setState(run, 'interrupted', { message: 'the server stopped while this run trained; resume continues from its newest complete checkpoint' });
      }
    }
    this.schedule();
  }

  list(): RunSummary[] {
    return [...this.runs.values()].map((r) => this.summary(r));
  }

  get(id: string): Run {
    if (!RUN_ID_PATTERN.test(id)) throw new ApiError(400, 'invalid-run-id', 'invalid run id');
    const run = this.runs.get(id);
    if (!run) throw new ApiError(404, 'not-found', `no run '${id}'`);
    return run;
  }

  summary(run: Run): RunSummary {
    return run.summary(this.positions.get(run.id) ?? null);
  }

  create(req: CreateRunRequest): CreateRunResponse {
    if (this.shuttingDown) throw new ApiError(503, 'shutting-down', 'the server is shutting down');
    const { configText, baseDir } = req;
    if (typeof configText !== 'string') throw new ApiError(400, 'bad-request', 'configText must be a string');
    if (typeof baseDir !== 'string' || !isAbsolute(baseDir)) throw new ApiError(400, 'bad-request', 'baseDir must be an absolute path');
    if (req.configFile !== undefined && typeof req.configFile !== 'string') throw new ApiError(400, 'bad-request', 'configFile must be a string');
    if (req.maxSteps !== undefined && !(Number.isInteger(req.maxSteps) && req.maxSteps > 0)) {
      throw new ApiError(400, 'bad-request', 'maxSteps must be a positive integer');
    }
    if (req.overwrite !== undefined && typeof req.overwrite !== 'boolean') throw new ApiError(400, 'bad-request', 'overwrite must be true or false');
    const configFile = req.configFile ?? join(baseDir, 'train.qlora');
    // Every problem the editor shows for this text (parse and disk checks alike), not only the first kind found.
    const checked = parseAndCheck(configText, baseDir);
    const outside = outputOutsideBase(checked, baseDir);
    if (outside) checked.diagnostics.push(outside);
    if (hasErrors(checked.diagnostics)) {
      throw new ApiError(400, 'config-invalid', new ConfigError(configFile, checked.diagnostics).message, checked.diagnostics);
    }
    const outputDir = resolve(checked.config.output.dir);
    const busy = [...this.runs.values()].find((r) => r.file.outputDir === outputDir && BUSY_STATES.includes(r.state));
    if (busy) throw new ApiError(409, 'output-in-use', `output.dir ${outputDir} is in use by run ${busy.id} (${busy.state})`);
    const elsewhere = Run.load(outputDir);
    if (elsewhere && !this.runs.has(elsewhere.id) && elsewhere.file.workerPid && BUSY_STATES.includes(elsewhere.state) && pidAlive(elsewhere.file.workerPid)) {
      throw new ApiError(409, 'output-in-use', `output.dir ${outputDir} is in use by a run of another process (pid ${elsewhere.file.workerPid})`);
    }
    if (!req.overwrite && newestCheckpoint(outputDir)) {
      throw new ApiError(409, 'output-exists', `output.dir ${outputDir} already holds checkpoints of an earlier run: ` +
        'choose another output.dir, or start over (overwrite)');
    }
    // The earlier run whose record is in that folder is replaced by this one.
    for (const old of [...this.runs.values()].filter((r) => r.file.outputDir === outputDir)) {
      this.runs.delete(old.id);
      unlinkRun(this.opts.runsDir, old.id);
    }
    const now = new Date().toISOString();
    const file: RunFile = {
      id: newRunId(), state: 'queued', createdAt: now, updatedAt: now, configFile, baseDir, outputDir,
      ...(req.maxSteps !== undefined ? { maxSteps: req.maxSteps } : {}), overwrite: !!req.overwrite,
      queueSeq: ++this.queueSeq, launches: 0, workerPid: null, eventIdFloor: 0, error: null,
      memoryEstimateBytes: memoryEstimate(checked.config),
    };
    const run = Run.create(this.opts.runsDir, file, configText, checked.config);
    this.runs.set(run.id, run);
    this.setState(run, 'queued', {});
    this.schedule();
    return { id: run.id, run: this.summary(run), diagnostics: checked.diagnostics };
  }

  stop(id: string): RunSummary {
    const run = this.get(id);
    if (run.state === 'queued') {
      this.setState(run, 'stopped', { message: 'stopped before it started' });
      this.schedule();
    } else if (run.state === 'training' && this.active?.process.run === run) {
      this.active.userStop = true;
      this.active.process.requestStop();
      run.update({ state: 'stopping' });
      this.emitTransient(run, { type: 'state', state: 'stopping', queuePosition: null, message: 'stopping at the end of the current step' });
    } else if (run.state !== 'stopping') {
      throw new ApiError(409, 'wrong-state', `run ${id} is ${run.state}: only a queued or training run can be stopped`);
    }
    return this.summary(run);
  }

  resume(id: string): RunSummary {
    if (this.shuttingDown) throw new ApiError(503, 'shutting-down', 'the server is shutting down');
    const run = this.get(id);
    if (!RESUMABLE_STATES.includes(run.state)) {
      throw new ApiError(409, 'wrong-state', `run ${id} is ${run.state}: only a stopped, interrupted or failed run can be resumed`);
    }
    const later = [...this.runs.values()].find((r) => r !== run && r.file.outputDir === run.file.outputDir && r.file.createdAt > run.file.createdAt);
    if (later) throw new ApiError(409, 'output-in-use', `run ${later.id} has since used output.dir ${run.file.outputDir}`);
    run.update({ queueSeq: ++this.queueSeq });
    this.setState(run, 'queued', {});
    this.schedule();
    return this.summary(run);
  }

  rename(id: string, name: unknown): RunSummary {
    const run = this.get(id);
    if (typeof name !== 'string' || name.trim().length === 0 || name.length > 200 || /[\n\r]/.test(name)) {
      throw new ApiError(400, 'bad-request', 'name must be a single line of 1-200 characters');
    }
    run.update({ name: name.trim() });
    return this.summary(run);
  }

  /**
   * Forgets a run and deletes what it wrote into its output.dir (record, checkpoints,
   * adapter; nothing else there), and the folder if that leaves it empty.
   */
  delete(id: string): void {
    const run = this.get(id);
    if (BUSY_STATES.includes(run.state)) throw new ApiError(409, 'wrong-state', `run ${id} is ${run.state}: stop it first`);
    this.runs.delete(id);
    this.positions.delete(id);
    unlinkRun(this.opts.runsDir, id);
    // Another run may have taken the folder since (a later start over it): its files stay.
    const current = Run.load(run.file.outputDir);
    if (!current || current.id === id) deleteRunOutputs(run.file.outputDir);
  }

  /**
   * A run folder written by another process (`qlora train`, `qlora demo`) joins this
   * server's runs: listed, streamed, resumable. One still training there is refused.
   */
  importRun(outputDir: unknown): RunSummary {
    if (typeof outputDir !== 'string' || !isAbsolute(outputDir)) throw new ApiError(400, 'bad-request', 'outputDir must be an absolute path');
    const found = Run.load(resolve(outputDir));
    if (!found || !RUN_ID_PATTERN.test(found.id)) throw new ApiError(404, 'not-found', `${outputDir} holds no readable run.json`);
    const known = this.runs.get(found.id);
    if (known) return this.summary(known);
    if (BUSY_STATES.includes(found.state) && found.file.workerPid && pidAlive(found.file.workerPid)) {
      throw new ApiError(409, 'busy-elsewhere', `the run in ${outputDir} is still training in process ${found.file.workerPid}`);
    }
    const run = Run.load(resolve(outputDir))!;
    linkRun(this.opts.runsDir, run.id, run.dir);
    this.runs.set(run.id, run);
    this.queueSeq = Math.max(this.queueSeq, run.file.queueSeq ?? 0);
    run.update({ outputDir: resolve(outputDir), queueSeq: run.file.queueSeq ?? 0, launches: Math.max(1, run.file.launches ?? 1) });
    if (BUSY_STATES.includes(run.state)) {
      this.setState(run, 'interrupted', { workerPid: null, message: 'the process that trained it is gone; resume continues from its newest complete checkpoint' });
    }
    return this.summary(run);
  }

  /** Live-only events of a run (the file has them all otherwise). */
  onTransient(id: string, l: TransientListener): () => void {
    let set = this.transient.get(id);
    if (!set) this.transient.set(id, (set = new Set()));
    set.add(l);
    return () => set.delete(l);
  }

  health(): { backend: string | null; device: string | null; queued: number; training: string | null;
    worker: { rssBytes: number; tensorBytes: number | null } | null } {
    return {
      ...this.lastBackend, queued: this.queue().length, training: this.active?.process.run.id ?? null,
      worker: this.active ? { rssBytes: this.active.process.rssBytes, tensorBytes: this.active.process.tensorBytes } : null,
    };
  }

  /**
   * Stops taking work; a training run finishes its step, checkpoints and is marked
   * `interrupted` (a user's stop already under way still ends `stopped`).
   */
  async shutdown(): Promise<void> {
    this.shuttingDown = true;
    const a = this.active;
    if (!a) return;
    a.process.requestStop();
    await a.finished;
  }

  private queue(): Run[] {
    return [...this.runs.values()].filter((r) => r.state === 'queued').sort((a, b) => a.file.queueSeq - b.file.queueSeq);
  }

  private schedule(): void {
    if (!this.active && !this.shuttingDown) {
      const next = this.queue()[0];
      if (next) {
        try {
          this.launch(next);
        } catch (e) {
          this.setState(next, 'error', { error: (e as Error).message });
          this.schedule();
          return;
        }
      }
    }
    // Waiting runs hear when they move up.
    this.queue().forEach((run, i) => {
      if (this.positions.get(run.id) !== i + 1) {
        this.positions.set(run.id, i + 1);
        run.log.append({ type: 'state', state: 'queued', queuePosition: i + 1 });
      }
    });
  }

  private launch(run: Run): void {
    const { outputDir } = run.file;
    if (run.file.launches === 0 && newestCheckpoint(outputDir)) {
      if (!run.file.overwrite) throw new Error(`output.dir ${outputDir} already holds checkpoints of an earlier run`);
      rmSync(checkpointsDir(outputDir), { recursive: true, force: true });
    }
    const checkpoint = run.file.launches > 0 ? newestCheckpoint(outputDir) : undefined;
    const fromStep = checkpoint ? readTrainerState(checkpoint).step : 0;
    // Steps past the checkpoint are trained again: their old lines go, and their ids are
    // never handed out again (the floor is saved before the lines are dropped).
    run.update({ eventIdFloor: run.log.lastId });
    const dropped = run.log.dropStepsAfter(fromStep);
    run.rewindTo(fromStep);
    this.positions.delete(run.id);
    const message = checkpoint ? `resuming from ${checkpoint} (step ${fromStep})${dropped ? `; ${dropped} events of later steps dropped` : ''}`
      : run.file.launches > 0 ? 'starting again from step 0 (no complete checkpoint)' : 'starting';
    this.setState(run, 'training', { message, launches: run.file.launches + 1 });

    const job = {
      configText: run.configText, baseDir: run.file.baseDir, configFile: run.file.configFile, resume: !!checkpoint,
      maxSteps: run.file.maxSteps, metricsFile: run.log.file, firstEventId: run.log.lastId + 1, stopFile: run.stopFile,
    };
    const training = new TrainingProcess(run, job, this.opts.spawnWorker, (e) => { this.lastBackend = { backend: e.backend, device: e.device }; });
    run.update({ workerPid: training.pid });
    const active: Active = {
      process: training, userStop: false, finished: training.exited.then((o) => this.finish(active, o))
        .catch((e: Error) => this.log(`saving the end of run ${run.id} failed: ${e.message}`)),
    };
    this.active = active;
  }

  /** The run's state from how its training process ended; then the next run starts. */
  private finish(a: Active, o: Outcome): void {
    const { run } = a.process;
    this.active = null;
    if (a.process.stoppedWhileLoading) {
      this.setState(run, a.userStop ? 'stopped' : 'interrupted', { workerPid: null, error: null, message: 'stopped while the model was loading' });
    } else if (o.done) {
      const state = !o.done.stopped ? 'done' : a.userStop || !this.shuttingDown ? 'stopped' : 'interrupted';
      this.setState(run, state, {
        workerPid: null, error: null,
        message: state === 'interrupted' ? `the server shut down; checkpoint at step ${o.done.step}` : undefined,
      });
    } else if (o.error) {
      this.setState(run, 'error', { workerPid: null, error: o.error.message });
    } else if (this.shuttingDown) {
      this.setState(run, 'interrupted', { workerPid: null, message: 'the server shut down' });
    } else {
      const tail = o.stderrTail.trim().split('\n').slice(-3).join(' | ');
      const why = o.spawnError ? `the training process could not start: ${o.spawnError.message}`
        : `the training process ended without finishing (${o.signal ? `signal ${o.signal}` : `exit code ${o.code}`})${tail ? `: ${tail}` : ''}`;
      try {
        run.log.append({ type: 'error', step: run.summary(null).step, message: why });
      } catch (e) {
        this.log(`${run.log.file}: could not append the error: ${(e as Error).message}`);
      }
      this.setState(run, 'error', { workerPid: null, error: why });
    }
    this.schedule();
  }

  private setState(run: Run, state: RunState, extra: Partial<RunFile> & { message?: string }): void {
    const { message, ...changes } = extra;
    try {
      run.update({ ...changes, state });
    } catch (e) {
      // The state holds in memory (clients see it, stop and resume act on it); only its copy on disk is behind.
      this.log(`${run.dir}: could not save state ${state}: ${(e as Error).message}`);
    }
    if (state !== 'queued') this.positions.delete(run.id);
    else if (!this.positions.has(run.id)) this.positions.set(run.id, this.queue().length);
    const e: StateEvent = { type: 'state', state, queuePosition: this.positions.get(run.id) ?? null };
    const why = message ?? (state === 'error' ? changes.error ?? undefined : undefined);
    if (why) e.message = why;
    try {
      run.log.append(e);
    } catch (err) {
      this.log(`${run.log.file}: could not append the state event: ${(err as Error).message}`);
    }
  }

  private emitTransient(run: Run, e: StateEvent): void {
    for (const l of this.transient.get(run.id) ?? []) l(e);
  }
}

/**
 * A run writes (and on overwrite deletes) under output.dir, so the server takes only a
 * folder inside the config's own folder: not /etc, not ../.. of it. A clean diagnostic on
 * output.dir otherwise. (The `qlora train` command is the user's own hand and is not limited.)
 */
function outputOutsideBase(checked: ReturnType<typeof parseAndCheck>, baseDir: string): ConfigDiagnostic | undefined {
  const out = resolve(checked.config.output.dir);
  const base = resolve(baseDir);
  const rel = relative(base, out);
  if (rel !== '' && !rel.startsWith('..') && !isAbsolute(rel)) return undefined;
  const occ = checked.source.first.get('output.dir');
  const [start, end] = occ?.valueRange ?? occ?.keyRange ?? [0, 0];
  return {
    severity: 'error', code: 'out-of-range', data: { key: 'output.dir' }, range: checked.source.lines.range(start, end),
    message: `output.dir ${out} is outside the config's folder ${base}: the training server writes runs only inside it (e.g. ./runs/name)`,
  };
}

function isLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Waits (bounded) until process `pid` is gone. */
async function waitForExit(pid: number, ms: number): Promise<void> {
  const alive = () => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false; // gone (ESRCH), or a process of another user that took the number (EPERM)
    }
  };
  const until = Date.now() + ms;
  while (alive() && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
}

/** The cost lens's peak-memory figure for `config`, for the Metrics view to show beside the measured peak; null when the base model cannot be read. */
function memoryEstimate(config: ResolvedConfig): number | null {
  try {
    const facts = modelFacts(config.model.base);
    return facts.ok ? estimateCost(facts.config, config).memory.total : null;
  } catch {
    return null;
  }
}
