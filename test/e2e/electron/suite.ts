// Runs inside desktop VS Code's extension host (@vscode/test-electron): the end-to-end
// flow through the API. Bundled by electron.e2e.ts; `vscode` comes from the host.
import assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { QloraApi } from '../../../extension/extension';
import { COMMANDS } from '../../../extension/commandIds';
import { RIGHT_VALUE, WRONG_VALUE } from '../fixture';

async function until<T>(what: string, fn: () => T | undefined | false, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function run(): Promise<void> {
  const folder = vscode.workspace.workspaceFolders![0].uri;
  const uri = vscode.Uri.joinPath(folder, 'train.qlora');
  const doc = await vscode.workspace.openTextDocument(uri);
  const editor = await vscode.window.showTextDocument(doc);
  assert.equal(doc.languageId, 'qlora');

  await until('the diagnostic', () => vscode.languages.getDiagnostics(uri).some((d) => d.message.includes(WRONG_VALUE)));

  const line = doc.lineAt(3);
  assert.match(line.text, new RegExp(`quantization: ${WRONG_VALUE}$`));
  await editor.edit((e) => e.delete(new vscode.Range(line.range.end.translate(0, -WRONG_VALUE.length), line.range.end)));
  const at = doc.lineAt(3).range.end;
  const list = await vscode.commands.executeCommand<vscode.CompletionList>('vscode.executeCompletionItemProvider', uri, at);
  const item = list.items.find((i) => (typeof i.label === 'string' ? i.label : i.label.label) === RIGHT_VALUE);
  assert.ok(item, 'nf4 is offered');
  await editor.insertSnippet(new vscode.SnippetString(typeof item.insertText === 'string' ? item.insertText : RIGHT_VALUE), at);
  await doc.save();
  await until('no errors', () => !vscode.languages.getDiagnostics(uri).some((d) => d.severity === vscode.DiagnosticSeverity.Error));

  const api = vscode.extensions.getExtension<QloraApi>('qlora-studio.qlora-studio')!.exports;
  await vscode.commands.executeCommand(COMMANDS.startTraining, uri);
  const id = await until('a selected run', () => api.runs.selectedRunId);
  await until('5 steps', () => (api.runs.live?.step?.step ?? 0) >= 5);
  await vscode.commands.executeCommand(COMMANDS.stopTraining, id);
  await until('stopped', () => api.runs.find(id)?.state === 'stopped');
  const steps = api.runs.find(id)!.step;

  // The server comes back with the run as it was (what a reloaded window sees).
  await vscode.commands.executeCommand(COMMANDS.restartServer);
  await until('the run after a restart', () => api.runs.find(id)?.state === 'stopped' && api.runs.find(id)!.step === steps);
}
