// One run on disk. Its record lives in the config's output.dir, beside its checkpoints/
// and adapter/, so runs of the CLI and of the server are found the same way: run.json
// (what is known of it, replaced atomically; the config text it was created from
// included), metrics.jsonl (every event) and config.resolved.json (the parsed config,
// absolute paths; JSON, so no editor takes it for a config to check or to train).
// The server's runs folder holds one link per run, <runs>/<id> -> output.dir: its index.
// (Runs of older versions kept everything in <runs>/<id>/ itself; they still load.)
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ResolvedConfig } from '../config/schema';
import { applyRecord, RESUMABLE_STATES, RUN_ID_PATTERN, type RunRecord, type RunState, type RunSummary } from '../protocol';
import { MetricsLog, writeAtomically } from './metricsLog';

export const RUN_FILE = 'run.json';
export const METRICS_FILE = 'metrics.jsonl';
/** Where runs of older versions kept their config text (now run.json's configText). */
export const CONFIG_FILE = 'config.qlora';
export const RESOLVED_FILE = 'config.resolved.json';
export const STOP_FILE = 'stop.request';
/** Inside a run folder being created: it says the server made this folder and may delete it. */
const CREATION_MARK = '.qlora-creating';

/** The hidden folder a run is written in before it is renamed to its id. */
function creationTempName(id: string): string {
  return `.${id}.tmp`;
}

/**
 * Whether `name` in the runs folder is a run creation the server itself cut short: its own
 * temporary name and its mark inside. Anything else (`.git`, `.env`, a user's folder) is not
 * the server's to delete, whatever it is called.
 */
export function isCreationDebris(runsDir: string, name: string): boolean {
  const m = /^\.(.+)\.tmp$/.exec(name);
  return !!m && RUN_ID_PATTERN.test(m[1]) && existsSync(join(runsDir, name, CREATION_MARK));
}

/** What a run writes into its output.dir, and so what deleting it removes (nothing else there). */
export const RUN_OUTPUTS = [RUN_FILE, METRICS_FILE, RESOLVED_FILE, STOP_FILE, 'checkpoints', 'adapter'];

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
  /** The config text it was created from (absent in runs of older versions: CONFIG_FILE). */
  configText?: string;
  /** The name the user gave it. */
  name?: string;
  /** Started by the server, or by `qlora train` / `qlora demo` (then workerPid is that process). */
  origin?: 'server' | 'cli';
  /** The cost lens's peak-memory estimate when the run was created (see server/config/cost.ts). */
  memoryEstimateBytes?: number | null;
}

/** A run id: its creation time, then randomness. */
export function newRunId(): string {
  const t = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${t}-${randomBytes(3).toString('hex')}`;
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
  get configText(): string { return this.file.configText ?? readFileSync(join(this.dir, CONFIG_FILE), 'utf8'); }
  get backend(): { backend: string | null; device: string | null } {
    return { backend: this.progress.backend, device: this.progress.device };
  }

  /**
   * Writes a new run's record into its output.dir (replacing an earlier run's record
   * there: the caller has made sure none is busy) and links it from the runs folder.
   */
  static create(runsDir: string, file: RunFile, configText: string, config: ResolvedConfig): Run {
    const run = Run.createRecord(file, configText, config);
    linkRun(runsDir, file.id, file.outputDir);
    return run;
  }

  /** The record alone, in output.dir (a CLI run: no server's runs folder links to it yet). */
  static createRecord(file: RunFile, configText: string, config: ResolvedConfig): Run {
    const dir = file.outputDir;
    mkdirSync(dir, { recursive: true });
    const withText: RunFile = { ...file, configText, origin: file.origin ?? 'server' };
    writeFileSync(join(dir, RESOLVED_FILE), JSON.stringify(config, null, 2) + '\n');
    writeFileSync(join(dir, METRICS_FILE), '');
    writeAtomically(join(dir, RUN_FILE), JSON.stringify(withText, null, 2) + '\n');
    const run = new Run(dir, withText);
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
    const errorLocation = f.state === 'error' && f.error ? locate(f.error) : null;
    return {
      id: f.id, state: f.state, queuePosition, createdAt: f.createdAt, updatedAt: f.updatedAt,
      configFile: f.configFile, baseDir: f.baseDir, outputDir: f.outputDir, ...this.progress,
      error: f.error, lastEventId: this.log.lastId, memoryEstimateBytes: f.memoryEstimateBytes ?? null,
      ...(f.name ? { name: f.name } : {}), origin: f.origin ?? 'server', errorLocation,
      // A config error fails again on resume (the run keeps the text it was created from).
      resumable: RESUMABLE_STATES.includes(f.state) && !(errorLocation && /\.qlora$/.test(errorLocation.file)),
    };
  }

  /** Forgets progress past `step` (the records of those steps were just dropped). */
  rewindTo(step: number): void {
    this.progress.step = Math.min(this.progress.step, step);
    if (this.progress.checkpointStep !== null && this.progress.checkpointStep > step) this.progress.checkpointStep = step;
  }

  private fold(r: RunRecord): void {
    applyRecord(this.progress, r);
  }
}

/** The first `/abs/file:line` an error message names. */
export function locate(message: string): { file: string; line: number } | null {
  const m = /(\/[^\s:'"]+):(\d+)(?::\d+)?/.exec(message);
  return m ? { file: m[1], line: Number(m[2]) } : null;
}

/** <runs>/<id> -> output.dir, made under a temporary name and renamed into place. */
export function linkRun(runsDir: string, id: string, outputDir: string): void {
  const link = join(runsDir, id);
  const tmp = join(runsDir, `.${id}.link`);
  rmSync(tmp, { force: true });
  symlinkSync(outputDir, tmp, 'junction');
  renameSync(tmp, link);
}

/** Removes the runs folder's entry for a run: its link (or, for a run of an older version, its folder). */
export function unlinkRun(runsDir: string, id: string): void {
  const entry = join(runsDir, id);
  try {
    if (lstatSync(entry).isSymbolicLink()) rmSync(entry, { force: true });
    else rmSync(entry, { recursive: true, force: true });
  } catch {
    // already gone
  }
}

/** Deletes what a run wrote into its output.dir (RUN_OUTPUTS), and the folder if that leaves it empty. */
export function deleteRunOutputs(outputDir: string): void {
  for (const name of RUN_OUTPUTS) rmSync(join(outputDir, name), { recursive: true, force: true });
  try {
    if (readdirSync(outputDir).length === 0) rmdirSync(outputDir);
  } catch {
    // not there, or not empty
  }
}
