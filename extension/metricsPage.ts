// One Metrics page (the sidebar view's or the editor panel's webview) and what feeds it.
// Each time a page (re)loads it says `view/ready` with the newest record id it restored
// from its state; the page then opens the selected run's event stream from that id, so
// the server replays exactly what the page missed from metrics.jsonl and then streams the
// live tail. Runs picked for comparison are streamed whole beside it. `MetricsPages`
// holds what every page shares: the view settings and the compared runs, so the sidebar
// and the editor view show the same.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as vscode from 'vscode';
import type { RunRecord } from '../server/protocol';
import { DEFAULT_SETTINGS, isViewSettings, type ViewSettings } from '../webview/chartData';
import {
  isToHostMessage,
  ReadyQueue,
  ToHost,
  ToView,
  type ExportMessage,
  type ReadyMessage,
  type ToHostMessage,
  type ToViewMessage,
} from '../webview/protocol';
import { COMMANDS } from './commandIds';
import type { RunsController } from './runs';
import { RunStream } from './runStream';
import { ServerError } from './serverClient';
import type { ServerManager } from './serverManager';

const SETTINGS_KEY = 'qlora.metricsSettings';
const COMPARED_KEY = 'qlora.comparedRuns';
/** Most runs drawn beside the shown one. */
const MAX_COMPARED = 5;

export class MetricsPages implements vscode.Disposable {
  private readonly pages = new Set<MetricsPage>();
  private readonly delays: number[] = [];
  private nextDelayLog = 25;
  private readonly subscriptions: vscode.Disposable[] = [];

  constructor(
    readonly extensionUri: vscode.Uri,
    readonly runs: RunsController,
    readonly server: ServerManager,
    private readonly memento: vscode.Memento,
    readonly log: (line: string) => void,
  ) {
    this.subscriptions.push(
      runs.onDidChangeSelection(() => this.pages.forEach((p) => p.selectionChanged())),
      server.onDidChangeHealth((health, detail) => this.pages.forEach((p) => p.post({ type: ToView.health, health, detail }))),
    );
  }

  get webviewRoot(): vscode.Uri {
    return vscode.Uri.joinPath(this.extensionUri, 'dist', 'webview');
  }

  get settings(): ViewSettings {
    const s = this.memento.get<unknown>(SETTINGS_KEY);
    return isViewSettings(s) ? s : DEFAULT_SETTINGS;
  }

  /** Runs drawn beside the selected one, in the order they were picked. */
  get compared(): string[] {
    const ids = this.memento.get<unknown>(COMPARED_KEY);
    return Array.isArray(ids) ? ids.filter((x): x is string => typeof x === 'string') : [];
  }

  /** Adds the runs to the comparison, or takes them out when all are in it already. */
  async toggleCompared(ids: string[]): Promise<void> {
    const now = this.compared;
    const allIn = ids.every((id) => now.includes(id));
    const next = allIn ? now.filter((id) => !ids.includes(id)) : [...now, ...ids.filter((id) => !now.includes(id))].slice(-MAX_COMPARED);
    await this.setCompared(next);
  }

  async setCompared(ids: string[]): Promise<void> {
    await this.memento.update(COMPARED_KEY, ids);
    this.pages.forEach((p) => void p.showCompared());
  }

  /** Makes `webview` a Metrics page; the caller detaches it when hidden and disposes it when gone. */
  attach(webview: vscode.Webview, where: string): MetricsPage {
    webview.options = { enableScripts: true, localResourceRoots: [this.webviewRoot] };
    const page = new MetricsPage(webview, this, where);
    this.pages.add(page);
    webview.html = this.html(webview);
    return page;
  }

  forget(page: MetricsPage): void {
    this.pages.delete(page);
  }

  async changeSettings(from: MetricsPage, settings: ViewSettings): Promise<void> {
    await this.memento.update(SETTINGS_KEY, settings);
    for (const p of this.pages) if (p !== from) p.post({ type: ToView.settings, settings });
  }

  recordDelays(where: string, delaysMs: number[]): void {
    this.delays.push(...delaysMs);
    if (this.delays.length >= this.nextDelayLog) {
      this.nextDelayLog = this.delays.length + 25;
      const sorted = [...this.delays].sort((a, b) => a - b);
      const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))].toFixed(0);
      this.log(`metrics view (${where}): step-to-drawn delay over ${sorted.length} steps: p50 ${q(0.5)} ms, p95 ${q(0.95)} ms`);
    }
  }

  /** Saves an export where the user says (a save dialog), written whole. */
  async saveExport(m: ExportMessage): Promise<void> {
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri;
    const safe = m.fileName.replace(/[^A-Za-z0-9._-]/g, '_');
    const target = await vscode.window.showSaveDialog({
      defaultUri: folder ? vscode.Uri.joinPath(folder, safe) : undefined,
      filters: m.format === 'csv' ? { CSV: ['csv'] } : { PNG: ['png'] },
      saveLabel: 'Export',
    });
    if (!target) return;
    const bytes = m.format === 'csv' ? Buffer.from(m.data, 'utf8') : Buffer.from(m.data.replace(/^data:image\/png;base64,/, ''), 'base64');
    if (target.scheme === 'file') {
      const tmp = join(`${target.fsPath}.tmp-${process.pid}`);
      writeFileSync(tmp, bytes);
      await vscode.workspace.fs.rename(vscode.Uri.file(tmp), target, { overwrite: true });
    } else {
      await vscode.workspace.fs.writeFile(target, bytes);
    }
    this.log(`metrics view: exported ${target.fsPath} (${bytes.length} bytes)`);
    void vscode.window.showInformationMessage(`Exported ${vscode.workspace.asRelativePath(target)}`);
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
    for (const p of [...this.pages]) p.dispose();
    this.subscriptions.forEach((d) => d.dispose());
  }
}

