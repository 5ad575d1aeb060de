// Every command of the extension, registered from one table. The ids are in
// commandIds.ts (and package.json); the mapped type below makes a missing handler a
// type error. Handlers get the extension's pieces through one context object.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import * as vscode from 'vscode';
import type { RunSummary } from '../server/protocol';
import type { MergeEvent } from '../server/engine/merge/types';
import { runCli } from './cli';
import { COMMANDS, type CommandName } from './commandIds';
import type { MetricsPages } from './metricsPage';
import type { MetricsPanel } from './metricsPanel';
import type { MetricsViewProvider } from './metricsView';
import type { NodeRuntime } from './nodeRuntime';
import { runLabel, type RunsController } from './runs';
import { guessFormat, scaffoldConfig } from './scaffold';
import type { ServerManager } from './serverManager';

export interface CommandContext {
  runs: RunsController;
  server: ServerManager;
  metrics: MetricsViewProvider;
  metricsPanel: MetricsPanel;
  metricsPages: MetricsPages;
  output: vscode.OutputChannel;
  cliPath: string;
  runtime: () => NodeRuntime;
}

type Handler = (ctx: CommandContext, ...args: unknown[]) => unknown;

const handlers: { [K in CommandName]: Handler } = {
  newConfig: newConfig,
  startTraining: async (ctx, target) => {
    const document = await qloraDocument(target);
    if (!document) return;
    const id = await ctx.runs.start(document);
    if (id) await ctx.metrics.reveal(id);
  },
  stopTraining: async (ctx, target) => {
    const id = runIdOf(target) ?? (await pickRun(ctx.runs, 'stop', 'Stop which run?'));
    if (id) await ctx.runs.stop(id);
  },
  resumeTraining: async (ctx, target) => {
    const id = runIdOf(target) ?? (await pickRun(ctx.runs, 'resume', 'Resume which run?'));
    if (!id) return;
    await ctx.runs.resume(id);
    await ctx.metrics.reveal(id);
  },
  showMetrics: async (ctx, target) => ctx.metrics.reveal(runIdOf(target)),
  mergeAdapter: mergeAdapter,
  tryModel: tryModel,
  refreshRuns: async (ctx) => ctx.runs.refresh(),
  showServerLog: (ctx) => ctx.output.show(true),
  restartServer: async (ctx) => {
    await ctx.server.restart();
    await ctx.runs.refresh();
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
  const text = scaffoldConfig({
    model: relativeTo(folder, model[0].fsPath),
    data: relativeTo(folder, data[0].fsPath),
    format: guessFormat(firstLine),
    outputDir: `./runs/${name}`,
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

/** The base model an adapter names (base_model_name_or_path, relative to the adapter folder). */
function baseOf(adapter: string): string | undefined {
  try {
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
  const prompt = await vscode.window.showInputBox({ title: 'QLoRA: Try Model — prompt', placeHolder: 'The text the model continues' });
  if (prompt === undefined) return;
  const common = ['generate', '--model', model, '--prompt', prompt, '--max-tokens', '64', '--temperature', '0'];
  const [base, tuned] = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: 'QLoRA: generating', cancellable: false },
    async () => Promise.all([runCli(ctx.cliPath, ctx.runtime(), common).done, runCli(ctx.cliPath, ctx.runtime(), [...common, '--adapter', adapter]).done]),
  );
  const show = async (title: string, text: string, column: vscode.ViewColumn) => {
    const doc = await vscode.workspace.openTextDocument({ language: 'markdown', content: `# ${title}\n\n${text}\n` });
    await vscode.window.showTextDocument(doc, { viewColumn: column, preview: false });
  };
  await show(`Base model (${basename(model)})`, base, vscode.ViewColumn.One);
  await show(`Base + adapter (${relative(dirname(dirname(adapter)), adapter)})`, tuned, vscode.ViewColumn.Beside);
}
