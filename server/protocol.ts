// The training server's HTTP and Server-Sent Events payloads: the one definition that
// the server (server/http), the extension and the webview import. Types and constants
// only, no Node imports, so that browser bundles can use it as is.
// Contract: ../shared/docs/DESIGN.md, "Training server API".
import type { ConfigDiagnostic } from './config/diagnostics';
import type { TrainEvent } from './engine/train/events';

export type {
  CheckpointEvent, DoneEvent, ErrorEvent, EvalEvent, LogEvent, StartEvent, StepEvent, TrainEvent,
} from './engine/train/events';
export type { ConfigDiagnostic, Position, Range, Severity } from './config/diagnostics';

/** Environment variable the server takes its bearer token from; it refuses to start without one. */
export const TOKEN_ENV = 'QLORA_SERVER_TOKEN';
/** Shortest token the server accepts. */
export const MIN_TOKEN_LENGTH = 16;
/** Largest JSON request body, in bytes (a config is a few kilobytes). */
export const MAX_BODY_BYTES = 1024 * 1024;

/** Routes, all under /v1; every request carries `Authorization: Bearer <token>`. */
export const Routes = {
  /** GET -> HealthResponse. */
  health: '/v1/health',
  /** GET -> RunListResponse; POST CreateRunRequest -> 201 CreateRunResponse | 400 ConfigErrorResponse | 409 ErrorResponse. */
  runs: '/v1/runs',
  /** GET -> RunSummary. */
  run: (id: string) => `/v1/runs/${encodeURIComponent(id)}`,
  /** GET -> text/event-stream of RunRecord (see SseEventName); honours Last-Event-ID. */
  events: (id: string) => `/v1/runs/${encodeURIComponent(id)}/events`,
  /** POST -> RunSummary: a queued run leaves the queue; a training run checkpoints and stops. */
  stop: (id: string) => `/v1/runs/${encodeURIComponent(id)}/stop`,
  /** POST -> RunSummary: a stopped, interrupted or failed run is queued again from its newest complete checkpoint. */
  resume: (id: string) => `/v1/runs/${encodeURIComponent(id)}/resume`,
  /** POST RenameRunRequest -> RunSummary. DELETE (the run) -> 204: see RunManager.delete. */
  rename: (id: string) => `/v1/runs/${encodeURIComponent(id)}/rename`,
  /** POST ImportRunRequest -> RunSummary: a run folder written elsewhere (the `qlora` CLI) joins this server's runs. */
  importRun: '/v1/runs/import',
} as const;

export interface RenameRunRequest { name: string }
export interface ImportRunRequest { outputDir: string }

/** What a run id looks like; anything else is refused before it can name a path. */
export const RUN_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/**
 * A run's life: queued -> training -> done | stopped | error. `stopping` is a stop
 * request waiting for the current step to end. `interrupted`: the server went away while
 * the run trained (crash, kill or shutdown); like `stopped` and `error` it can be resumed.
 */
export const RUN_STATES = ['queued', 'training', 'stopping', 'stopped', 'done', 'error', 'interrupted'] as const;
export type RunState = (typeof RUN_STATES)[number];
/** States from which POST .../resume queues the run again. */
export const RESUMABLE_STATES: readonly RunState[] = ['stopped', 'interrupted', 'error'];
/** States in which a run's output folder is taken: a new run may not use it. */
export const BUSY_STATES: readonly RunState[] = ['queued', 'training', 'stopping'];

export interface RunSummary {
  id: string;
  state: RunState;
  /** 1 for the next run to train, while queued; otherwise null. */
  queuePosition: number | null;
  /** ISO 8601 times. */
  createdAt: string;
  updatedAt: string;
  /** The config file's path as the client named it (for display), and the folder relative paths resolve against. */
  configFile: string;
  baseDir: string;
  /** The resolved output.dir: checkpoints/ and adapter/ are written there. */
  outputDir: string;
  /** Last optimizer step reported, and the run's length (null until training starts). */
  step: number;
  totalSteps: number | null;
  loss: number | null;
  evalLoss: number | null;
  /** Step of the newest checkpoint reported. */
  checkpointStep: number | null;
  /** Adapter folder once the run is done (or stopped). */
  adapter: string | null;
  backend: string | null;
  device: string | null;
  /** Why the run failed, for state `error`. */
  error: string | null;
  /** Id of the newest event in metrics.jsonl: a client that has seen it is up to date. */
  lastEventId: number;
  /** A name the user gave the run (Rename); absent: the output folder's name is shown. */
  name?: string;
  /** Who started it: the server, or the `qlora` CLI (found in its output folder and imported). */
  origin?: 'server' | 'cli';
  /** The error's place in the config (`file:line`), when the error names one. */
  errorLocation?: { file: string; line: number } | null;
  /** Whether Resume can get past the error (false for a config error, which fails again until edited). */
  resumable?: boolean;
  /** The cost lens's peak-memory estimate for the run's config (bytes); absent or null when the base model could not be read. */
  memoryEstimateBytes?: number | null;
}