export class MetricsPage implements vscode.Disposable {
  private readonly queue: ReadyQueue<ToViewMessage>;
  private stream: RunStream | undefined;
  private readonly comparedStreams = new Map<string, RunStream>();
  /** The run the page shows (as far as this side knows). */
  private shownRunId: string | null = null;
  /** Records not posted yet, by run, with when the first of them came from the server. */
  private pending = new Map<string, { records: RunRecord[]; receivedAt: number }>();
  private flushScheduled = false;
  private readonly subscription: vscode.Disposable;

  constructor(
    private readonly webview: vscode.Webview,
    private readonly pages: MetricsPages,
    readonly where: string,
  ) {
    this.queue = new ReadyQueue<ToViewMessage>((m) => void webview.postMessage(m));
    this.subscription = webview.onDidReceiveMessage((m: unknown) => {
      if (isToHostMessage(m)) void this.onMessage(m).catch((e: Error) => this.pages.log(`metrics view: ${e.message}`));
      else this.pages.log(`metrics view: ignored an unknown message ${JSON.stringify(m).slice(0, 200)}`);
    });
  }

  post(m: ToViewMessage): void {
    this.queue.post(m);
  }

  selectionChanged(): void {
    if (this.queue.ready) void this.show(null, null);
  }

  /** The page went away (hidden: it is destroyed); the next one says `ready` again with what it restored. */
  detach(): void {
    this.stream?.dispose();
    this.stream = undefined;
    for (const s of this.comparedStreams.values()) s.dispose();
    this.comparedStreams.clear();
    this.pending.clear();
    this.queue.reset();
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
        return this.pages.recordDelays(this.where, m.steps.map((s) => s.delayMs));
      case ToHost.settings:
        return this.pages.changeSettings(this, m.settings);
      case ToHost.export:
        return this.pages.saveExport(m);
      case ToHost.uncompare:
        return this.pages.setCompared(this.pages.compared.filter((id) => id !== m.runId));
    }
  }

  private async onReady(m: ReadyMessage): Promise<void> {
    this.detach();
    this.queue.markReady();
    const { server, runs } = this.pages;
    this.queue.post({ type: ToView.health, health: server.health, detail: server.detail });
    this.queue.post({ type: ToView.settings, settings: this.pages.settings });
    // The page's own run wins over nothing: after a reload the selection may not be stored yet.
    if (!runs.selectedRunId && m.runId) await runs.select(m.runId);
    await this.show(m.runId, m.lastEventId);
    await this.showCompared();
  }

  /** Shows the selected run; `pageRunId`/`pageLastId` say what the page already holds. */
  private async show(pageRunId: string | null, pageLastId: number | null): Promise<void> {
    const { runs, server, log } = this.pages;
    const runId = runs.selectedRunId ?? null;
    this.stream?.dispose();
    this.stream = undefined;
    this.pending.delete(this.shownRunId ?? '');
    const holds = pageRunId ?? this.shownRunId;
    if (!runId) {
      this.shownRunId = null;
      this.queue.post({ type: ToView.select, run: null });
      return;
    }
    let summary;
    try {
      summary = await (await server.ensureStarted()).getRun(runId);
    } catch (e) {
      if (e instanceof ServerError && e.status === 404) {
        log(`metrics view: run ${runId} no longer exists`);
        await runs.select(undefined);
        return;
      }
      log(`metrics view: ${(e as Error).message}`);
      return;
    }
    if (runId !== (runs.selectedRunId ?? null)) return; // the selection moved on meanwhile
    this.shownRunId = runId;
    this.queue.post({ type: ToView.select, run: summary });
    const from = holds === runId && pageLastId !== null ? pageLastId : undefined;
    this.stream = this.open(runId, from);
  }

  /** Sends the compared runs' summaries, then streams each one's whole history. */
  async showCompared(): Promise<void> {
    if (!this.queue.ready) return;
    const { server, log } = this.pages;
    const ids = this.pages.compared;
    for (const [id, s] of this.comparedStreams) {
      if (!ids.includes(id)) {
        s.dispose();
        this.comparedStreams.delete(id);
      }
    }
    const summaries = [];
    for (const id of ids) {
      try {
        summaries.push(await (await server.ensureStarted()).getRun(id));
      } catch (e) {
        log(`metrics view: compared run ${id}: ${(e as Error).message}`);
      }
    }
    this.queue.post({ type: ToView.compare, runs: summaries });
    for (const s of summaries) if (!this.comparedStreams.has(s.id)) this.comparedStreams.set(s.id, this.open(s.id, undefined));
  }

  private open(runId: string, lastEventId: number | undefined): RunStream {
    return new RunStream({
      runId,
      lastEventId,
      client: () => this.pages.server.ensureStarted(),
      onRecord: (r) => this.enqueue(runId, r),
      onProblem: (p) => this.pages.log(`metrics view: ${p}`),
    });
  }

  /** Records arriving together (a replay) go in one message per run; a live one goes out at once. */
  private enqueue(runId: string, record: RunRecord): void {
    const batch = this.pending.get(runId) ?? { records: [], receivedAt: Date.now() };
    batch.records.push(record);
    this.pending.set(runId, batch);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      const batches = this.pending;
      this.pending = new Map();
      for (const [id, { records, receivedAt }] of batches) {
        if (records.length && (id === this.shownRunId || this.comparedStreams.has(id))) this.queue.post({ type: ToView.records, runId: id, records, receivedAt, sentAt: Date.now() });
      }
    });
  }

  dispose(): void {
    this.detach();
    this.subscription.dispose();
    this.pages.forget(this);
  }
}
