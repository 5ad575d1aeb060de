// What the Metrics view knows about the shown run, built from its records and kept in the
// webview's state (getState/setState), so that a page re-created after being hidden or
// after a window reload draws the same curves at once and asks only for what it missed.
// Pure: no DOM, so it is unit-tested in Node.
import type { RunRecord, RunState, RunSummary } from '../server/protocol';

export const STATE_VERSION = 1;

/** Series share the index of `steps`; evaluation has its own x values. */
export interface MetricsState {
  v: typeof STATE_VERSION;
  run: RunSummary | null;
  /** Id of the newest record applied: sent as Last-Event-ID when the page comes back. */
  lastEventId: number | null;
  steps: number[];
  loss: number[];
  lr: number[];
  gradNorm: number[];
  tokensPerSec: number[];
  memoryBytes: number[];
  evalSteps: number[];
  evalLoss: number[];
  totalSteps: number | null;
  etaMs: number | null;
  state: RunState | null;
  /** Why the run is in its state, or the last error. */
  message: string | null;
  backend: string | null;
  device: string | null;
  /** The newest log lines (warnings and infos from the trainer). */
  logs: string[];
}

const MAX_LOGS = 20;

export function emptyState(run: RunSummary | null = null): MetricsState {
  return {
    v: STATE_VERSION,
    run,
    lastEventId: null,
    steps: [],
    loss: [],
    lr: [],
    gradNorm: [],
    tokensPerSec: [],
    memoryBytes: [],
    evalSteps: [],
    evalLoss: [],
    totalSteps: run?.totalSteps ?? null,
    etaMs: null,
    state: run?.state ?? null,
    message: run?.error ?? null,
    backend: run?.backend ?? null,
    device: run?.device ?? null,
    logs: [],
  };
}

const SERIES = ['steps', 'loss', 'lr', 'gradNorm', 'tokensPerSec', 'memoryBytes'] as const;

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

  private applyOne(r: RunRecord): void {
    const s = this.s;
    switch (r.type) {
      case 'start':
        s.totalSteps = r.totalSteps;
        s.backend = r.backend;
        s.device = r.device;
        // A resumed run starts again after its checkpoint: later points are replaced.
        this.truncateFrom(r.startStep + 1);
        break;
      case 'step':
        this.truncateFrom(r.step);
        s.steps.push(r.step);
        s.loss.push(r.loss);
        s.lr.push(r.lr);
        s.gradNorm.push(r.gradNorm);
        s.tokensPerSec.push(r.tokensPerSec);
        s.memoryBytes.push(r.memoryBytes);
        s.totalSteps = r.totalSteps;
        s.etaMs = r.etaMs;
        if (s.state !== 'stopping') s.state = 'training';
        // "starting", "resuming from step-20": said until the steps speak for themselves.
        if (s.state === 'training') s.message = null;
        break;
      case 'eval': {
        const at = s.evalSteps.findIndex((x) => x >= r.step);
        if (at >= 0) {
          s.evalSteps.length = at;
          s.evalLoss.length = at;
        }
        s.evalSteps.push(r.step);
        s.evalLoss.push(r.evalLoss);
        break;
      }
      case 'state':
        s.state = r.state;
        s.message = r.message ?? null;
        if (r.state !== 'training' && r.state !== 'stopping') s.etaMs = null;
        break;
      case 'log':
        s.logs.push(`${r.level}: ${r.message}`);
        if (s.logs.length > MAX_LOGS) s.logs.splice(0, s.logs.length - MAX_LOGS);
        break;
      case 'done':
        s.state = r.stopped ? 'stopped' : 'done';
        s.etaMs = null;
        break;
      case 'error':
        s.state = 'error';
        s.message = r.message;
        s.etaMs = null;
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
    if (keep < s.steps.length) for (const k of SERIES) s[k].length = keep;
    let keepEval = s.evalSteps.length;
    while (keepEval > 0 && s.evalSteps[keepEval - 1] >= step) keepEval--;
    s.evalSteps.length = keepEval;
    s.evalLoss.length = keepEval;
  }

  /** The loss chart's data: x = every step with either loss, nulls where a series has none. */
  lossSeries(): [number[], (number | null)[], (number | null)[]] {
    const s = this.s;
    const xs = [...new Set([...s.steps, ...s.evalSteps])].sort((a, b) => a - b);
    const train = new Map(s.steps.map((x, i) => [x, s.loss[i]]));
    const evals = new Map(s.evalSteps.map((x, i) => [x, s.evalLoss[i]]));
    return [xs, xs.map((x) => train.get(x) ?? null), xs.map((x) => evals.get(x) ?? null)];
  }
}

function structuredCloneState(s: MetricsState): MetricsState {
  return JSON.parse(JSON.stringify(s)) as MetricsState;
}

const numArray = (x: unknown): boolean => Array.isArray(x) && x.every((v) => typeof v === 'number');

export function isMetricsState(x: unknown): x is MetricsState {
  if (typeof x !== 'object' || x === null) return false;
  const s = x as Record<string, unknown>;
  if (s.v !== STATE_VERSION) return false;
  if (!(s.lastEventId === null || typeof s.lastEventId === 'number')) return false;
  if (!(s.run === null || (typeof s.run === 'object' && typeof (s.run as { id?: unknown }).id === 'string'))) return false;
  const series = [...SERIES, 'evalSteps', 'evalLoss'] as const;
  if (!series.every((k) => numArray(s[k]))) return false;
  const n = (s.steps as number[]).length;
  if (!SERIES.every((k) => (s[k] as number[]).length === n)) return false;
  if ((s.evalSteps as number[]).length !== (s.evalLoss as number[]).length) return false;
  return Array.isArray(s.logs);
}