export interface RunListResponse { runs: RunSummary[] }

export interface CreateRunRequest {
  /** The .qlora text (the editor's buffer, saved or not). */
  configText: string;
  /** Absolute folder that relative paths in the config resolve against (the file's folder). */
  baseDir: string;
  /** Where the text came from, for messages and display; default `<baseDir>/train.qlora`. */
  configFile?: string;
  /** Stop after this many optimizer steps in total (like `qlora train --max-steps`). */
  maxSteps?: number;
  /**
   * Start afresh although output.dir holds checkpoints: they are deleted when the run
   * starts, and a stopped, interrupted or failed run that wrote them can no longer resume.
   */
  overwrite?: boolean;
}

export interface CreateRunResponse {
  id: string;
  run: RunSummary;
  /** Warnings the config passed with. */
  diagnostics: ConfigDiagnostic[];
}

/** 400 for a config with errors: the language server's diagnostics, positions included. */
export interface ConfigErrorResponse {
  error: string;
  diagnostics: ConfigDiagnostic[];
}

export type ErrorCode =
  | 'unauthorized' | 'forbidden-host' | 'bad-request' | 'invalid-run-id' | 'not-found' | 'config-invalid'
  | 'output-in-use' | 'output-exists' | 'wrong-state' | 'body-too-large' | 'shutting-down' | 'internal'
  | 'busy-elsewhere';

/** Every 4xx/5xx answer other than a config's diagnostics. */
export interface ErrorResponse { error: string; code: ErrorCode }

export interface HealthResponse {
  ok: true;
  /** The qlora package version. */
  version: string;
  api: 'v1';
  pid: number;
  uptimeMs: number;
  /** The TensorFlow.js backend and device of the newest run that started (null before any). */
  backend: string | null;
  device: string | null;
  memory: {
    /** The server process. */
    rssBytes: number;
    heapUsedBytes: number;
    systemTotalBytes: number;
    systemFreeBytes: number;
    /** The training process, while one runs: its resident size and the bytes TensorFlow.js holds. */
    training: { rssBytes: number; tensorBytes: number | null } | null;
  };
  runs: { queued: number; training: string | null };
}

/** A run's state change, recorded in metrics.jsonl like the trainer's events. */
export interface StateEvent {
  type: 'state';
  state: RunState;
  queuePosition: number | null;
  /** Why, in words: "resuming from step-20", "the server shut down", an error message. */
  message?: string;
}

export type RunEvent = TrainEvent | StateEvent;

/**
 * One line of metrics.jsonl and the data of one SSE event: the event plus `id`, which
 * increases through the run's whole life (restarts and resumes included) and is the SSE
 * `id:`, and `time` (ms since the epoch). After a resume, the lines for steps past the
 * checkpoint it resumed from are dropped and those steps come again with new ids.
 */
export type RunRecord = RunEvent & { id: number; time: number };

/** SSE `event:` names. `metrics`: step and eval; `state`: state changes and the trainer's start. */
export const SSE_EVENTS = ['metrics', 'log', 'state', 'checkpoint', 'done', 'error'] as const;
export type SseEventName = (typeof SSE_EVENTS)[number];

/**
 * What every client calls a run (the Runs tree, notifications, the Metrics legend): the
 * name given to it, else its output folder's name. Paths are split by hand so the webview,
 * which has no node:path, says the same.
 */
export function runName(run: Pick<RunSummary, 'name' | 'outputDir' | 'configFile' | 'id'>): string {
  const last = (p: string) => p.split(/[\\/]/).filter(Boolean).pop() ?? '';
  return run.name ?? (last(run.outputDir) || last(run.configFile) || run.id);
}

export function sseEventName(e: RunEvent): SseEventName {
  switch (e.type) {
    case 'step': case 'eval': return 'metrics';
    case 'start': case 'state': return 'state';
    default: return e.type;
  }
}

/** The line `qlora serve` prints on stdout once it listens. */
export interface ServeReady { port: number }

