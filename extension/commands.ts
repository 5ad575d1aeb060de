// Every command of the extension, registered from one table. The ids are in
// commandIds.ts (and package.json); the mapped type below makes a missing handler a
// type error. Handlers get the extension's pieces through one context object.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import * as vscode from 'vscode';
import { STOPPABLE_STATES, type RunSummary } from '../server/protocol';
import type { MergeEvent } from '../server/engine/merge/types';
import { runCli } from './cli';
import { exportToGguf } from './exportCommand';
import { COMMANDS, type CommandName } from './commandIds';
import type { MetricsPages } from './metricsPage';
import type { MetricsPanel } from './metricsPanel';
import type { MetricsViewProvider } from './metricsView';
import type { NodeRuntime } from './nodeRuntime';
import { runLabel, runName, type RunsController } from './runs';
import { modelFacts } from '../server/config/modelFacts';
import { guessFormat, scaffoldConfig } from './scaffold';
import { exportAxolotl } from './axolotlCommand';
import { TryModelPanel } from './tryModelPanel';
import type { ServerManager } from './serverManager';
import type { CommandContext } from './commandContext';

export type { CommandContext } from './commandContext';

type Handler = (ctx: CommandContext, ...args: unknown[]) => unknown;

const handlers: { [K in CommandName]: Handler } = {
  newConfig: newConfig,
  startTraining: async (ctx, target) => {
    const document = await qloraDocument(target);
    if (!document) return;
    // The Metrics view opens while the server starts and the run is created, not after:
    // a window's first webview takes seconds to load (VS Code starts its service worker
    // with it), and the steps that end before the page listens reach it only then. The
    // new run is selected by start(), which the open page follows.
    const opening = ctx.metrics.show();
    await ctx.runs.start(document);
    await opening;
  },
  stopTraining: async (ctx, target) => {
    const id = runIdOf(target) ?? (await pickRun(ctx.runs, 'stop', 'Stop which run?'));
    if (id) await ctx.runs.stop(id);
  },
  resumeTraining: async (ctx, target) => {
    const id = runIdOf(target) ?? (await pickRun(ctx.runs, 'resume', 'Resume which run?'));
    if (!id) return;
    await ctx.runs.resume(id);
    await ctx.metrics.show(id);
  },
  showMetrics: async (ctx, target) => ctx.metrics.reveal(runIdOf(target)),
  mergeAdapter: mergeAdapter,
  exportGguf: exportToGguf,
  tryModel: tryModel,
  refreshRuns: async (ctx) => ctx.runs.refresh(true),
  showServerLog: (ctx) => ctx.output.show(true),
  restartServer: async (ctx) => {
    await ctx.server.restart();
    await ctx.runs.refresh();
  },
  exportAxolotl: async (ctx, target) => exportAxolotl(ctx, await qloraDocument(target)),
  renameRun: async (ctx, target) => {
    const id = runIdOf(target) ?? (await pickAnyRun(ctx.runs, 'Rename which run?'));
    const run = id ? ctx.runs.find(id) : undefined;
    if (!run) return;
    const name = await vscode.window.showInputBox({
      title: 'QLoRA: Rename Run', value: runName(run), prompt: `Run ${run.id} in ${run.outputDir}`,
      // A notification or a view refreshing beside it (runs end in the background) must not throw away a name being typed.
      ignoreFocusOut: true,
      validateInput: (v) => (v.trim() && v.length <= 200 ? undefined : 'A name of 1-200 characters'),
    });
    if (name !== undefined && name.trim() !== runName(run)) await ctx.runs.rename(run.id, name.trim());
  },
  deleteRun: async (ctx, target) => {
    const id = runIdOf(target) ?? (await pickAnyRun(ctx.runs, 'Delete which run?'));
    const run = id ? ctx.runs.find(id) : undefined;
    if (!run) return;
    const del = 'Delete';
    const pick = await vscode.window.showWarningMessage(
      `Delete run ${runName(run)}?`,
      { modal: true, detail: `This deletes its record, checkpoints and adapter in ${run.outputDir} (other files there stay).` },
      del,
    );
    if (pick === del) await ctx.runs.delete(run.id);
  },
  revealRun: async (ctx, target) => {
    const id = runIdOf(target) ?? (await pickAnyRun(ctx.runs, 'Reveal which run?'));
    const run = id ? ctx.runs.find(id) : undefined;
    if (run) await vscode.commands.executeCommand('revealInExplorer', vscode.Uri.file(run.outputDir));
  },
  stopServer: async (ctx) => {
    const training = ctx.runs.runs.filter((r) => STOPPABLE_STATES.includes(r.state));
    if (training.length > 0) {
      const stop = 'Stop Server';
      const pick = await vscode.window.showWarningMessage(
        `${training.length} run(s) are training or queued. Stopping the server checkpoints them and marks them interrupted (Resume continues them).`,
        { modal: true }, stop,
      );
      if (pick !== stop) return;
    }
    await ctx.server.shutdown();
    void vscode.window.showInformationMessage('QLoRA: the training server stopped. It starts again when needed.');
  },
  openMetrics: async (ctx, target) => ctx.metricsPanel.open(runIdOf(target)),
  // From the Runs tree: the clicked run, or every selected one (VS Code passes them second).
  compareRuns: async (ctx, target, selected) => {
    const ids = (Array.isArray(selected) && selected.length ? selected : [target]).map(runIdOf).filter((id): id is string => !!id);
    if (!ids.length) return;
    await ctx.metricsPages.toggleCompared(ids);
    await ctx.metrics.reveal();
  },
};

