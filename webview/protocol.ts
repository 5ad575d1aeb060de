// The messages between the extension (extension/metricsView.ts) and the Metrics webview
// (webview/main.ts): the one definition both ends import. Each message is an object
// with a `type` named `area/verb`; the doc comment on each says who sends it. Guards
// check what arrives, because either end may be older than the other after an update.
// No DOM and no Node imports: it is bundled into both.
import type { RunRecord, RunSummary } from '../server/protocol';
import { isViewSettings, type ViewSettings } from './chartData';

/** Health of the training server, as the extension's server manager reports it. */
export type ServerHealth = 'starting' | 'ready' | 'error' | 'stopped';

export const ToView = {
  /** Extension -> webview: show this run (null: none); a different run than the page holds resets it. */
  select: 'run/select',
  /** Extension -> webview: records of the shown run, in id order, replayed or live. */
  records: 'run/records',
  /** Extension -> webview: the training server's health changed. */
  health: 'server/health',
  /** Extension -> webview: the runs drawn beside the shown one (picked in the Runs tree); their records follow as run/records. */
  compare: 'run/compare',
  /** Extension -> webview: smoothing, log scale and x axis, as another Metrics page set them. */
  settings: 'settings/apply',
} as const;

export const ToHost = {
  /** Webview -> extension: the page listens now; it holds this run's records up to lastEventId. */
  ready: 'view/ready',
  /** Webview -> extension: the Stop button. */
  stop: 'run/stop',
  /** Webview -> extension: the Resume button. */
  resume: 'run/resume',
  /** Webview -> extension: live steps drawn, each with `delayMs` from its record's time to the frame that showed it (at most one message a second). */
  drawn: 'view/drawn',
  /** Webview -> extension: the user changed smoothing, log scale or x axis (every page follows). */
  settings: 'settings/change',
  /** Webview -> extension: save this export (CSV text, or a PNG as a data URL) under a name the user picks. */
  export: 'view/export',
  /** Webview -> extension: stop drawing this compared run. */
  uncompare: 'run/uncompare',
} as const;

export interface SelectMessage { type: typeof ToView.select; run: RunSummary | null }
/**
 * One live step drawn by a Metrics page: from the record's time to the extension host
 * receiving it from the server (`hostReceivedMs`), to the host posting it (`hostMs`), to
 * the page receiving it (`arrivedMs`) and to the frame that showed it (`delayMs`).
 */
export interface DrawnStep { runId: string; step: number; delayMs: number; arrivedMs: number; hostMs: number | null; hostReceivedMs: number | null }

/**
 * `receivedAt`: Date.now() in the extension host when the first of them came from the
 * server; `sentAt`: when it posted them (the Metrics view splits its delay at both).
 */
export interface RecordsMessage { type: typeof ToView.records; runId: string; records: RunRecord[]; receivedAt?: number; sentAt?: number }
export interface HealthMessage { type: typeof ToView.health; health: ServerHealth; detail: string }
export interface CompareMessage { type: typeof ToView.compare; runs: RunSummary[] }
export interface SettingsMessage { type: typeof ToView.settings; settings: ViewSettings }
export type ToViewMessage = SelectMessage | RecordsMessage | HealthMessage | CompareMessage | SettingsMessage;

export interface ReadyMessage { type: typeof ToHost.ready; runId: string | null; lastEventId: number | null }
export interface StopMessage { type: typeof ToHost.stop; runId: string }
export interface ResumeMessage { type: typeof ToHost.resume; runId: string }
export interface DrawnMessage { type: typeof ToHost.drawn; runId: string; steps: { step: number; delayMs: number }[] }
export interface SettingsChangedMessage { type: typeof ToHost.settings; settings: ViewSettings }
export interface ExportMessage { type: typeof ToHost.export; format: 'csv' | 'png'; fileName: string; data: string }
export interface UncompareMessage { type: typeof ToHost.uncompare; runId: string }
export type ToHostMessage = ReadyMessage | StopMessage | ResumeMessage | DrawnMessage | SettingsChangedMessage | ExportMessage | UncompareMessage;

const HEALTH: readonly ServerHealth[] = ['starting', 'ready', 'error', 'stopped'];

type Obj = Record<string, unknown>;
const isObj = (x: unknown): x is Obj => typeof x === 'object' && x !== null && !Array.isArray(x);
const isStr = (x: unknown): x is string => typeof x === 'string';
const isNum = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
const isRunSummary = (x: unknown): x is RunSummary => isObj(x) && isStr(x.id) && isStr(x.state);
const isRecord = (x: unknown): x is RunRecord => isObj(x) && isNum(x.id) && isStr(x.type);

/** A message the webview may act on (sent by the extension). */
export function isToViewMessage(x: unknown): x is ToViewMessage {
  if (!isObj(x)) return false;
  switch (x.type) {
    case ToView.select:
      return x.run === null || isRunSummary(x.run);
    case ToView.records:
      return isStr(x.runId) && Array.isArray(x.records) && x.records.every(isRecord) && (x.sentAt === undefined || isNum(x.sentAt)) && (x.receivedAt === undefined || isNum(x.receivedAt));
    case ToView.health:
      return HEALTH.includes(x.health as ServerHealth) && isStr(x.detail);
    case ToView.compare:
      return Array.isArray(x.runs) && x.runs.every(isRunSummary);
    case ToView.settings:
      return isViewSettings(x.settings);
    default:
      return false;
  }
}

/** A message the extension may act on (sent by the webview). */
export function isToHostMessage(x: unknown): x is ToHostMessage {
  if (!isObj(x)) return false;
  switch (x.type) {
    case ToHost.ready:
      return (x.runId === null || isStr(x.runId)) && (x.lastEventId === null || isNum(x.lastEventId));
    case ToHost.stop:
    case ToHost.resume:
      return isStr(x.runId);
    case ToHost.drawn:
      return isStr(x.runId) && Array.isArray(x.steps) && x.steps.every((s: unknown) => isObj(s) && isNum(s.step) && isNum(s.delayMs));
    case ToHost.settings:
      return isViewSettings(x.settings);
    case ToHost.export:
      return (x.format === 'csv' || x.format === 'png') && isStr(x.fileName) && isStr(x.data);
    case ToHost.uncompare:
      return isStr(x.runId);
    default:
      return false;
  }
}

/**
 * The extension's side of the `ready` handshake: messages posted before the page listens
 * are queued and sent, in order, once it says `view/ready`; a reloaded page starts a new
 * handshake.
 */
export class ReadyQueue<M> {
  private queue: M[] = [];
  private isReady = false;

  constructor(private readonly send: (message: M) => void) {}

  get ready(): boolean {
    return this.isReady;
  }

  post(message: M): void {
    if (this.isReady) this.send(message);
    else this.queue.push(message);
  }

  /** The page listens: flush what waited. */
  markReady(): void {
    this.isReady = true;
    const waiting = this.queue;
    this.queue = [];
    for (const m of waiting) this.send(m);
  }

  /** The page went away (hidden or reloaded): queue again until the next `ready`. */
  reset(): void {
    this.isReady = false;
    this.queue = [];
  }
}
