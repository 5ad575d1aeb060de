// The runs the training server knows (and those the CLI left in output folders of this
// workspace, which it imports), the one the user selected (shown by the Metrics view,
// kept across window reloads), and the one training now (followed live for the status
// bar). Start, stop, resume, rename and delete go through here; the end of a run is
// announced here.
import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import * as vscode from 'vscode';
import { parse } from '../server/config';
import {
  LIVE_STATES,
  RESUMABLE_STATES,
  STOPPABLE_STATES,
  runName,
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
  /** A pass queued behind the one under way (see refresh). */
  private refreshAgain: Promise<void> | undefined;
  /** Look for run folders in the workspace at the next refresh (first load, Refresh). */
  private discoverNext = true;
  /** Folders where a run.json appeared: imported at the next refresh unless the server lists them. */
  private readonly importNext = new Set<string>();
  /** Each run's state at the last refresh: a change from a live state is announced. */
  private readonly lastStates = new Map<string, RunSummary['state']>();
  private readonly watcher = vscode.workspace.createFileSystemWatcher('**/run.json');
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
    /** What a finished, failed or interrupted run's notification offers. */
    private readonly announce: (run: RunSummary) => void = () => {},
  ) {
    // A run.json that appears is imported by its folder alone, and not at all when the
    // server lists that folder already (its own runs: the usual case). Searching the whole
    // workspace for run.json files at each new one (findFiles) cost the editor's server
    // its CPU just as a run's first steps were on their way to the Metrics view.
    this.watcher.onDidCreate((uri) => {
      const dir = dirname(uri.fsPath);
      if (/[\\/]node_modules[\\/]/.test(dir) || this.list.some((r) => r.outputDir === dir)) return;
      this.importNext.add(dir);
      if (this.loaded) void this.refresh().catch(() => {});
    });
    this.watcher.onDidDelete(() => {
      if (this.loaded) void this.refresh().catch(() => {});
    });
  }

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
  refresh(discover = false): Promise<void> {
    if (discover) this.discoverNext = true;
    if (this.refreshing) {
      // The pass under way may have fetched the list before what the caller just did (a run
      // it created): one more pass after it, shared by every caller meanwhile. Answering
      // with the pass under way left a new run unfollowed, its status bar never updated.
      this.refreshAgain ??= this.refreshing.catch(() => {}).then(() => {
        this.refreshAgain = undefined;
        return this.refresh();
      });
      return this.refreshAgain;
    }
    this.refreshing = this.doRefresh()
      .catch((e: Error) => {
        // Most callers go on without the answer; the log keeps why the list did not change.
        this.log(`runs: refreshing the list failed: ${e.message}`);
        throw e;
      })
      .finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  /**
   * Run folders (run.json) that the server does not list, the CLI's runs: `dirs`, or every
   * one in the workspace when `dirs` is undefined. Imported.
   */
  private async importDiscovered(client: Awaited<ReturnType<ServerManager['ensureStarted']>>, known: RunSummary[], dirs?: string[]): Promise<boolean> {
    dirs ??= (await vscode.workspace.findFiles('**/run.json', '**/node_modules/**', 500)).map((f) => dirname(f.fsPath));
    const knownDirs = new Set(known.map((r) => r.outputDir));
    let imported = false;
    for (const dir of dirs) {
      if (knownDirs.has(dir)) continue;
      try {
        const run = await client.importRun(dir);
        this.log(`found run ${run.id} in ${dir} (${run.origin ?? 'server'}, ${run.state}); added to the Runs view`);
        imported = true;
      } catch (e) {
        this.log(`${dir}: not added to the Runs view: ${(e as Error).message}`);
      }
    }
    return imported;
  }

  private async doRefresh(): Promise<void> {
    const client = await this.server.ensureStarted();
    let { runs } = await client.listRuns();
    const appeared = [...this.importNext];
    this.importNext.clear();
    if (this.discoverNext || appeared.length) {
      const everywhere = this.discoverNext;
      this.discoverNext = false;
      if (await this.importDiscovered(client, runs, everywhere ? undefined : appeared)) runs = (await client.listRuns()).runs;
    }
    this.list = runs.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
    this.loaded = true;
    for (const run of this.list) {
      const before = this.lastStates.get(run.id);
      if (before && LIVE_STATES.includes(before) && !LIVE_STATES.includes(run.state)) this.announce(run);
      this.lastStates.set(run.id, run.state);
    }
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
    this.log(run ? `status bar: following run ${run.id} (${run.state})` : `status bar: no run to follow${this.follow ? ` (run ${this.follow.runId} no longer live)` : ''}`);
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
    // The Runs tree shows the step and loss: redrawn every 10 steps and at a state change,
    // not at every record (each redraw is work for the workbench the Metrics view shares).
    if (r.type === 'state' || (r.type === 'step' && r.step % 10 === 0)) this.changed.fire();
    if (r.type === 'state' || r.type === 'done' || r.type === 'error') void this.refresh().catch(() => {});
  }

  /**
   * Before a run starts over an output folder an earlier run used: a new folder
   * (`runs/demo-2`), the default, with output.dir changed in the file; or starting afresh
   * there; or resuming the earlier run. Returns false when the user backed out.
   */
  private async chooseOutput(document: vscode.TextDocument): Promise<{ overwrite: boolean } | false> {
    const parsed = parse(document.getText(), dirname(document.uri.fsPath));
    const outputDir = parsed.config.output.dir;
    const used = ['run.json', 'checkpoints', 'adapter'].some((f) => existsSync(join(outputDir, f)));
    if (!used) return { overwrite: false };
    const occ = parsed.source.first.get('output.dir');
    const written = occ?.valueRange ? document.getText().slice(occ.valueRange[0], occ.valueRange[1]) : undefined;
    const plain = written !== undefined && /^[^'"#\s][^#]*$/.test(written.trim()) ? written.trim() : undefined;
    let n = 2;
    const stem = (plain ?? '').replace(/-\d+$/, '');
    const stemDir = outputDir.replace(/-\d+$/, '');
    while (existsSync(`${stemDir}-${n}`)) n++;
    const earlier = this.list.find((r) => r.outputDir === outputDir && r.resumable !== false && RESUMABLE_STATES.includes(r.state));
    type Choice = vscode.QuickPickItem & { action: 'new' | 'afresh' | 'resume' };
    const items: Choice[] = [];
    if (plain && occ?.valueRange) {
      items.push({ label: `Train in a new folder: ${stem}-${n}`, detail: `output.dir becomes ${stem}-${n} in ${basename(document.uri.fsPath)}; ${plain} stays as it is`, action: 'new' });
    }
    items.push({ label: `Start afresh in ${plain ?? outputDir}`, detail: 'deletes the checkpoints there; the earlier run can no longer resume', action: 'afresh' });
    if (earlier) items.push({ label: `Resume the earlier run (step ${earlier.step})`, detail: earlier.id, action: 'resume' });
    const pick = await vscode.window.showQuickPick(items, {
      title: `${plain ?? outputDir} already holds a run`, placeHolder: 'Where should this run write?', ignoreFocusOut: true,
    });
    if (!pick) return false;
    if (pick.action === 'resume' && earlier) {
      await this.resume(earlier.id);
      return false;
    }
    if (pick.action === 'afresh') return { overwrite: true };
    const edit = new vscode.WorkspaceEdit();
    edit.replace(document.uri, new vscode.Range(document.positionAt(occ!.valueRange![0]), document.positionAt(occ!.valueRange![1])), `${stem}-${n}`);
    await vscode.workspace.applyEdit(edit);
    if (!document.isUntitled) await document.save();
    return { overwrite: false };
  }

  /** Submits a `.qlora` document; returns the new run's id, or undefined when it was refused. */
  async start(document: vscode.TextDocument): Promise<string | undefined> {
    const client = await this.server.ensureStarted();
    const output = await this.chooseOutput(document);
    if (!output) return undefined;
    const request = {
      configText: document.getText(), baseDir: dirname(document.uri.fsPath), configFile: document.uri.fsPath,
      ...(output.overwrite ? { overwrite: true } : {}),
    };
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

  async rename(id: string, name: string): Promise<void> {
    const client = await this.server.ensureStarted();
    await client.renameRun(id, name);
    await this.refresh();
  }

  async delete(id: string): Promise<void> {
    const client = await this.server.ensureStarted();
    await client.deleteRun(id);
    this.lastStates.delete(id);
    if (this.selectedRunId === id) await this.select(undefined);
    this.log(`run ${id} deleted`);
    await this.refresh();
  }

  /** Runs a command could act on, for a quick pick when none was named. */
  candidates(kind: 'stop' | 'resume'): RunSummary[] {
    return this.list.filter((r) => (kind === 'stop' ? STOPPABLE_STATES.includes(r.state) : isResumable(r)));
  }

  dispose(): void {
    this.watcher.dispose();
    clearTimeout(this.pollTimer);
    this.follow?.dispose();
    this.changed.dispose();
    this.selectionChanged.dispose();
    this.progressChanged.dispose();
    this.liveRecord.dispose();
  }
}

/** A short label for a run: its name, else its output folder's and its id. */
export function runLabel(run: RunSummary): string {
  return `${runName(run)} · ${run.id}`;
}

export { runName };

/** Resume can get somewhere: a resumable state, and not a failure that would only repeat (a config error). */
export function isResumable(run: RunSummary): boolean {
  return RESUMABLE_STATES.includes(run.state) && run.resumable !== false;
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