/** Registers every command; a failure is shown to the user and logged, never thrown into the void. */
export function registerCommands(ctx: CommandContext): vscode.Disposable[] {
  return (Object.keys(handlers) as CommandName[]).map((name) =>
    vscode.commands.registerCommand(COMMANDS[name], async (...args: unknown[]) => {
      try {
        return await handlers[name](ctx, ...args);
      } catch (e) {
        const message = (e as Error).message ?? String(e);
        ctx.output.appendLine(`${COMMANDS[name]} failed: ${(e as Error).stack ?? message}`);
        const log = 'Show Log';
        if ((await vscode.window.showErrorMessage(`QLoRA: ${message}`, log)) === log) ctx.output.show(true);
      }
    }),
  );
}

/** A run id from a command argument: a string (code, webview), a tree item's run. */
function runIdOf(target: unknown): string | undefined {
  if (typeof target === 'string') return target;
  if (target && typeof target === 'object' && typeof (target as RunSummary).id === 'string') return (target as RunSummary).id;
  return undefined;
}

async function pickRun(runs: RunsController, kind: 'stop' | 'resume', title: string): Promise<string | undefined> {
  await runs.refresh();
  const candidates = runs.candidates(kind);
  if (candidates.length === 0) {
    void vscode.window.showInformationMessage(kind === 'stop' ? 'No run is training or queued.' : 'No run can be resumed.');
    return undefined;
  }
  if (candidates.length === 1) return candidates[0].id;
  const pick = await vscode.window.showQuickPick(
    candidates.map((r) => ({ label: runLabel(r), description: `${r.state} · step ${r.step}`, id: r.id })),
    { title },
  );
  return pick?.id;
}

async function pickAnyRun(runs: RunsController, title: string): Promise<string | undefined> {
  await runs.refresh();
  if (runs.runs.length === 0) return undefined;
  const pick = await vscode.window.showQuickPick(
    runs.runs.map((r) => ({ label: runName(r), description: `${r.state} · ${r.id}`, id: r.id })), { title },
  );
  return pick?.id;
}

