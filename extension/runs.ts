// The runs the training server knows, the one the user selected (shown by the Metrics
// view, kept across window reloads), and the one training now (followed live for the
// status bar). Start, stop and resume go through here.
import { basename, dirname } from 'node:path';
import * as vscode from 'vscode';
import {
  RESUMABLE_STATES,
  type ConfigDiagnostic,
  type RunRecord,
  type RunSummary,
  type StepEvent,
} from '../server/protocol';
import { RunStream } from './runStream';
import { ServerError } from './serverClient';
import type { ServerManager } from './serverManager';

const SELECTED_KEY = 'qlora.selectedRun';
/** States in which a run is worth following live and polling the list for. */
const LIVE_STATES: readonly RunSummary['state'][] = ['queued', 'training', 'stopping'];

export interface LiveProgress {
  run: RunSummary;
  step: StepEvent | undefined;
}

export class RunsController implements vscode.Disposable {
  private list: RunSummary[] = [];
  private loaded = false;
  private follow: RunStream | undefined;
  private lastStep: StepEvent | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;
  private readonly changed = new vscode.EventEmitter<void>();
  private readonly selectionChanged = new vscode.EventEmitter<string | undefined>();
  private readonly progressChanged = new vscode.EventEmitter<LiveProgress | undefined>();
  private readonly liveRecord = new vscode.EventEmitter<{ runId: string; record: RunRecord }>();
  /** The list changed (or a run in it did). */
  readonly onDidChangeRuns = this.changed.event;
  readonly onDidChangeSelection = this.selectionChanged.event;
  /** The live run's step or state changed; undefined when nothing trains. */
  readonly onDidChangeProgress = this.progressChanged.event;
  /** Each record of the followed run, as it arrives (the status bar's ETA is computed from them). */
  readonly onDidReceiveLiveRecord = this.liveRecord.event;

  constructor(
    private readonly server: ServerManager,
    private readonly memento: vscode.Memento,
    private readonly log: (line: string) => void,
  ) {}

  get runs(): readonly RunSummary[] {
    return this.list;
  }
  /** Whether the list has been fetched at least once. */
  get isLoaded(): boolean {
    return this.loaded;
  }
  get selectedRunId(): string | undefined {
    return this.memento.get<string>(SELECTED_KEY);
  }
  get live(): LiveProgress | undefined {
    const run = this.list.find((r) => r.id === this.follow?.runId);
    return run ? { run, step: this.lastStep } : undefined;
  }

  find(id: string): RunSummary | undefined {
    return this.list.find((r) => r.id === id);
  }

  async select(id: string | undefined): Promise<void> {
    if (id === this.selectedRunId) return;
    await this.memento.update(SELECTED_KEY, id);
    this.selectionChanged.fire(id);
  }

