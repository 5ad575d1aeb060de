// Try Model: one reusable editor tab (a webview, so nothing asks to be saved) with a
// prompt, max tokens and temperature, and the base model's and base + adapter's text side
// by side, streamed token by token from two `qlora generate --stream` processes; Cancel
// ends them. Opening it for another adapter reuses the tab.
import { randomBytes } from 'node:crypto';
import { basename, dirname } from 'node:path';
import * as vscode from 'vscode';
import { runCli, type CliRun } from './cli';
import type { NodeRuntime } from './nodeRuntime';

type Side = 'base' | 'adapter';
type FromView = { type: 'generate'; prompt: string; maxTokens: number; temperature: number } | { type: 'cancel' };

export class TryModelPanel {
  private static current: TryModelPanel | undefined;
  private runs: CliRun[] = [];
  private generation = 0;

  static show(o: { cliPath: string; runtime: () => NodeRuntime; model: string; adapter: string; log: (line: string) => void }): TryModelPanel {
    const title = `Try ${basename(dirname(o.adapter))}`;
    if (TryModelPanel.current) {
      TryModelPanel.current.cancel();
      TryModelPanel.current.target = o;
      TryModelPanel.current.panel.title = title;
      TryModelPanel.current.post({ type: 'target', model: o.model, adapter: o.adapter });
      TryModelPanel.current.panel.reveal();
      return TryModelPanel.current;
    }
    const panel = vscode.window.createWebviewPanel('qlora.tryModel', title, vscode.ViewColumn.Active, { enableScripts: true, retainContextWhenHidden: true });
    TryModelPanel.current = new TryModelPanel(panel, o);
    return TryModelPanel.current;
  }

  private constructor(
    private readonly panel: vscode.WebviewPanel,
    private target: { cliPath: string; runtime: () => NodeRuntime; model: string; adapter: string; log: (line: string) => void },
  ) {
    panel.webview.html = html(randomBytes(16).toString('base64'), panel.webview.cspSource, target.model, target.adapter);
    panel.webview.onDidReceiveMessage((m: FromView) => {
      if (m?.type === 'generate') this.generate(m);
      else if (m?.type === 'cancel') this.cancel(true);
    });
    panel.onDidDispose(() => {
      this.cancel();
      if (TryModelPanel.current === this) TryModelPanel.current = undefined;
    });
  }

  private post(message: unknown): void {
    void this.panel.webview.postMessage(message);
  }

  private cancel(tell = false): void {
    this.generation++;
    for (const r of this.runs) r.cancel();
    this.runs = [];
    if (tell) this.post({ type: 'cancelled' });
  }

  private generate(m: Extract<FromView, { type: 'generate' }>): void {
    this.cancel();
    const generation = this.generation;
    const maxTokens = Math.max(1, Math.min(4096, Math.round(Number(m.maxTokens) || 64)));
    const temperature = Math.max(0, Math.min(5, Number(m.temperature) || 0));
    const common = ['generate', '--model', this.target.model, '--prompt', String(m.prompt ?? ''), '--max-tokens', String(maxTokens),
      '--temperature', String(temperature), '--stream'];
    const sides: [Side, string[]][] = [['base', common], ['adapter', [...common, '--adapter', this.target.adapter]]];
    let left = sides.length;
    for (const [side, args] of sides) {
      const run = runCli(this.target.cliPath, this.target.runtime(), args, (line) => {
        if (generation !== this.generation) return;
        try {
          const e = JSON.parse(line) as { type: string; text: string; generated?: string };
          if (e.type === 'token') this.post({ type: 'text', side, text: e.text });
          else if (e.type === 'done') this.post({ type: 'text', side, text: e.generated ?? e.text });
        } catch {
          this.target.log(`try model (${side}): ${line}`);
        }
      });
      this.runs.push(run);
      run.done.then(
        () => generation === this.generation && this.post({ type: 'done', side, last: --left === 0 }),
        (e: Error) => generation === this.generation && this.post({ type: 'error', side, message: e.message, last: --left === 0 }),
      );
    }
    this.post({ type: 'started' });
  }
}