/** The `.qlora` document a command is about: its argument (a URI or URI string), else the active editor, else a pick. */
async function qloraDocument(target: unknown): Promise<vscode.TextDocument | undefined> {
  const uri = target instanceof vscode.Uri ? target : typeof target === 'string' ? vscode.Uri.parse(target) : undefined;
  if (uri) return vscode.workspace.openTextDocument(uri);
  const active = vscode.window.activeTextEditor?.document;
  if (active?.languageId === 'qlora') return active;
  const files = await vscode.workspace.findFiles('**/*.qlora', '**/node_modules/**', 50);
  if (files.length === 0) {
    void vscode.window.showErrorMessage('No .qlora file is open. Create one with "QLoRA: New Fine-Tune Config".');
    return undefined;
  }
  const pick =
    files.length === 1
      ? files[0]
      : (await vscode.window.showQuickPick(files.map((f) => ({ label: vscode.workspace.asRelativePath(f), uri: f })), { title: 'Train which config?' }))?.uri;
  return pick && vscode.workspace.openTextDocument(pick);
}

/** A path as a .qlora file writes it: relative to the file's folder, forward slashes. */
function relativeTo(folder: string, target: string): string {
  const rel = relative(folder, target).split(sep).join('/');
  return rel.startsWith('..') || isAbsolute(rel) ? rel : `./${rel}`;
}

async function newConfig(): Promise<void> {
  const root = vscode.workspace.workspaceFolders?.[0]?.uri;
  const model = await vscode.window.showOpenDialog({
    title: 'QLoRA: the base model folder (Hugging Face or llama2.c)',
    canSelectFolders: true,
    canSelectFiles: false,
    defaultUri: root,
    openLabel: 'Use This Model',
  });
  if (!model?.[0]) return;
  const data = await vscode.window.showOpenDialog({
    title: 'QLoRA: the training data (JSONL)',
    canSelectFiles: true,
    filters: { 'JSON Lines': ['jsonl'], 'All files': ['*'] },
    defaultUri: root,
    openLabel: 'Use This Data',
  });
  if (!data?.[0]) return;
  const target = await vscode.window.showSaveDialog({
    title: 'QLoRA: save the config as',
    defaultUri: root ? vscode.Uri.joinPath(root, 'train.qlora') : undefined,
    filters: { 'QLoRA config': ['qlora'] },
  });
  if (!target) return;
  const folder = dirname(target.fsPath);
  let firstLine: string | undefined;
  try {
    firstLine = readFileSync(data[0].fsPath, 'utf8').split('\n', 1)[0];
  } catch {
    firstLine = undefined;
  }
  const name = basename(target.fsPath, '.qlora');
  const facts = modelFacts(model[0].fsPath);
  const text = scaffoldConfig({
    model: relativeTo(folder, model[0].fsPath),
    data: relativeTo(folder, data[0].fsPath),
    format: guessFormat(firstLine),
    outputDir: `./runs/${name}`,
    contextLength: facts.ok ? facts.config.maxPositionEmbeddings : undefined,
  });
  await vscode.workspace.fs.writeFile(target, Buffer.from(text, 'utf8'));
  await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(target));
}

/** The adapter folder a command is about: a folder or its adapter_config.json, a run with an adapter, else a pick. */
async function adapterFolder(ctx: CommandContext, target: unknown, title: string): Promise<string | undefined> {
  if (target instanceof vscode.Uri) return basename(target.fsPath) === 'adapter_config.json' ? dirname(target.fsPath) : target.fsPath;
  const runId = runIdOf(target);
  const run = runId ? ctx.runs.find(runId) : undefined;
  if (run?.adapter) return run.adapter;
  const found = await vscode.workspace.findFiles('**/adapter_config.json', '**/node_modules/**', 100);
  const items = found.map((f) => ({ label: vscode.workspace.asRelativePath(dirname(f.fsPath)), folder: dirname(f.fsPath) }));
  if (items.length === 0) {
    void vscode.window.showErrorMessage('No adapter folder (one holding adapter_config.json) in this workspace: train a run first.');
    return undefined;
  }
  return (await vscode.window.showQuickPick(items, { title }))?.folder;
}

