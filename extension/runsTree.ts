// The Runs view: every run the training server knows (the CLI's too), newest first, with
// its name, state, step, last loss, start time and duration; context actions by state
// (stop, resume, show metrics, rename, delete, reveal).
import { basename } from 'node:path';
import * as vscode from 'vscode';
import { STOPPABLE_STATES, type RunState, type RunSummary } from '../server/protocol';
import { COMMANDS } from './commandIds';
import { isResumable, runName, type RunsController } from './runs';

/** One icon and one colour per state, so a glance tells them apart. */
const ICONS: Record<RunState, [string, string?]> = {
  queued: ['clock', 'charts.purple'],
  training: ['pulse', 'charts.blue'],
  stopping: ['debug-stop', 'charts.yellow'],
  stopped: ['debug-pause', 'charts.orange'],
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
    const item = new vscode.TreeItem(runName(run), vscode.TreeItemCollapsibleState.None);
    item.id = run.id;
    const parts: string[] = [run.state === 'queued' && run.queuePosition ? `queued #${run.queuePosition}` : run.state];
    if (run.totalSteps) parts.push(`step ${run.step}/${run.totalSteps}`);
    if (run.loss !== null) parts.push(`loss ${run.loss.toFixed(4)}`);
    parts.push(startedText(run.createdAt), duration(run));
    item.description = parts.join(' · ');
    const [icon, color] = ICONS[run.state] ?? ['circle-outline'];
    item.iconPath = new vscode.ThemeIcon(icon, color ? new vscode.ThemeColor(color) : undefined);
    const tooltip = new vscode.MarkdownString(undefined, true);
    tooltip.appendMarkdown(`**${runName(run)}** · run \`${run.id}\` · ${basename(run.configFile)}${run.origin === 'cli' ? ' (qlora CLI)' : ''}\n\n`);
    tooltip.appendMarkdown(`Started ${new Date(run.createdAt).toLocaleString()}, ${duration(run)}\n\n`);
    tooltip.appendMarkdown(`State: ${run.state}${run.error ? ` — ${run.error}` : ''}\n\n`);
    if (run.totalSteps) tooltip.appendMarkdown(`Step ${run.step} of ${run.totalSteps}\n\n`);
    if (run.loss !== null) tooltip.appendMarkdown(`Loss ${run.loss.toFixed(4)}${run.evalLoss !== null ? `, eval loss ${run.evalLoss.toFixed(4)}` : ''}\n\n`);
    if (run.backend) tooltip.appendMarkdown(`Backend: ${run.backend}${run.device ? ` (${run.device})` : ''}\n\n`);
    tooltip.appendMarkdown(`Output: \`${run.outputDir}\``);
    item.tooltip = tooltip;
    // Menus in package.json match these words: `viewItem =~ /stoppable/` and so on.
    const flags = ['run'];
    if (STOPPABLE_STATES.includes(run.state)) flags.push('stoppable');
    if (isResumable(run)) flags.push('resumable');
    if (!['queued', 'training', 'stopping'].includes(run.state)) flags.push('deletable');
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

/** "today 14:02" or "3 Dec 14:02": when the run was started. */
function startedText(iso: string): string {
  const d = new Date(iso);
  const time = d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  return d.toDateString() === new Date().toDateString() ? time : `${d.toLocaleDateString(undefined, { day: 'numeric', month: 'short' })} ${time}`;
}

/** How long it ran: to now while live, else to its last change. */
export function duration(run: RunSummary): string {
  const end = ['queued', 'training', 'stopping'].includes(run.state) ? Date.now() : Date.parse(run.updatedAt);
  const s = Math.max(0, Math.round((end - Date.parse(run.createdAt)) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
