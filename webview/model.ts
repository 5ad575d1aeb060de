// What the Metrics view knows about one run, built from its records and kept in the
// webview's state (getState/setState), so that a page re-created after being hidden or
// after a window reload draws the same curves at once and asks only for what it missed.
// Its series are the rows of metrics.ts's table. Pure: no DOM, so it is unit-tested in Node.
import type { RunRecord, RunState, RunSummary } from '../server/protocol';
import { estimateRemainingMs } from './eta';
import { EVAL_KEYS, METRICS, STEP_KEYS, type EvalKey, type StepKey } from './metrics';

export const STATE_VERSION = 2;

type Series = (number | null)[];

/**
 * Step series share the index of `steps`, eval series that of `evalSteps`. `elapsedMs`
 * runs on across resumes (each resume's trainer clock starts at 0; the view adds the time
 * reached before it), `evalMs` is how long each evaluation took.
 */
export type MetricsState = {
  v: typeof STATE_VERSION;
  run: RunSummary | null;
  /** Id of the newest record applied: sent as Last-Event-ID when the page comes back. */
  lastEventId: number | null;
  steps: number[];
  elapsedMs: number[];
  evalSteps: number[];
  evalMs: Series;
  /** Elapsed time the current trainer process started at, and the wall time of the newest step record. */
  elapsedOffsetMs: number;
  lastStepTime: number | null;
  totalSteps: number | null;
  /** The trainer's own estimate, used until the view has two steps to go on. */
  trainerEtaMs: number | null;
  state: RunState | null;
  /** Why the run is in its state, or the last error. */
  message: string | null;
  backend: string | null;
  device: string | null;
  /** The newest log lines (warnings and infos from the trainer). */
  logs: string[];
} & Record<StepKey | EvalKey, Series>;

const MAX_LOGS = 20;
const STEP_SERIES = ['steps', 'elapsedMs', ...STEP_KEYS] as const;
const EVAL_SERIES = ['evalSteps', 'evalMs', ...EVAL_KEYS] as const;

export function emptyState(run: RunSummary | null = null): MetricsState {
  const s = {
    v: STATE_VERSION,
    run,
    lastEventId: null,
    elapsedOffsetMs: 0,
    lastStepTime: null,
    totalSteps: run?.totalSteps ?? null,
    trainerEtaMs: null,
    state: run?.state ?? null,
    message: run?.error ?? null,
    backend: run?.backend ?? null,
    device: run?.device ?? null,
    logs: [],
  } as Partial<MetricsState>;
  for (const k of [...STEP_SERIES, ...EVAL_SERIES]) (s as Record<string, unknown>)[k] = [];
  return s as MetricsState;
}

export class MetricsModel {
  private constructor(private s: MetricsState) {}

  static empty(): MetricsModel {
    return new MetricsModel(emptyState());
  }

  /** From what getState() returned; anything unreadable or from another version starts empty. */
  static restore(saved: unknown): MetricsModel {
    return new MetricsModel(isMetricsState(saved) ? structuredCloneState(saved) : emptyState());
  }

  get state(): Readonly<MetricsState> {
    return this.s;
  }
  get runId(): string | null {
    return this.s.run?.id ?? null;
  }

  /** Serializable copy for setState. */
  toState(): MetricsState {
    return structuredCloneState(this.s);
  }

  /** Shows `run`. Returns true when the page must start over (another run, or none). */
  select(run: RunSummary | null): boolean {
    if (run && run.id === this.runId) {
      this.s.run = run;
      this.s.totalSteps ??= run.totalSteps;
      this.s.backend ??= run.backend;
      this.s.device ??= run.device;
      // Records carry every state change; the summary only fills in a page that has none yet.
      if (this.s.lastEventId === null) {
        this.s.state = run.state;
        this.s.message = run.error;
      }
      return false;
    }
    this.s = emptyState(run);
    return true;
  }

  /** Applies records in id order; ones already applied (a replay overlapping the state) are skipped. */
  apply(records: readonly RunRecord[]): void {
    for (const r of records) {
      if (this.s.lastEventId !== null && r.id <= this.s.lastEventId) continue;
      this.s.lastEventId = r.id;
      this.applyOne(r);
    }
  }

  /** Time left: a recent window of steps, eval time apart (see eta.ts); the trainer's figure until then. */
  get etaMs(): number | null {
    const s = this.s;
    if (s.state !== 'training' && s.state !== 'stopping') return null;
    return this.remainingMs;
  }

  /**
   * The remaining time from the steps seen, whatever state the model last heard of: the
   * status bar follows a run from near the end of its history, so the record that said
   * "training" may be one it never received; it asks the server's state instead.
   */
  get remainingMs(): number | null {
    return estimateRemainingMs(this.s) ?? this.s.trainerEtaMs;
  }

