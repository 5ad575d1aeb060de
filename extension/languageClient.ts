// The client of the `.qlora` language server (dist/languageServer.js, forked by the
// editor's own Node runtime over IPC). Settings under `qlora` reach it on change, and so
// do changes to the data and model files a config points at.
import * as vscode from 'vscode';
import { LanguageClient, TransportKind, type LanguageClientOptions, type ServerOptions } from 'vscode-languageclient/node';

export function createLanguageClient(context: vscode.ExtensionContext): LanguageClient {
  const module = context.asAbsolutePath('dist/languageServer.js');
  const serverOptions: ServerOptions = {
    run: { module, transport: TransportKind.ipc },
    debug: { module, transport: TransportKind.ipc, options: { execArgv: ['--nolazy', '--inspect=6019'] } },
  };
  const watcher = vscode.workspace.createFileSystemWatcher('**/*.{jsonl,json,bin,safetensors}');
  context.subscriptions.push(watcher);
  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ language: 'qlora' }],
    synchronize: { configurationSection: 'qlora', fileEvents: watcher },
    initializationOptions: vscode.workspace.getConfiguration('qlora'),
  };
  return new LanguageClient('qlora', 'QLoRA Language Server', serverOptions, clientOptions);
}
