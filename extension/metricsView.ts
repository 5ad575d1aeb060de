// The Metrics webview view in the QLoRA sidebar: one Metrics page (see metricsPage.ts).
import * as vscode from 'vscode';
import { VIEWS } from './commandIds';
import type { MetricsPage, MetricsPages } from './metricsPage';

export class MetricsViewProvider implements vscode.WebviewViewProvider, vscode.Disposable {
  static readonly viewId = VIEWS.metrics;
  private page: MetricsPage | undefined;

  constructor(private readonly pages: MetricsPages) {}

  resolveWebviewView(view: vscode.WebviewView): void {
    const page = this.pages.attach(view.webview, 'sidebar');
    this.page = page;
    view.onDidChangeVisibility(() => {
      // A hidden page is destroyed; the next one says `ready` again with what it restored.
      if (!view.visible) page.detach();
    });
    view.onDidDispose(() => {
      page.dispose();
      if (this.page === page) this.page = undefined;
    });
  }

  /** Shows the view (optionally on a run) and gives it focus: Show Metrics, Compare in Metrics. */
  async reveal(runId?: string): Promise<void> {
    if (runId) await this.pages.runs.select(runId);
    await vscode.commands.executeCommand(`${VIEWS.metrics}.focus`);
  }

  /**
   * Shows the view (optionally on a run) and leaves the focus where it is: a run that
   * starts or resumes. Moving the focus from the editor cost the workbench's main thread,
   * which the page shares, some 350 ms on two cores (blur handlers, a relayout) just as the
   * run's first steps came; and a quick pick may be about to ask something. (A VS Code
   * without the option focuses it.)
   */
  async show(runId?: string): Promise<void> {
    if (runId) await this.pages.runs.select(runId);
    await vscode.commands.executeCommand(`${VIEWS.metrics}.focus`, { preserveFocus: true });
  }

  dispose(): void {
    this.page?.dispose();
  }
}
