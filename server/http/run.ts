// One run on disk, <runs>/<id>/: run.json (what the server knows of it, replaced
// atomically), metrics.jsonl (every event), config.qlora (the text it was created from)
// and config.resolved.json. Checkpoints and the adapter go to the config's output.dir.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ResolvedConfig } from '../config/schema';
import type { RunRecord, RunState, RunSummary } from '../protocol';
import { MetricsLog, writeAtomically } from './metricsLog';

export const RUN_FILE = 'run.json';
export const METRICS_FILE = 'metrics.jsonl';
export const CONFIG_FILE = 'config.qlora';
export const STOP_FILE = 'stop.request';

/** run.json. */
export interface RunFile {
  id: string;
  state: RunState;
  createdAt: string;
  updatedAt: string;
  configFile: string;
  baseDir: string;
  outputDir: string;
  maxSteps?: number;
  /** Delete output.dir/checkpoints before the first start. */
  overwrite: boolean;
  /** Order among queued runs: lower trains first. */
  queueSeq: number;
  /** How many times a training process was started for this run. */
  launches: number;
  /** The training process while one runs (a restarted server waits for an orphan to go). */
  workerPid: number | null;
  /** Highest event id ever handed out before metrics.jsonl was last trimmed. */
  eventIdFloor: number;
  error: string | null;
  /** The cost lens's peak-memory estimate when the run was created (see server/config/cost.ts). */
  memoryEstimateBytes?: number | null;
}

/** What the events say so far; rebuilt from metrics.jsonl on load. */
type Progress = Pick<RunSummary, 'step' | 'totalSteps' | 'loss' | 'evalLoss' | 'checkpointStep' | 'adapter' | 'backend' | 'device'>;

export class Run {
  readonly log: MetricsLog;
  private progress: Progress = {
    step: 0, totalSteps: null, loss: null, evalLoss: null, checkpointStep: null, adapter: null, backend: null, device: null,
  };

  private constructor(readonly dir: string, public file: RunFile) {
    this.log = new MetricsLog(join(dir, METRICS_FILE), file.eventIdFloor);
    this.log.subscribe((r) => this.fold(r));
  }

  get id(): string { return this.file.id; }
  get state(): RunState { return this.file.state; }
  get stopFile(): string { return join(this.dir, STOP_FILE); }
  get configText(): string { return readFileSync(join(this.dir, CONFIG_FILE), 'utf8'); }
  get backend(): { backend: string | null; device: string | null } {
    return { backend: this.progress.backend, device: this.progress.device };
  }

  /** Writes a new run folder whole (under a temporary name, then renamed) and returns it. */
  static create(runsDir: string, file: RunFile, configText: string, config: ResolvedConfig): Run {
    const dir = join(runsDir, file.id);
    const tmp = join(runsDir, `.${file.id}.tmp`);
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    writeFileSync(join(tmp, CONFIG_FILE), configText);
    writeFileSync(join(tmp, 'config.resolved.json'), JSON.stringify(config, null, 2) + '\n');
    writeFileSync(join(tmp, METRICS_FILE), '');
    writeFileSync(join(tmp, RUN_FILE), JSON.stringify(file, null, 2) + '\n');
    renameSync(tmp, dir);
    const run = new Run(dir, file);
    run.log.load();
    return run;
  }

  /** A run folder from disk, with its progress rebuilt from metrics.jsonl; undefined if it is not one. */
  static load(dir: string): Run | undefined {
    const path = join(dir, RUN_FILE);
    if (!existsSync(path)) return undefined;
    let file: RunFile;
    try {
      file = JSON.parse(readFileSync(path, 'utf8')) as RunFile;
    } catch {
      return undefined;
    }
    const run = new Run(dir, file);
    for (const r of run.log.load()) run.fold(r);
    return run;
  }

  /** Sets fields of run.json and writes it atomically. */
  update(changes: Partial<RunFile>): void {
    this.file = { ...this.file, ...changes, updatedAt: new Date().toISOString() };
    writeAtomically(join(this.dir, RUN_FILE), JSON.stringify(this.file, null, 2) + '\n');
  }

  summary(queuePosition: number | null): RunSummary {
    const f = this.file;
    return {
      id: f.id, state: f.state, queuePosition, createdAt: f.createdAt, updatedAt: f.updatedAt,
      configFile: f.configFile, baseDir: f.baseDir, outputDir: f.outputDir, ...this.progress,
      error: f.error, lastEventId: this.log.lastId, memoryEstimateBytes: f.memoryEstimateBytes ?? null,
    };
  }

  /** Forgets progress past `step` (the records of those steps were just dropped). */
  rewindTo(step: number): void {
    this.progress.step = Math.min(this.progress.step, step);
    if (this.progress.checkpointStep !== null && this.progress.checkpointStep > step) this.progress.checkpointStep = step;
  }

  private fold(r: RunRecord): void {
    const p = this.progress;
    switch (r.type) {
      case 'start': p.totalSteps = r.totalSteps; p.step = r.startStep; p.backend = r.backend; p.device = r.device; break;
      case 'step': p.step = r.step; p.totalSteps = r.totalSteps; p.loss = r.loss; break;
      case 'eval': p.evalLoss = r.evalLoss; break;
      case 'checkpoint': p.checkpointStep = r.step; break;
      case 'done': p.adapter = r.adapter; p.step = r.step; break;
      default: break;
    }
  }
}
