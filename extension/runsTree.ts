// The Runs view: every run the training server knows, newest first, with its state, step
// and last loss; context actions by state (stop, resume, show metrics).
import { basename } from 'node:path';
import * as vscode from 'vscode';
import { RESUMABLE_STATES, type RunState, type RunSummary } from '../server/protocol';
import { COMMANDS } from './commandIds';
import type { RunsController } from './runs';

const ICONS: Record<RunState, [string, string?]> = {
  queued: ['clock'],
  training: ['sync~spin', 'charts.blue'],
  stopping: ['debug-stop', 'charts.yellow'],
  stopped: ['debug-pause'],
  done: ['pass', 'charts.green'],
  error: ['error', 'charts.red'],
  interrupted: ['warning', 'charts.yellow'],
};

export class RunsTreeProvider implements vscode.TreeDataProvider<RunSummary>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<RunSummary | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly subscription: vscode.Disposable;

  constructor(private readonly runs: RunsController) {
    this.subscription = runs.onDidChangeRuns(() => this.changed.fire(undefined));
  }

  async getChildren(element?: RunSummary): Promise<RunSummary[]> {
    if (element) return [];
    // Showing the view is a reason to start the server: the list lives there. Later
    // changes arrive through onDidChangeRuns, so only the first showing fetches here.
    if (!this.runs.isLoaded) await this.runs.refresh().catch(() => {});
    return [...this.runs.runs];
  }

  getTreeItem(run: RunSummary): vscode.TreeItem {
    const item = new vscode.TreeItem(basename(run.configFile) || run.id, vscode.TreeItemCollapsibleState.None);
    item.id = run.id;
    const parts: string[] = [run.state === 'queued' && run.queuePosition ? `queued #${run.queuePosition}` : run.state];
    if (run.totalSteps) parts.push(`step ${run.step}/${run.totalSteps}`);
    if (run.loss !== null) parts.push(`loss ${run.loss.toFixed(4)}`);
    item.description = parts.join(' · ');
    const [icon, color] = ICONS[run.state] ?? ['circle-outline'];
    item.iconPath = new vscode.ThemeIcon(icon, color ? new vscode.ThemeColor(color) : undefined);
    const tooltip = new vscode.MarkdownString(undefined, true);
    tooltip.appendMarkdown(`**${basename(run.configFile)}** · run \`${run.id}\`\n\n`);
    tooltip.appendMarkdown(`State: ${run.state}${run.error ? ` — ${run.error}` : ''}\n\n`);
    if (run.totalSteps) tooltip.appendMarkdown(`Step ${run.step} of ${run.totalSteps}\n\n`);
    if (run.loss !== null) tooltip.appendMarkdown(`Loss ${run.loss.toFixed(4)}${run.evalLoss !== null ? `, eval loss ${run.evalLoss.toFixed(4)}` : ''}\n\n`);
    if (run.backend) tooltip.appendMarkdown(`Backend: ${run.backend}${run.device ? ` (${run.device})` : ''}\n\n`);
    tooltip.appendMarkdown(`Output: \`${run.outputDir}\``);
    item.tooltip = tooltip;
    // Menus in package.json match these words: `viewItem =~ /stoppable/` and so on.
    const flags = ['run'];
    if (run.state === 'training' || run.state === 'queued') flags.push('stoppable');
    if (RESUMABLE_STATES.includes(run.state)) flags.push('resumable');
    if (run.adapter) flags.push('hasAdapter');
    item.contextValue = flags.join(' ');
    item.command = { command: COMMANDS.showMetrics, title: 'Show Metrics', arguments: [run.id] };
    return item;
  }

  dispose(): void {
    this.subscription.dispose();
    this.changed.dispose();
  }
}