/** The base model of an adapter: the local folder the trainer recorded beside it, else base_model_name_or_path relative to it. */
function baseOf(adapter: string): string | undefined {
  try {
    const sidecar = join(adapter, 'qlora_base_model.json');
    if (existsSync(sidecar)) return resolve(adapter, (JSON.parse(readFileSync(sidecar, 'utf8')) as { path: string }).path);
    const config = JSON.parse(readFileSync(join(adapter, 'adapter_config.json'), 'utf8')) as { base_model_name_or_path?: string };
    const base = config.base_model_name_or_path;
    return base ? resolve(adapter, base) : undefined;
  } catch {
    return undefined;
  }
}

async function mergeAdapter(ctx: CommandContext, target: unknown): Promise<void> {
  const adapter = await adapterFolder(ctx, target, 'Merge which adapter?');
  if (!adapter) return;
  // Beside the run's output folder: runs/my-run/adapter -> runs/my-run-merged.
  const suggested = join(dirname(dirname(adapter)), `${basename(dirname(adapter))}-merged`);
  const out = await vscode.window.showInputBox({
    title: 'QLoRA: Merge Adapter into Base Model — output folder',
    value: suggested,
    prompt: 'A new folder for the standalone Hugging Face model',
    validateInput: (v) => (v.trim() && isAbsolute(v.trim()) ? undefined : 'An absolute folder path'),
  });
  if (!out) return;
  const dtypes = [
    { label: 'float16', description: 'half the size of float32; what most runtimes load' },
    { label: 'bfloat16', description: 'float32\'s range in 16 bits' },
    { label: 'float32', description: 'no rounding of the merged weights' },
  ];
  const dtype = await vscode.window.showQuickPick(dtypes, { title: 'QLoRA: weight dtype of the merged model' });
  if (!dtype) return;
  const args = ['merge', '--adapter', adapter, '--out', out.trim(), '--dtype', dtype.label, '--json'];
  if (existsSync(out.trim()) && readdirSync(out.trim()).length > 0) {
    const replace = 'Replace';
    if ((await vscode.window.showWarningMessage(`${out.trim()} is not empty.`, { modal: true }, replace)) !== replace) return;
    args.push('--force');
  }
  const result = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: 'QLoRA: merging adapter', cancellable: true },
    async (progress, token) => {
      let reported = 0;
      const run = runCli(ctx.cliPath, ctx.runtime(), args, (line) => {
        let e: MergeEvent | { type: 'error'; message: string };
        try {
          e = JSON.parse(line);
        } catch {
          return ctx.output.appendLine(line);
        }
        if (e.type === 'progress') {
          const pct = (100 * e.bytesWritten) / Math.max(1, e.totalBytes);
          progress.report({ increment: pct - reported, message: e.tensor });
          reported = pct;
        } else if (e.type === 'log') {
          ctx.output.appendLine(`merge: ${e.message}`);
        }
      });
      token.onCancellationRequested(() => run.cancel());
      return run.done;
    },
  );
  ctx.output.appendLine(`merge: ${result.split('\n').pop()}`);
  const reveal = 'Reveal in Explorer';
  if ((await vscode.window.showInformationMessage(`QLoRA: merged model written to ${out.trim()}`, reveal)) === reveal) {
    await vscode.commands.executeCommand('revealInExplorer', vscode.Uri.file(out.trim()));
  }
}

async function tryModel(ctx: CommandContext, target: unknown): Promise<void> {
  const adapter = await adapterFolder(ctx, target, 'Try which adapter?');
  if (!adapter) return;
  const model = baseOf(adapter);
  if (!model || !existsSync(model)) {
    void vscode.window.showErrorMessage(`The base model of ${adapter} (adapter_config.json, base_model_name_or_path) was not found.`);
    return;
  }
  // A reusable tab: prompt, max tokens, temperature, Cancel, both texts streamed side by side.
  TryModelPanel.show({ cliPath: ctx.cliPath, runtime: ctx.runtime, model, adapter, log: (l) => ctx.output.appendLine(l) });
}
