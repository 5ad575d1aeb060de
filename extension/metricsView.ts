// The Metrics webview view: the page in webview/ fed with the selected run's records.
// Each time a page (re)loads it says `view/ready` with the newest record id it restored
// from its state; the provider opens the run's event stream from that id, so the server
// replays exactly what the page missed from metrics.jsonl and then streams the live tail.
import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';
import type { RunRecord } from '../server/protocol';
import {
  isToHostMessage,
  ReadyQueue,
  ToHost,
  ToView,
  type ReadyMessage,
  type ToHostMessage,
  type ToViewMessage,
} from '../webview/protocol';
import { COMMANDS, VIEWS } from './commandIds';
import type { RunsController } from './runs';
import { RunStream } from './runStream';
import { ServerError } from './serverClient';
import type { ServerManager } from './serverManager';

export class MetricsViewProvider implements vscode.WebviewViewProvider, vscode.Disposable {
  static readonly viewId = VIEWS.metrics;
  private view: vscode.WebviewView | undefined;
  private queue: ReadyQueue<ToViewMessage> | undefined;
  private stream: RunStream | undefined;
  /** The run the page shows (as far as this side knows). */
  private shownRunId: string | null = null;
  private pending: RunRecord[] = [];
  private flushScheduled = false;
  private readonly delays: number[] = [];
  private readonly subscriptions: vscode.Disposable[] = [];

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly runs: RunsController,
    private readonly server: ServerManager,
    private readonly log: (line: string) => void,
  ) {
    this.subscriptions.push(
      runs.onDidChangeSelection(() => {
        if (this.queue?.ready) void this.show(null, null);
      }),
      server.onDidChangeHealth((health, detail) => this.queue?.post({ type: ToView.health, health, detail })),
    );
  }

  private get webviewRoot(): vscode.Uri {
    return vscode.Uri.joinPath(this.extensionUri, 'dist', 'webview');
  }

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    view.webview.options = { enableScripts: true, localResourceRoots: [this.webviewRoot] };
    const queue = new ReadyQueue<ToViewMessage>((m) => void view.webview.postMessage(m));
    this.queue = queue;
    view.webview.onDidReceiveMessage((m: unknown) => {
      if (isToHostMessage(m)) void this.onMessage(m);
      else this.log(`metrics view: ignored an unknown message ${JSON.stringify(m).slice(0, 200)}`);
    });
    view.onDidChangeVisibility(() => {
      // A hidden page is destroyed; the next one says `ready` again with what it restored.
      if (!view.visible) this.detach();
    });
    view.onDidDispose(() => {
      this.detach();
      this.view = undefined;
      this.queue = undefined;
    });
    view.webview.html = this.html(view.webview);
  }

  /** Reveals the view (optionally on a run). */
  async reveal(runId?: string): Promise<void> {
    if (runId) await this.runs.select(runId);
    await vscode.commands.executeCommand(`${VIEWS.metrics}.focus`);
  }

  private detach(): void {
    this.stream?.dispose();
    this.stream = undefined;
    this.pending = [];
    this.queue?.reset();
  }

  private async onMessage(m: ToHostMessage): Promise<void> {
    switch (m.type) {
      case ToHost.ready:
        return this.onReady(m);
      case ToHost.stop:
        return void vscode.commands.executeCommand(COMMANDS.stopTraining, m.runId);
      case ToHost.resume:
        return void vscode.commands.executeCommand(COMMANDS.resumeTraining, m.runId);
      case ToHost.drawn:
        this.delays.push(m.delayMs);
        if (this.delays.length % 25 === 0) {
          const sorted = [...this.delays].sort((a, b) => a - b);
          const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))].toFixed(0);
          this.log(`metrics view: step-to-drawn delay over ${sorted.length} steps: p50 ${q(0.5)} ms, p95 ${q(0.95)} ms`);
        }
        return;
    }
  }

  private async onReady(m: ReadyMessage): Promise<void> {
    this.detach();
    this.queue?.markReady();
    this.queue?.post({ type: ToView.health, health: this.server.health, detail: this.server.detail });
    // The page's own run wins over nothing: after a reload the selection may not be stored yet.
    if (!this.runs.selectedRunId && m.runId) await this.runs.select(m.runId);
    await this.show(m.runId, m.lastEventId);
  }

  /** Shows the selected run; `pageRunId`/`pageLastId` say what the page already holds. */
  private async show(pageRunId: string | null, pageLastId: number | null): Promise<void> {
    const runId = this.runs.selectedRunId ?? null;
    this.stream?.dispose();
    this.stream = undefined;
    this.pending = [];
    const holds = pageRunId ?? this.shownRunId;
    if (!runId) {
      this.shownRunId = null;
      this.queue?.post({ type: ToView.select, run: null });
      return;
    }
    let summary;
    try {
      summary = await (await this.server.ensureStarted()).getRun(runId);
    } catch (e) {
      if (e instanceof ServerError && e.status === 404) {
        this.log(`metrics view: run ${runId} no longer exists`);
        await this.runs.select(undefined);
        return;
      }
      this.log(`metrics view: ${(e as Error).message}`);
      return;
    }
    if (runId !== (this.runs.selectedRunId ?? null)) return; // the selection moved on meanwhile
    this.shownRunId = runId;
    this.queue?.post({ type: ToView.select, run: summary });
    const from = holds === runId && pageLastId !== null ? pageLastId : undefined;
    this.stream = new RunStream({
      runId,
      lastEventId: from,
      client: () => this.server.ensureStarted(),
      onRecord: (r) => this.enqueue(runId, r),
      onProblem: (p) => this.log(`metrics view: ${p}`),
    });
  }

  /** Records arriving together (a replay) go in one message; a live one goes out at once. */
  private enqueue(runId: string, record: RunRecord): void {
    this.pending.push(record);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      const records = this.pending;
      this.pending = [];
      if (records.length && runId === this.shownRunId) this.queue?.post({ type: ToView.records, runId, records });
    });
  }

  private html(webview: vscode.Webview): string {
    const nonce = randomBytes(16).toString('base64');
    const script = webview.asWebviewUri(vscode.Uri.joinPath(this.webviewRoot, 'main.js'));
    const style = webview.asWebviewUri(vscode.Uri.joinPath(this.webviewRoot, 'main.css'));
    const csp = [
      "default-src 'none'",
      `style-src ${webview.cspSource}`,
      `font-src ${webview.cspSource}`,
      `img-src ${webview.cspSource} data:`,
      `script-src 'nonce-${nonce}'`,
    ].join('; ');
    return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${style}">
<title>QLoRA Metrics</title>
</head>
<body>
<div id="app"></div>
<script nonce="${nonce}" src="${script}"></script>
</body>
</html>`;
  }

  dispose(): void {
    this.detach();
    this.subscriptions.forEach((d) => d.dispose());
  }
}