  /** Fetches the list (starting the server if need be) and follows the run that trains. */
  refresh(): Promise<void> {
    this.refreshing ??= this.doRefresh().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async doRefresh(): Promise<void> {
    const client = await this.server.ensureStarted();
    const { runs } = await client.listRuns();
    this.list = runs.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
    this.loaded = true;
    const liveRun = this.list.find((r) => r.state === 'training') ?? this.list.find((r) => LIVE_STATES.includes(r.state));
    if (liveRun?.id !== this.follow?.runId) this.followRun(liveRun);
    this.changed.fire();
    this.progressChanged.fire(this.live);
    // Poll while something is running, so runs that other windows or the CLI start show up too.
    clearTimeout(this.pollTimer);
    if (this.list.some((r) => LIVE_STATES.includes(r.state))) {
      this.pollTimer = setTimeout(() => void this.refresh().catch(() => {}), 5000);
    }
  }

  private followRun(run: RunSummary | undefined): void {
    this.follow?.dispose();
    this.follow = undefined;
    this.lastStep = undefined;
    if (!run) return;
    // The status bar needs only the newest step: start near the end of the history.
    this.follow = new RunStream({
      runId: run.id,
      lastEventId: Math.max(0, run.lastEventId - 20) || undefined,
      client: () => this.server.ensureStarted(),
      onRecord: (r) => this.onLiveRecord(run.id, r),
      onTransient: (e) => {
        const known = this.find(run.id);
        if (!known) return;
        known.queuePosition = e.queuePosition;
        this.changed.fire();
        this.progressChanged.fire(this.live);
      },
      onProblem: (m) => this.log(`run ${run.id}: ${m}`),
    });
  }

  private onLiveRecord(runId: string, r: RunRecord): void {
    const run = this.find(runId);
    if (!run) return;
    this.liveRecord.fire({ runId, record: r });
    if (r.type === 'step') {
      this.lastStep = r;
      run.step = r.step;
      run.totalSteps = r.totalSteps;
      run.loss = r.loss;
    } else if (r.type === 'eval') {
      run.evalLoss = r.evalLoss;
    } else if (r.type === 'state') {
      run.state = r.state;
      run.queuePosition = r.queuePosition;
    } else if (r.type === 'log') {
      this.log(`run ${runId}: ${r.level}: ${r.message}`);
    }
    this.progressChanged.fire(this.live);
    if (r.type !== 'step' || r.step % 10 === 0) this.changed.fire();
    if (r.type === 'state' || r.type === 'done' || r.type === 'error') void this.refresh().catch(() => {});
  }

  /** Submits a `.qlora` document; returns the new run's id, or undefined when it was refused. */
  async start(document: vscode.TextDocument): Promise<string | undefined> {
    const client = await this.server.ensureStarted();
    const request = { configText: document.getText(), baseDir: dirname(document.uri.fsPath), configFile: document.uri.fsPath };
    let created;
    try {
      created = await client.createRun(request);
    } catch (e) {
      if (!(e instanceof ServerError)) throw e;
      if (e.status === 400 && e.body.diagnostics) {
        void showConfigErrors(document, e.body.diagnostics);
        return undefined;
      }
      if (e.body.code === 'output-exists') {
        const fresh = 'Start Afresh';
        const pick = await vscode.window.showWarningMessage(
          `${e.message}\n\nStarting afresh deletes the checkpoints in that folder. To continue the earlier run, resume it from the Runs view instead.`,
          { modal: true },
          fresh,
        );
        if (pick !== fresh) return undefined;
        created = await client.createRun({ ...request, overwrite: true });
      } else {
        throw e;
      }
    }
    this.log(`run ${created.id} created from ${document.uri.fsPath} (${created.run.state})`);
    await this.select(created.id);
    await this.refresh();
    return created.id;
  }

  async stop(id: string): Promise<void> {
    const client = await this.server.ensureStarted();
    const run = await client.stopRun(id);
    this.log(`run ${id}: stop requested (${run.state})`);
    await this.refresh();
  }

  async resume(id: string): Promise<void> {
    const client = await this.server.ensureStarted();
    const run = await client.resumeRun(id);
    this.log(`run ${id}: resumed (${run.state})`);
    await this.select(id);
    await this.refresh();
  }

  /** Runs a command could act on, for a quick pick when none was named. */
  candidates(kind: 'stop' | 'resume'): RunSummary[] {
    return this.list.filter((r) => (kind === 'stop' ? r.state === 'training' || r.state === 'queued' : RESUMABLE_STATES.includes(r.state)));
  }

  dispose(): void {
    clearTimeout(this.pollTimer);
    this.follow?.dispose();
    this.changed.dispose();
    this.selectionChanged.dispose();
    this.progressChanged.dispose();
    this.liveRecord.dispose();
  }
}

/** A short label for a run: its config file's name and its id. */
export function runLabel(run: RunSummary): string {
  return `${basename(run.configFile)} · ${run.id}`;
}

async function showConfigErrors(document: vscode.TextDocument, diagnostics: ConfigDiagnostic[]): Promise<void> {
  const errors = diagnostics.filter((d) => d.severity === 'error');
  const first = errors[0] ?? diagnostics[0];
  const where = first ? ` Line ${first.range.start.line + 1}: ${first.message}` : '';
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : '';
  const show = 'Show Problems';
  const pick = await vscode.window.showErrorMessage(`The config cannot start a run.${where}${more}`, show);
  if (pick === show) {
    await vscode.window.showTextDocument(document);
    await vscode.commands.executeCommand('workbench.actions.view.problems');
  }
}