/** States in which Stop applies: a queued run leaves the queue, a training run checkpoints and stops. */
export const STOPPABLE_STATES: readonly RunState[] = ['queued', 'training'];
/** States of a run that is still going (it holds its output folder): BUSY_STATES under the name the clients use. */
export const LIVE_STATES: readonly RunState[] = BUSY_STATES;

/**
 * Express route patterns of Routes, for the server; clients build paths with Routes. Literal
 * strings, so that express types `req.params.id`; test/extension/protocolChecks.test.ts
 * checks that each matches the path Routes builds.
 */
export const ROUTE_PATTERNS = {
  health: '/v1/health',
  runs: '/v1/runs',
  run: '/v1/runs/:id',
  events: '/v1/runs/:id/events',
  stop: '/v1/runs/:id/stop',
  resume: '/v1/runs/:id/resume',
  rename: '/v1/runs/:id/rename',
} as const;

/** The part of a RunSummary that a run's records move forward. */
export type RunProgress = Pick<RunSummary, 'step' | 'totalSteps' | 'loss' | 'evalLoss' | 'checkpointStep' | 'adapter' | 'backend' | 'device'>;

/**
 * The one summary update: what a record of the run says about its progress, applied to
 * `p` in place (the server folds metrics.jsonl with it; clients fold the live stream).
 */
export function applyRecord(p: Partial<RunProgress> & Pick<RunSummary, 'step'>, r: RunEvent): void {
  switch (r.type) {
    case 'start': p.totalSteps = r.totalSteps; p.step = r.startStep; p.backend = r.backend; p.device = r.device; break;
    case 'step': p.step = r.step; p.totalSteps = r.totalSteps; p.loss = r.loss; break;
    case 'eval': p.evalLoss = r.evalLoss; break;
    case 'checkpoint': p.checkpointStep = r.step; break;
    case 'done': p.adapter = r.adapter; p.step = r.step; break;
    default: break;
  }
}

const isNum = (v: unknown): v is number => typeof v === 'number';
const isStr = (v: unknown): v is string => typeof v === 'string';
/** Numbers a record may carry as null: JSON writes NaN and Infinity so (a diverged loss, an unknown norm). */
const isNumOrNull = (v: unknown): boolean => v === null || isNum(v);

/** The fields each record type must have, and their checks. */
const RECORD_FIELDS: Record<RunEvent['type'], Record<string, (v: unknown) => boolean>> = {
  start: { backend: isStr, device: isStr, totalSteps: isNum, startStep: isNum },
  step: { step: isNum, totalSteps: isNum, loss: isNumOrNull, lr: isNumOrNull, gradNorm: isNumOrNull, tokensPerSec: isNumOrNull, elapsedMs: isNum, etaMs: isNumOrNull },
  eval: { step: isNum, evalLoss: isNumOrNull },
  checkpoint: { step: isNum, path: isStr },
  log: { level: (v) => v === 'info' || v === 'warning', message: isStr },
  done: { step: isNum, adapter: isStr },
  error: { message: isStr },
  state: { state: (v) => (RUN_STATES as readonly unknown[]).includes(v) },
};

/**
 * The runtime check of one SSE record (or metrics.jsonl line) as a client receives it: a
 * RunRecord, or a StateEvent without an id (the server's transient notices); anything
 * else is refused with the reason, never passed on as if it were typed.
 */
export function parseRunRecord(data: string): { ok: true; record: RunRecord | StateEvent } | { ok: false; why: string } {
  let v: unknown;
  try {
    v = JSON.parse(data);
  } catch {
    return { ok: false, why: `not JSON: ${data.slice(0, 120)}` };
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) return { ok: false, why: 'not an object' };
  const o = v as Record<string, unknown>;
  const fields = isStr(o.type) ? RECORD_FIELDS[o.type as RunEvent['type']] : undefined;
  if (!fields) return { ok: false, why: `unknown record type ${JSON.stringify(o.type)}` };
  for (const [name, check] of Object.entries(fields)) {
    if (!check(o[name])) return { ok: false, why: `${o.type} record: ${name} is ${JSON.stringify(o[name])}` };
  }
  if (o.id === undefined && o.type === 'state') return { ok: true, record: o as unknown as StateEvent };
  if (!isNum(o.id) || !isNum(o.time)) return { ok: false, why: `${o.type} record without a numeric id and time` };
  return { ok: true, record: o as unknown as RunRecord };
}

/**
 * One line of `qlora ... --json` output: a training event (`train`, one per line), or the
 * single object `eval`, `inspect`, `export`, `generate` and `merge` print.
 */
export type CliJsonLine = TrainEvent | { type?: undefined; [field: string]: unknown };
