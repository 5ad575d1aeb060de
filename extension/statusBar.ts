// One status-bar item for the training server and the live run: starting / ready /
// training step N, loss x, ETA / error. Health comes from the server manager, progress
// from the runs controller; the ETA from the live run's records through the Metrics
// view's own model (a recent window of steps, eval time apart: webview/eta.ts), so the
// two never disagree. `update` is the only place that decides what it says. A training
// run's progress is shown at most once a second, and only what changed is sent: each
// change is a message to the workbench, whose main thread the Metrics view shares.
import * as vscode from 'vscode';
import type { RunRecord } from '../server/protocol';
import { formatDuration } from '../webview/eta';
import { MetricsModel } from '../webview/model';
import { COMMANDS } from './commandIds';

/** The run states in which a remaining time means something. */
const LIVE_TIMING_STATES: readonly string[] = ['training', 'stopping'];
/** Least time between two progress texts (steps can come several a second). */
const PROGRESS_EVERY_MS = 1000;

interface Shown {
  text: string;
  tooltip: string;
  command: string;
  background: string | undefined;
}
import type { LiveProgress, RunsController } from './runs';
import type { ServerHealth, ServerManager } from './serverManager';

export class StatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('qlora.status', vscode.StatusBarAlignment.Left, 10);
  private readonly subscriptions: vscode.Disposable[] = [];
  /** The followed run's recent records, for its ETA and elapsed time. */
  private timing: MetricsModel | undefined;
  private shown: Shown | undefined;
  private lastProgressAt = 0;
  private progressTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly server: ServerManager,
    private readonly runs: RunsController,
  ) {
    this.item.name = 'QLoRA';
    this.subscriptions.push(
      server.onDidChangeHealth(() => this.update()),
      runs.onDidChangeProgress(() => this.progressSoon()),
      runs.onDidReceiveLiveRecord(({ runId, record }) => this.onRecord(runId, record)),
    );
    this.update();
    this.item.show();
  }

  private onRecord(runId: string, record: RunRecord): void {
    if (this.timing?.runId !== runId) {
      this.timing = MetricsModel.empty();
      const run = this.runs.find(runId);
      if (run) this.timing.select(run);
    }
    this.timing.apply([record]);
  }

  /** A step's progress: shown now if the last was a second ago or more, else at the end of that second. */
  private progressSoon(): void {
    // A state change (stopping, done) is shown at once.
    if (this.runs.live?.run.state !== 'training') return this.update();
    if (this.progressTimer) return;
    const wait = this.lastProgressAt + PROGRESS_EVERY_MS - Date.now();
    if (wait <= 0) return this.update();
    this.progressTimer = setTimeout(() => this.update(), wait);
  }

  update(): void {
    clearTimeout(this.progressTimer);
    this.progressTimer = undefined;
    this.lastProgressAt = Date.now();
    this.show(this.wanted());
  }

  private wanted(): Shown {
    const health: ServerHealth = this.server.health;
    const live = this.runs.live;
    const shown = { command: COMMANDS.showMetrics, background: undefined };
    if (health === 'error') {
      return {
        text: '$(error) QLoRA: error',
        tooltip: `Training server: ${this.server.detail}\nClick to show the server log.`,
        background: 'statusBarItem.errorBackground',
        command: COMMANDS.showServerLog,
      };
    }
    if (health === 'starting') return { ...shown, text: '$(sync~spin) QLoRA: starting', tooltip: 'Starting the training server' };
    if (live && health === 'ready') {
      const timing = this.timing?.runId === live.run.id ? this.timing : undefined;
      const eta = LIVE_TIMING_STATES.includes(live.run.state) ? timing?.remainingMs ?? null : null;
      const elapsed = timing?.elapsedMs ?? null;
      const tooltip = [
        live.run.configFile,
        `run ${live.run.id}, ${live.run.state}`,
        elapsed !== null ? `elapsed ${formatDuration(elapsed)}${eta !== null ? `, about ${formatDuration(eta)} left` : ''}` : '',
        'Click to show the metrics.',
      ].filter(Boolean).join('\n');
      return { ...shown, text: progressText(live, eta), tooltip };
    }
    return {
      ...shown,
      text: health === 'ready' ? '$(check) QLoRA: ready' : '$(beaker) QLoRA',
      tooltip: health === 'ready' ? `Training server ready: ${this.server.detail}` : 'Training server not running (it starts when needed)',
    };
  }

  /** Sets only what changed: every property set is a message to the workbench. */
  private show(next: Shown): void {
    const item = this.item;
    const was = this.shown;
    this.shown = next;
    if (was?.text !== next.text) item.text = next.text;
    if (was?.tooltip !== next.tooltip) item.tooltip = next.tooltip;
    if (was?.command !== next.command) item.command = next.command;
    if (!was || was.background !== next.background) item.backgroundColor = next.background ? new vscode.ThemeColor(next.background) : undefined;
  }

  dispose(): void {
    clearTimeout(this.progressTimer);
    this.subscriptions.forEach((d) => d.dispose());
    this.item.dispose();
  }
}

export function progressText({ run, step }: LiveProgress, etaMs: number | null = null): string {
  if (run.state === 'queued') return `$(clock) QLoRA: queued${run.queuePosition ? ` #${run.queuePosition}` : ''}`;
  if (!step) return `$(sync~spin) QLoRA: ${run.state}`;
  const icon = run.state === 'stopping' ? '$(debug-stop)' : '$(pulse)';
  const eta = etaMs !== null && run.state === 'training' ? ` · ETA ${formatDuration(etaMs)}` : '';
  return `${icon} QLoRA: step ${step.step}/${step.totalSteps} · loss ${step.loss.toFixed(4)}${eta}`;
}
