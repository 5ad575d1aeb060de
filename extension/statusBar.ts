// One status-bar item for the training server and the live run: starting / ready /
// training step N, loss x / error. Health comes from the server manager, progress from
// the runs controller; `update` is the only place that decides what it says.
import * as vscode from 'vscode';
import { COMMANDS } from './commandIds';
import type { LiveProgress, RunsController } from './runs';
import type { ServerHealth, ServerManager } from './serverManager';

export class StatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('qlora.status', vscode.StatusBarAlignment.Left, 10);
  private readonly subscriptions: vscode.Disposable[] = [];

  constructor(
    private readonly server: ServerManager,
    private readonly runs: RunsController,
  ) {
    this.item.name = 'QLoRA';
    this.subscriptions.push(
      server.onDidChangeHealth(() => this.update()),
      runs.onDidChangeProgress(() => this.update()),
    );
    this.update();
    this.item.show();
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
      item.text = progressText(live);
      item.tooltip = `${live.run.configFile}\nrun ${live.run.id}, ${live.run.state}\nClick to show the metrics.`;
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

export function progressText({ run, step }: LiveProgress): string {
  if (run.state === 'queued') return `$(clock) QLoRA: queued${run.queuePosition ? ` #${run.queuePosition}` : ''}`;
  if (!step) return `$(sync~spin) QLoRA: ${run.state}`;
  const icon = run.state === 'stopping' ? '$(debug-stop)' : '$(pulse)';
  return `${icon} QLoRA: step ${step.step}/${step.totalSteps} · loss ${step.loss.toFixed(4)}`;
}
