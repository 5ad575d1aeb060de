// The record of a run that `qlora train` or `qlora demo` trains in its own process: the
// same run.json and metrics.jsonl in output.dir that the server writes (run.ts), so the
// editor's Runs view finds CLI runs and the server can take them over (import, resume).
// While the process trains, run.json names it (workerPid); a process that dies leaves
// state `training` with a dead pid, which whoever imports the run reads as interrupted.
import { resolve } from 'node:path';
import type { ResolvedConfig } from '../config/schema';
import type { TrainEvent } from '../engine/train/events';
import type { RunState } from '../protocol';
import { newRunId, Run, type RunFile } from './run';

export class RunRecorder {
  private constructor(private readonly run: Run) {}

  /**
   * Starts the record in config.output.dir. With `resume`, the run recorded there goes on
   * (same id, its events kept up to the step it resumes from); otherwise a new run
   * replaces whatever record was there.
   */
  static begin(o: { config: ResolvedConfig; configText: string; configFile: string; resume: boolean; maxSteps?: number }): RunRecorder {
    const outputDir = resolve(o.config.output.dir);
    const earlier = o.resume ? Run.load(outputDir) : undefined;
    if (earlier) {
      earlier.update({ state: 'training', workerPid: process.pid, launches: earlier.file.launches + 1, error: null, eventIdFloor: earlier.log.lastId });
      const r = new RunRecorder(earlier);
      r.state('training', 'resuming (qlora CLI)');
      return r;
    }
    const now = new Date().toISOString();
    const file: RunFile = {
      id: newRunId(), state: 'training', createdAt: now, updatedAt: now, configFile: resolve(o.configFile),
      baseDir: resolve(o.configFile, '..'), outputDir, ...(o.maxSteps !== undefined ? { maxSteps: o.maxSteps } : {}),
      overwrite: false, queueSeq: 0, launches: 1, workerPid: process.pid, eventIdFloor: 0, error: null, origin: 'cli',
    };
    const r = new RunRecorder(Run.createRecord(file, o.configText, o.config));
    r.state('training', 'starting (qlora CLI)');
    return r;
  }

  get id(): string {
    return this.run.id;
  }

  /** Appends one trainer event (and, for the last ones, the run's new state). */
  event(e: TrainEvent): void {
    if (e.type === 'start' && e.startStep > 0) this.run.log.dropStepsAfter(e.startStep);
    this.run.log.append(e);
    if (e.type === 'done') this.end(e.stopped ? 'stopped' : 'done');
    if (e.type === 'error') this.end('error', e.message);
  }

  /** The run ends: its state is saved and run.json no longer names this process. */
  end(state: RunState, error?: string): void {
    if (this.run.state === state && this.run.file.workerPid === null) return;
    this.run.update({ state, workerPid: null, error: error ?? null });
    this.state(state, error);
  }

  private state(state: RunState, message?: string): void {
    this.run.log.append({ type: 'state', state, queuePosition: null, ...(message ? { message } : {}) });
  }
}
