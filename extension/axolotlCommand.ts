// *QLoRA: Export for Axolotl...*: the open .qlora run as an Axolotl config (for a cluster:
// DeepSpeed ZeRO or FSDP), through the bundled `qlora export axolotl` so that the editor
// and the CLI write the same file. Warnings (keys without an Axolotl equivalent) are shown.
import { dirname, join } from 'node:path';
import * as vscode from 'vscode';
import { runCli } from './cli';
import type { NodeRuntime } from './nodeRuntime';

/** What the command needs of the extension (a subset of the command context). */
export interface AxolotlExportContext {
  cliPath: string;
  runtime: () => NodeRuntime;
  output: vscode.OutputChannel;
}

export async function exportAxolotl(ctx: AxolotlExportContext, document: vscode.TextDocument | undefined): Promise<void> {
  if (!document) return;
  if (document.isDirty) await document.save();
  const baseModel = await vscode.window.showInputBox({
    title: 'Export for Axolotl (1/3): base model',
    prompt: 'The Hugging Face hub id (or cluster path) Axolotl loads as base_model; empty keeps model.base',
    placeHolder: 'e.g. HuggingFaceTB/SmolLM2-135M',
  });
  if (baseModel === undefined) return;
  const gpus = await vscode.window.showQuickPick(['1', '2', '4', '8'], { title: 'Export for Axolotl (2/3): GPUs' });
  if (!gpus) return;
  let multi: string | undefined;
  if (gpus !== '1') {
    multi = (await vscode.window.showQuickPick([
      { label: 'deepspeed', description: 'DeepSpeed ZeRO-2 (deepspeed_configs/zero2.json)' },
      { label: 'fsdp', description: 'FSDP 2, sharded state dict' },
    ], { title: 'Export for Axolotl (3/3): across GPUs with' }))?.label;
    if (!multi) return;
  }
  const target = await vscode.window.showSaveDialog({
    title: 'Write the Axolotl config', defaultUri: vscode.Uri.file(join(dirname(document.uri.fsPath), 'axolotl.yml')),
    filters: { YAML: ['yml', 'yaml'] },
  });
  if (!target) return;
  const args = ['export', 'axolotl', document.uri.fsPath, '--out', target.fsPath, '--force', '--json', '--gpus', gpus];
  if (baseModel.trim()) args.push('--base-model', baseModel.trim());
  if (multi) args.push('--multi-gpu', multi);
  const stdout = await runCli(ctx.cliPath, ctx.runtime(), args).done;
  const { warnings } = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as { warnings?: string[] };
  for (const w of warnings ?? []) ctx.output.appendLine(`Axolotl export: ${w}`);
  const open = await vscode.window.showInformationMessage(
    `Wrote ${vscode.workspace.asRelativePath(target)}${warnings?.length ? ` (${warnings.length} warning${warnings.length > 1 ? 's' : ''}: ${warnings.join('; ')})` : ''}. Run it with \`axolotl train\`.`,
    'Open');
  if (open) await vscode.window.showTextDocument(target);
}
