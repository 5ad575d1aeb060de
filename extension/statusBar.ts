// One status-bar item for the training server and the live run: starting / ready /
// training step N, loss x, ETA / error. Health comes from the server manager, progress
// from the runs controller; the ETA from the live run's records through the Metrics
// view's own model (a recent window of steps, eval time apart: webview/eta.ts), so the
// two never disagree. `update` is the only place that decides what it says.
import * as vscode from 'vscode';
import type { RunRecord } from '../server/protocol';
import { formatDuration } from '../webview/eta';
import { MetricsModel } from '../webview/model';
import { COMMANDS } from './commandIds';

/** The run states in which a remaining time means something. */
const LIVE_TIMING_STATES: readonly string[] = ['training', 'stopping'];
import type { LiveProgress, RunsController } from './runs';
import type { ServerHealth, ServerManager } from './serverManager';

export class StatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('qlora.status', vscode.StatusBarAlignment.Left, 10);
  private readonly subscriptions: vscode.Disposable[] = [];
  /** The followed run's recent records, for its ETA and elapsed time. */
  private timing: MetricsModel | undefined;

  constructor(
    private readonly server: ServerManager,
    private readonly runs: RunsController,
  ) {
    this.item.name = 'QLoRA';
    this.subscriptions.push(
      server.onDidChangeHealth(() => this.update()),
      runs.onDidChangeProgress(() => this.update()),
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

  update(): void {
    const health: ServerHealth = this.server.health;
    const live = this.runs.live;
    const item = this.item;
    item.backgroundColor = undefined;
    item.command = COMMANDS.showMetrics;
    if (health === 'error') {
      item.text = '$(error) QLoRA: error';
      item.tooltip = `Training server: ${this.server.detail}\nClick to show the server log.`;
      item.backgroundColor = new vscode.ThemeColor('statusBarItem.errorBackground');
      item.command = COMMANDS.showServerLog;
      return;
    }
    if (health === 'starting') {
      item.text = '$(sync~spin) QLoRA: starting';
      item.tooltip = 'Starting the training server';
      return;
    }
    if (live && health === 'ready') {
      const timing = this.timing?.runId === live.run.id ? this.timing : undefined;
      const eta = LIVE_TIMING_STATES.includes(live.run.state) ? timing?.remainingMs ?? null : null;
      const elapsed = timing?.elapsedMs ?? null;
      item.text = progressText(live, eta);
      item.tooltip = [
        live.run.configFile,
        `run ${live.run.id}, ${live.run.state}`,
        elapsed !== null ? `elapsed ${formatDuration(elapsed)}${eta !== null ? `, about ${formatDuration(eta)} left` : ''}` : '',
        'Click to show the metrics.',
      ].filter(Boolean).join('\n');
      return;
    }
    item.text = health === 'ready' ? '$(check) QLoRA: ready' : '$(beaker) QLoRA';
    item.tooltip = health === 'ready' ? `Training server ready: ${this.server.detail}` : 'Training server not running (it starts when needed)';
  }

  dispose(): void {
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
