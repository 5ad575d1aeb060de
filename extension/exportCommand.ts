// *QLoRA: Export to GGUF...*: an adapter or model folder to a GGUF file (or an Ollama folder)
// through `qlora export`, in a child process, with progress per tensor and the
// quantization report's summary at the end.
import { existsSync, readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import * as vscode from 'vscode';
import type { GgufExportEvent } from '../server/engine/export/types';
import { runCli } from './cli';
import type { CommandContext } from './commandContext';

/** Context key: folders that hold a model (config.json, or a llama2.c tokenizer .bin), for the explorer's Export entry. */
export const MODEL_FOLDERS_KEY = 'qlora.modelFolders';

export function trackModelFolders(context: vscode.ExtensionContext): void {
  const update = async () => {
    const found = await Promise.all(['**/config.json', '**/tok*.bin'].map((g) => vscode.workspace.findFiles(g, '**/node_modules/**', 1000)));
    await vscode.commands.executeCommand('setContext', MODEL_FOLDERS_KEY, [...new Set(found.flat().map((f) => dirname(f.fsPath)))]);
  };
  for (const glob of ['**/config.json', '**/tok*.bin']) {
    const watcher = vscode.workspace.createFileSystemWatcher(glob);
    context.subscriptions.push(watcher, watcher.onDidCreate(update), watcher.onDidDelete(update));
  }
  void update();
}

function folderOf(target: unknown): string | undefined {
  if (!(target instanceof vscode.Uri)) return undefined;
  const p = target.fsPath;
  return existsSync(join(p, '.')) && !/\.(json|bin|safetensors)$/.test(p) ? p : dirname(p);
}

const TYPES = [
  { label: 'f16', description: 'half precision: what llama.cpp\'s converter writes by default' },
  { label: 'q8_0', description: 'symmetric 8-bit per block of 32: about half of f16, nearly lossless' },
  { label: 'q4_0', description: 'symmetric 4-bit per block of 32: about a quarter of f16' },
  { label: 'q4_1', description: '4-bit with a zero point per block of 32' },
  { label: 'bf16', description: 'float32\'s range in 16 bits' },
  { label: 'f32', description: 'no rounding' },
];

export async function exportToGguf(ctx: CommandContext, target: unknown): Promise<void> {
  let folder = folderOf(target);
  if (!folder) {
    const picked = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, title: 'QLoRA: export which adapter or model folder?' });
    folder = picked?.[0]?.fsPath;
  }
  if (!folder) return;
  const isAdapter = existsSync(join(folder, 'adapter_config.json'));
  const type = await vscode.window.showQuickPick(TYPES, { title: 'QLoRA: GGUF tensor type (the quantization report gives each tensor\'s error)' });
  if (!type) return;
  let mode: 'merged' | 'lora-only' | 'ollama' = 'merged';
  if (isAdapter) {
    const modes = [
      { label: 'merged', description: 'one GGUF: the adapter merged into the base it was trained on' },
      { label: 'lora-only', description: 'the adapter as a llama.cpp LoRA GGUF (load it on the dequantized base)' },
      { label: 'ollama', description: 'a folder for `ollama create`: base.gguf + adapter.gguf + Modelfile' },
    ] as const;
    const m = await vscode.window.showQuickPick(modes, { title: 'QLoRA: export as' });
    if (!m) return;
    mode = m.label;
  }
  const name = basename(isAdapter && basename(folder) === 'adapter' ? dirname(folder) : folder);
  let chosen: string | undefined;
  if (mode === 'ollama') {
    const parent = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, defaultUri: vscode.Uri.file(dirname(folder)), title: 'QLoRA: where to create the Ollama folder' });
    chosen = parent?.[0] ? join(parent[0].fsPath, `${name}-ollama`) : undefined;
  } else {
    const suggested = join(dirname(folder), `${name}${mode === 'lora-only' ? '-lora' : ''}-${type.label}.gguf`);
    chosen = (await vscode.window.showSaveDialog({ defaultUri: vscode.Uri.file(suggested), filters: { GGUF: ['gguf'] }, title: 'QLoRA: write the GGUF file' }))?.fsPath;
  }
  if (!chosen) return;
  const args = ['export', mode === 'ollama' ? 'ollama' : 'gguf', isAdapter ? '--adapter' : '--model', folder, '--out', chosen, '--type', type.label, '--json'];
  if (mode === 'lora-only' || mode === 'ollama') args.push('--lora-only');
  if (existsSync(chosen) && (mode !== 'ollama' || readdirSync(chosen).length > 0)) {
    const replace = 'Replace';
    if ((await vscode.window.showWarningMessage(`${chosen} exists.`, { modal: true }, replace)) !== replace) return;
    args.push('--force');
  }
  let summary = '';
  await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `QLoRA: exporting ${type.label} GGUF`, cancellable: true },
    async (progress, token) => {
      let reported = 0;
      const run = runCli(ctx.cliPath, ctx.runtime(), args, (line) => {
        let e: GgufExportEvent | { type: 'error'; message: string };
        try {
          e = JSON.parse(line);
        } catch {
          return ctx.output.appendLine(line);
        }
        if (e.type === 'tensor') {
          const pct = (100 * e.done) / Math.max(1, e.total);
          progress.report({ increment: pct - reported, message: e.gguf });
          reported = pct;
        } else if (e.type === 'done') {
          summary = `${(e.bytes / 2 ** 20).toFixed(1)} MiB, relative RMSE ${e.report.relativeRmse.toExponential(2)}`;
          ctx.output.appendLine(`export: ${e.out}: ${summary}`);
        } else if (e.type === 'log') {
          ctx.output.appendLine(`export: ${e.message}`);
        }
      });
      token.onCancellationRequested(() => run.cancel());
      return run.done;
    },
  );
  const reveal = 'Reveal in Explorer';
  if ((await vscode.window.showInformationMessage(`QLoRA: exported ${chosen} (${summary})`, reveal)) === reveal) {
    await vscode.commands.executeCommand('revealInExplorer', vscode.Uri.file(chosen));
  }
}
