// Activation: builds the extension's pieces once and pushes every disposable into
// context.subscriptions. The training server is not the window's: it keeps training
// after a reload or a closed tab, and this window reconnects to it (serverManager.ts).
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as vscode from 'vscode';
import type { LanguageClient } from 'vscode-languageclient/node';
import { ADAPTER_FOLDERS_KEY, VIEWS } from './commandIds';
import { trackModelFolders } from './exportCommand';
import { registerCommands } from './commands';
import { createLanguageClient } from './languageClient';
import { MetricsPages } from './metricsPage';
import { MetricsPanel } from './metricsPanel';
import { MetricsViewProvider } from './metricsView';
import { resolveNodeRuntime } from './nodeRuntime';
import { announceRun } from './notifications';
import { RunsController } from './runs';
import { RunsTreeProvider } from './runsTree';
import { readRecord } from '../server/http/stateFile';
import { ServerManager } from './serverManager';
import { StatusBar } from './statusBar';

let server: ServerManager | undefined;
let client: LanguageClient | undefined;

/** What activate returns: for tests that drive the extension through the API. */
export interface QloraApi {
  server: ServerManager;
  runs: RunsController;
}

export async function activate(context: vscode.ExtensionContext): Promise<QloraApi> {
  const output = vscode.window.createOutputChannel('QLoRA');
  const log = (line: string) => output.appendLine(`[${new Date().toISOString().slice(11, 23)}] ${line}`);
  context.subscriptions.push(output);

  // Runs live in this workspace's storage, so a reloaded window finds them again.
  const storage = context.storageUri ?? context.globalStorageUri;
  const runsDir = join(storage.fsPath, 'runs');
  mkdirSync(runsDir, { recursive: true });
  const cliPath = context.asAbsolutePath(join('dist', 'cli.js'));
  const runtime = () => resolveNodeRuntime(vscode.workspace.getConfiguration('qlora.server').get<string>('nodePath'));

  const idleTimeoutMs = () => 60_000 * Math.max(0, vscode.workspace.getConfiguration('qlora.server').get<number>('idleTimeoutMinutes') ?? 30);
  server = new ServerManager({ cliPath, runsDir, runtime, idleTimeoutMs, log: (l) => log(`server: ${l}`) });
  const manager = server;
  context.subscriptions.push(manager.onDidChangeHealth((health, detail) => log(`server health: ${health} (${detail})`)));

  const cliCommand = () => `node ${JSON.stringify(cliPath)}`;
  const runs = new RunsController(manager, context.workspaceState, log, (run) => announceRun(run, cliCommand));
  const metricsPages = new MetricsPages(context.extensionUri, runs, manager, context.workspaceState, log);
  const metrics = new MetricsViewProvider(metricsPages);
  const metricsPanel = new MetricsPanel(metricsPages);
  const tree = new RunsTreeProvider(runs);
  context.subscriptions.push(
    runs,
    metrics,
    metricsPanel,
    metricsPages,
    tree,
    new StatusBar(manager, runs),
    vscode.window.registerWebviewViewProvider(VIEWS.metrics, metrics),
    vscode.window.createTreeView(VIEWS.runs, { treeDataProvider: tree, showCollapseAll: false, canSelectMany: true }),
    ...registerCommands({ runs, server: manager, metrics, metricsPanel, metricsPages, output, cliPath, runtime }),
  );
  // A crashed server comes back with its runs: show them again.
  context.subscriptions.push(
    manager.onDidChangeHealth((health) => {
      if (health === 'ready') void runs.refresh().catch(() => {});
    }),
  );
  trackAdapterFolders(context);
  trackModelFolders(context);
  // A server that outlived the previous window (a reload, a closed tab): reconnect now, so
  // the status bar and the Runs view follow its run without waiting for a view to open.
  if (readRecord(manager.stateFile)) void runs.refresh().catch((e: Error) => log(`reconnecting: ${e.message}`));

  client = createLanguageClient(context);
  // The language server is a separate feature: its failure must not take the rest down.
  client.start().catch((e: Error) => log(`language server failed to start: ${e.message}`));
  return { server: manager, runs };
}

export async function deactivate(): Promise<void> {
  // The server stays: runs go on without the window (it stops by itself when idle).
  server?.dispose();
  await Promise.allSettled([client?.stop()]);
}

/** Keeps the context key listing folders that hold adapter_config.json, for the explorer's Merge entry. */
function trackAdapterFolders(context: vscode.ExtensionContext): void {
  const update = async () => {
    const files = await vscode.workspace.findFiles('**/adapter_config.json', '**/node_modules/**', 1000);
    await vscode.commands.executeCommand('setContext', ADAPTER_FOLDERS_KEY, files.map((f) => dirname(f.fsPath)));
  };
  const watcher = vscode.workspace.createFileSystemWatcher('**/adapter_config.json');
  context.subscriptions.push(watcher, watcher.onDidCreate(update), watcher.onDidDelete(update));
  void update();
}
