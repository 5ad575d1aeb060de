// *QLoRA: Open Metrics*: the Metrics page full-size in the editor area. It is the same
// page as the sidebar's, fed the same way, showing the same run with the same settings
// and compared runs (MetricsPages holds them). One panel at a time; after a window reload
// VS Code hands the panel back through the serializer.
import * as vscode from 'vscode';
import type { MetricsPage, MetricsPages } from './metricsPage';

export const METRICS_PANEL_TYPE = 'qlora.metricsPanel';

export class MetricsPanel implements vscode.Disposable {
  private panel: vscode.WebviewPanel | undefined;
  private page: MetricsPage | undefined;
  private readonly serializer: vscode.Disposable;

  constructor(private readonly pages: MetricsPages) {
    this.serializer = vscode.window.registerWebviewPanelSerializer(METRICS_PANEL_TYPE, {
      deserializeWebviewPanel: async (panel) => this.adopt(panel),
    });
  }

  async open(runId?: string): Promise<void> {
    if (runId) await this.pages.runs.select(runId);
    if (this.panel) {
      this.panel.reveal();
      return;
    }
    const panel = vscode.window.createWebviewPanel(METRICS_PANEL_TYPE, 'QLoRA Metrics', vscode.ViewColumn.Active, {
      enableScripts: true,
      localResourceRoots: [this.pages.webviewRoot],
    });
    this.adopt(panel);
  }

  private adopt(panel: vscode.WebviewPanel): void {
    this.panel?.dispose();
    this.panel = panel;
    panel.iconPath = vscode.Uri.joinPath(this.pages.extensionUri, 'extension', 'media', 'qlora.svg');
    const page = this.pages.attach(panel.webview, 'editor');
    this.page = page;
    panel.onDidChangeViewState(() => {
      if (!panel.visible) page.detach();
    });
    panel.onDidDispose(() => {
      page.dispose();
      if (this.panel === panel) {
        this.panel = undefined;
        this.page = undefined;
      }
    });
  }

  dispose(): void {
    this.serializer.dispose();
    this.panel?.dispose();
  }
}
