// The end of a run, announced: done (Try Model, Merge, Export), failed (the error, with
// the config line it names as a link, and Resume only when resuming can get past it),
// interrupted (Resume). Shown once per window, when the run leaves a live state.
import { basename } from 'node:path';
import * as vscode from 'vscode';
import type { RunSummary } from '../server/protocol';
import { COMMANDS } from './commandIds';
import { isResumable, runName } from './runs';

export function announceRun(run: RunSummary, cliCommand: () => string): void {
  void show(run, cliCommand).catch(() => {});
}

async function show(run: RunSummary, cliCommand: () => string): Promise<void> {
  const name = runName(run);
  if (run.state === 'done') {
    const tryIt = 'Try Model', merge = 'Merge', exportIt = 'Export', metrics = 'Show Metrics';
    const loss = run.loss !== null ? `, loss ${run.loss.toFixed(4)}` : '';
    const pick = await vscode.window.showInformationMessage(
      `QLoRA: run ${name} finished (step ${run.step}${loss}).`, ...(run.adapter ? [tryIt, merge, exportIt] : []), metrics,
    );
    if (pick === tryIt) await vscode.commands.executeCommand(COMMANDS.tryModel, run.id);
    else if (pick === merge) await vscode.commands.executeCommand(COMMANDS.mergeAdapter, run.id);
    else if (pick === metrics) await vscode.commands.executeCommand(COMMANDS.showMetrics, run.id);
    else if (pick === exportIt && run.adapter) {
      // The export is a CLI command with choices (type, merge or adapter only): written out in a terminal to adjust and run.
      const terminal = vscode.window.createTerminal({ name: 'QLoRA export' });
      terminal.show();
      terminal.sendText(`${cliCommand()} export gguf --adapter ${quote(run.adapter)} --out ${quote(`${run.outputDir}/${basename(run.outputDir)}.gguf`)} --type q8_0`, false);
    }
    return;
  }
  if (run.state === 'error') {
    const at = run.errorLocation;
    const open = at ? `Open ${basename(at.file)}:${at.line}` : undefined;
    const resume = isResumable(run) ? 'Resume' : undefined;
    const pick = await vscode.window.showErrorMessage(
      `QLoRA: run ${name} failed: ${run.error ?? 'unknown error'}`, ...[open, resume, 'Show Metrics'].filter((x): x is string => !!x),
    );
    if (pick && pick === open && at) {
      const line = Math.max(0, at.line - 1);
      await vscode.window.showTextDocument(vscode.Uri.file(at.file), { selection: new vscode.Range(line, 0, line, 0) });
    } else if (pick === resume) await vscode.commands.executeCommand(COMMANDS.resumeTraining, run.id);
    else if (pick === 'Show Metrics') await vscode.commands.executeCommand(COMMANDS.showMetrics, run.id);
    return;
  }
  if (run.state === 'interrupted') {
    const pick = await vscode.window.showWarningMessage(
      `QLoRA: run ${name} was interrupted at step ${run.step}${run.checkpointStep !== null ? ` (checkpoint at step ${run.checkpointStep})` : ''}.`, 'Resume',
    );
    if (pick === 'Resume') await vscode.commands.executeCommand(COMMANDS.resumeTraining, run.id);
  }
}

function quote(s: string): string {
  return /^[\w./@+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