  /** Elapsed training time at the newest step (resumes added up). */
  get elapsedMs(): number | null {
    return this.s.elapsedMs.at(-1) ?? null;
  }

  /** The highest value a step series reached, or null when it has none. */
  peak(key: StepKey): number | null {
    let best: number | null = null;
    for (const v of this.s[key]) if (v !== null && (best === null || v > best)) best = v;
    return best;
  }

  private applyOne(r: RunRecord): void {
    const s = this.s;
    switch (r.type) {
      case 'start':
        s.totalSteps = r.totalSteps;
        s.backend = r.backend;
        s.device = r.device;
        // A resumed run starts again after its checkpoint: later points are replaced,
        // and its clock goes on from the time reached there.
        this.truncateFrom(r.startStep + 1);
        s.elapsedOffsetMs = s.elapsedMs.at(-1) ?? 0;
        s.lastStepTime = null;
        break;
      case 'step':
        this.truncateFrom(r.step);
        s.steps.push(r.step);
        s.elapsedMs.push(s.elapsedOffsetMs + r.elapsedMs);
        for (const m of METRICS) if (m.source === 'step') s[m.key].push(finite(m.read(r)));
        s.totalSteps = r.totalSteps;
        s.trainerEtaMs = r.etaMs;
        s.lastStepTime = r.time;
        if (s.state !== 'stopping') s.state = 'training';
        // "starting", "resuming from step-20": said until the steps speak for themselves.
        if (s.state === 'training') s.message = null;
        break;
      case 'eval': {
        const at = s.evalSteps.findIndex((x) => x >= r.step);
        if (at >= 0) for (const k of EVAL_SERIES) s[k].length = at;
        s.evalSteps.push(r.step);
        // The eval runs right after its step's record is written.
        s.evalMs.push(s.lastStepTime !== null && s.steps.at(-1) === r.step && r.time >= s.lastStepTime ? r.time - s.lastStepTime : null);
        for (const m of METRICS) if (m.source === 'eval') s[m.key].push(finite(m.read(r)));
        break;
      }
      case 'state':
        s.state = r.state;
        s.message = r.message ?? null;
        break;
      case 'log':
        s.logs.push(`${r.level}: ${r.message}`);
        if (s.logs.length > MAX_LOGS) s.logs.splice(0, s.logs.length - MAX_LOGS);
        break;
      case 'done':
        s.state = r.stopped ? 'stopped' : 'done';
        break;
      case 'error':
        s.state = 'error';
        s.message = r.message;
        break;
      case 'checkpoint':
        break;
    }
  }

  /** Drops the points at `step` and after (steps that a resume trains again). */
  private truncateFrom(step: number): void {
    const s = this.s;
    let keep = s.steps.length;
    while (keep > 0 && s.steps[keep - 1] >= step) keep--;
    if (keep < s.steps.length) for (const k of STEP_SERIES) s[k].length = keep;
    let keepEval = s.evalSteps.length;
    while (keepEval > 0 && s.evalSteps[keepEval - 1] >= step) keepEval--;
    for (const k of EVAL_SERIES) s[k].length = keepEval;
  }
}

const finite = (v: number | null | undefined): number | null => (v !== null && v !== undefined && Number.isFinite(v) ? v : null);

function structuredCloneState(s: MetricsState): MetricsState {
  return JSON.parse(JSON.stringify(s)) as MetricsState;
}

const numArray = (x: unknown, nullable = false): boolean =>
  Array.isArray(x) && x.every((v) => typeof v === 'number' || (nullable && v === null));

export function isMetricsState(x: unknown): x is MetricsState {
  if (typeof x !== 'object' || x === null) return false;
  const s = x as Record<string, unknown>;
  if (s.v !== STATE_VERSION) return false;
  if (!(s.lastEventId === null || typeof s.lastEventId === 'number')) return false;
  if (!(s.run === null || (typeof s.run === 'object' && typeof (s.run as { id?: unknown }).id === 'string'))) return false;
  if (!numArray(s.steps) || !numArray(s.elapsedMs) || !numArray(s.evalSteps)) return false;
  if (![...STEP_KEYS, ...EVAL_KEYS, 'evalMs'].every((k) => numArray(s[k], true))) return false;
  const n = (s.steps as number[]).length;
  if (!STEP_SERIES.every((k) => (s[k] as unknown[]).length === n)) return false;
  const e = (s.evalSteps as number[]).length;
  if (!EVAL_SERIES.every((k) => (s[k] as unknown[]).length === e)) return false;
  if (typeof s.elapsedOffsetMs !== 'number') return false;
  return Array.isArray(s.logs);
}
