// The client side of a language server over stdio, for tests and the benchmark: spawns a
// server process, speaks JSON-RPC to it with vscode-jsonrpc, and collects what it
// pushes (diagnostics, log messages) and what it writes to stderr.
import { spawn, type ChildProcess } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import {
  createMessageConnection,
  StreamMessageReader,
  StreamMessageWriter,
  type MessageConnection,
  type PublishDiagnosticsParams,
  type TextDocumentContentChangeEvent,
} from 'vscode-languageserver/node';
import { projectRoot } from '../helpers/shared';

/** Our server from source, the way tests run it. */
export const OUR_SERVER = [process.execPath, '--import', 'tsx', 'language-server/main.ts', '--stdio'];

export interface Published extends PublishDiagnosticsParams {
  /** When the notification arrived (performance.now()). */
  at: number;
}

export class LspClient {
  readonly connection: MessageConnection;
  readonly published: Published[] = [];
  readonly logMessages: { type: number; message: string }[] = [];
  stderr = '';
  /** What the server answered to initialize. */
  capabilities: Record<string, unknown> = {};
  readonly exited: Promise<number | null>;
  private waiters: { match: (p: Published) => boolean; resolve: (p: Published) => void }[] = [];

  private constructor(readonly child: ChildProcess, settings: Record<string, unknown>) {
    this.connection = createMessageConnection(new StreamMessageReader(child.stdout!), new StreamMessageWriter(child.stdin!));
    child.stderr!.on('data', (b: Buffer) => (this.stderr += b.toString()));
    this.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
    this.connection.onNotification('textDocument/publishDiagnostics', (p: PublishDiagnosticsParams) => {
      const published = { ...p, at: performance.now() };
      this.published.push(published);
      this.waiters = this.waiters.filter((w) => {
        if (!w.match(published)) return true;
        w.resolve(published);
        return false;
      });
    });
    this.connection.onNotification('window/logMessage', (p: { type: number; message: string }) => {
      this.logMessages.push(p);
    });
    // Servers may pull settings: answer each section asked from `settings`, null for others.
    this.connection.onRequest('workspace/configuration', (p: unknown) =>
      ((p as { items?: { section?: string }[] }).items ?? []).map((i) => (i.section ? (settings[i.section] ?? null) : null)),
    );
    this.connection.onRequest('client/registerCapability', () => null);
    this.connection.onRequest('window/workDoneProgress/create', () => null);
    this.connection.listen();
  }

  /** Spawns `command` and runs the initialize handshake. */
  static async start(
    command: string[] = OUR_SERVER,
    options: {
      initializationOptions?: unknown;
      rootDir?: string;
      capabilities?: Record<string, unknown>;
      /** Settings by section, for servers that pull them with workspace/configuration. */
      settings?: Record<string, unknown>;
    } = {},
  ): Promise<LspClient> {
    const child = spawn(command[0], command.slice(1), { cwd: projectRoot, stdio: ['pipe', 'pipe', 'pipe'] });
    const client = new LspClient(child, options.settings ?? {});
    const rootUri = options.rootDir ? pathToFileURL(options.rootDir).href : null;
    const result = (await client.connection.sendRequest('initialize', {
      processId: process.pid,
      rootUri,
      workspaceFolders: rootUri ? [{ uri: rootUri, name: 'root' }] : null,
      capabilities: options.capabilities ?? {
        textDocument: {
          publishDiagnostics: { relatedInformation: false, versionSupport: true },
          completion: { completionItem: { snippetSupport: true, documentationFormat: ['markdown'] } },
          hover: { contentFormat: ['markdown'] },
          codeAction: { codeActionLiteralSupport: { codeActionKind: { valueSet: ['quickfix'] } } },
        },
      },
      initializationOptions: options.initializationOptions,
    })) as { capabilities: Record<string, unknown> };
    client.capabilities = result.capabilities;
    await client.connection.sendNotification('initialized', {});
    return client;
  }

  open(uri: string, text: string, languageId = 'qlora', version = 1): Promise<void> {
    return this.connection.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId, version, text } });
  }

  change(uri: string, version: number, contentChanges: TextDocumentContentChangeEvent[]): Promise<void> {
    return this.connection.sendNotification('textDocument/didChange', { textDocument: { uri, version }, contentChanges });
  }

  close(uri: string): Promise<void> {
    return this.connection.sendNotification('textDocument/didClose', { textDocument: { uri } });
  }

  request<R>(method: string, params: unknown): Promise<R> {
    return this.connection.sendRequest(method, params) as Promise<R>;
  }

  /** The next diagnostics for `uri` (for `version`, when given) published from now on. */
  nextDiagnostics(uri: string, version?: number, timeoutMs = 10_000): Promise<Published> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no diagnostics for ${uri} v${version} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        match: (p) => p.uri === uri && (version === undefined || p.version === version),
        resolve: (p) => {
          clearTimeout(timer);
          resolve(p);
        },
      });
    });
  }

  /** LSP's orderly end: shutdown, exit; resolves to the exit code. */
  async stop(): Promise<number | null> {
    await this.connection.sendRequest('shutdown');
    await this.connection.sendNotification('exit');
    const code = await Promise.race([this.exited, new Promise<null>((r) => setTimeout(() => r(null), 5000))]);
    this.connection.dispose();
    if (this.child.exitCode === null) this.child.kill();
    return code;
  }
}

/** A file URI for a path, the form the server receives from editors. */
export function fileUri(path: string): string {
  return pathToFileURL(path).href;
}