function html(nonce: string, cspSource: string, model: string, adapter: string): string {
  const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src ${cspSource} 'nonce-${nonce}'; script-src 'nonce-${nonce}';">
<style nonce="${nonce}">
  body { font-family: var(--vscode-font-family); color: var(--vscode-foreground); padding: 8px 16px; }
  textarea, input { background: var(--vscode-input-background); color: var(--vscode-input-foreground); border: 1px solid var(--vscode-input-border, transparent); font: inherit; }
  textarea { width: 100%; box-sizing: border-box; min-height: 4em; resize: vertical; }
  .row { display: flex; gap: 12px; align-items: center; margin: 8px 0; flex-wrap: wrap; }
  input[type=number] { width: 6em; }
  button { background: var(--vscode-button-background); color: var(--vscode-button-foreground); border: none; padding: 4px 12px; cursor: pointer; }
  button:disabled { opacity: 0.5; cursor: default; }
  button.secondary { background: var(--vscode-button-secondaryBackground); color: var(--vscode-button-secondaryForeground); }
  .sides { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
  .side h3 { font-size: 1em; margin: 8px 0 4px; }
  .side pre { white-space: pre-wrap; word-break: break-word; min-height: 6em; padding: 8px; background: var(--vscode-textCodeBlock-background); font-family: var(--vscode-editor-font-family); }
  .prompt { font-weight: bold; }
  .status { opacity: 0.8; }
  .error { color: var(--vscode-errorForeground); }
</style></head><body>
<div id="target" class="status">Model ${esc(model)} · adapter ${esc(adapter)}</div>
<textarea id="prompt" placeholder="The text the model continues">Day 5.</textarea>
<div class="row">
  <label>Max tokens <input id="max-tokens" type="number" min="1" max="4096" value="64"></label>
  <label>Temperature <input id="temperature" type="number" min="0" max="5" step="0.1" value="0"></label>
  <button id="generate">Generate</button>
  <button id="cancel" class="secondary" disabled>Cancel</button>
  <span id="status" class="status"></span>
</div>
<div class="sides">
  <div class="side"><h3>Base model</h3><pre id="out-base"></pre></div>
  <div class="side"><h3>Base + adapter</h3><pre id="out-adapter"></pre></div>
</div>
<script nonce="${nonce}">
  const vscode = acquireVsCodeApi();
  const $ = (id) => document.getElementById(id);
  const out = { base: $('out-base'), adapter: $('out-adapter') };
  let prompt = '';
  const setBusy = (busy, text) => { $('generate').disabled = busy; $('cancel').disabled = !busy; $('status').textContent = text; };
  const show = (side, text, cls) => {
    out[side].textContent = '';
    const p = document.createElement('span'); p.className = 'prompt'; p.textContent = prompt;
    const t = document.createElement('span'); t.textContent = text; if (cls) t.className = cls;
    out[side].append(p, t);
  };
  $('generate').addEventListener('click', () => {
    prompt = $('prompt').value;
    show('base', ''); show('adapter', '');
    vscode.postMessage({ type: 'generate', prompt, maxTokens: Number($('max-tokens').value), temperature: Number($('temperature').value) });
  });
  $('cancel').addEventListener('click', () => vscode.postMessage({ type: 'cancel' }));
  window.addEventListener('message', (e) => {
    const m = e.data;
    if (m.type === 'started') setBusy(true, 'generating…');
    else if (m.type === 'text') show(m.side, m.text.startsWith(prompt) ? m.text.slice(prompt.length) : m.text);
    else if (m.type === 'error') { show(m.side, m.message, 'error'); if (m.last) setBusy(false, ''); }
    else if (m.type === 'done' && m.last) setBusy(false, 'done');
    else if (m.type === 'cancelled') setBusy(false, 'cancelled');
    else if (m.type === 'target') $('target').textContent = 'Model ' + m.model + ' · adapter ' + m.adapter;
  });
</script></body></html>`;
}
