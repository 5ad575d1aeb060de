// The LSP handlers: thin forwarding from the connection to the pure service in
// ./service. Started over stdio by main.ts (the extension's language client) and by
// `qlora lsp --stdio`.
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CodeActionKind,
  createConnection,
  ProposedFeatures,
  TextDocuments,
  TextDocumentSyncKind,
  type Connection,
  type InitializeResult,
} from 'vscode-languageserver/node';
import { TextDocument } from 'vscode-languageserver-textdocument';
import {
  codeActions,
  codeLenses,
  complete,
  DEFAULT_SETTINGS,
  diagnostics,
  hover,
  readSettings,
  type QloraDocument,
  type QloraSettings,
} from './service';
import { guarded, internalDiagnostic } from './guard';

/** What the handlers call: the pure service, or (in tests) one whose parts throw. */
export interface LanguageService {
  diagnostics: typeof diagnostics;
  complete: typeof complete;
  hover: typeof hover;
  codeLenses: typeof codeLenses;
  codeActions: typeof codeActions;
}

const SERVICE: LanguageService = { diagnostics, complete, hover, codeLenses, codeActions };

/**
 * Quiet time after an edit before a document is checked: a burst of edits (typing, a
 * paste, a formatter's many small edits) costs one pass over the text, not one each.
 */
export const DIAGNOSTICS_DEBOUNCE_MS = 15;

/** Characters after which a client should ask for completion without a keystroke of a name. */
const TRIGGER_CHARACTERS = [':', ' ', '/', '[', ',', '-'];

/**
 * Serves `.qlora` documents on `connection` (by default one over the transport named on
 * the command line, stdio when none is) and starts listening. Returns the connection.
 */
export function startLanguageServer(
  connection: Connection = createConnection(ProposedFeatures.all),
  service: LanguageService = SERVICE,
): Connection {
  const documents = new TextDocuments(TextDocument);
  let settings: QloraSettings = DEFAULT_SETTINGS;
  let workspaceFolder: string | undefined;
  const pending = new Map<string, NodeJS.Timeout>();
  // Every handler turns a failure into an empty answer (logged once), and keeps serving.
  const guard = guarded((message) => connection.console.error(message));

  const view = (uri: string): { doc: QloraDocument; text: TextDocument } | undefined => {
    const text = documents.get(uri);
    return text ? { doc: { text: text.getText(), baseDir: baseDirOf(uri, workspaceFolder) }, text } : undefined;
  };

  const validate = (uri: string): void => {
    const v = view(uri);
    if (!v) return;
    const version = v.text.version;
    let found;
    try {
      found = service.diagnostics(v.doc, settings);
    } catch (e) {
      // The document stays checkable: the failure itself is what the user sees on it.
      connection.console.error(`qlora: checking ${uri} failed: ${(e as Error)?.stack ?? String(e)}`);
      found = [internalDiagnostic(e)];
    }
    // A newer text arrived meanwhile: its own pass is scheduled, and this result is stale.
    if (documents.get(uri)?.version !== version) return;
    connection.sendDiagnostics({ uri, version, diagnostics: found });
  };

  /** Validates once per burst of changes, after it goes quiet: the latest text wins. */
  const schedule = (uri: string): void => {
    const earlier = pending.get(uri);
    if (earlier) clearTimeout(earlier);
    pending.set(
      uri,
      setTimeout(() => {
        pending.delete(uri);
        // After the I/O phase: edits already waiting in the pipe are read first, and if one
        // arrived (it scheduled its own pass) this pass is dropped before it costs anything.
        setImmediate(() => {
          if (!pending.has(uri)) validate(uri);
        });
      }, DIAGNOSTICS_DEBOUNCE_MS),
    );
  };
  const revalidateAll = () => documents.all().forEach((d) => schedule(d.uri));

  connection.onInitialize((params): InitializeResult => {
    settings = readSettings(params.initializationOptions);
    const folder = params.workspaceFolders?.[0]?.uri ?? params.rootUri ?? undefined;
    workspaceFolder = folder?.startsWith('file:') ? pathOf(folder) : undefined;
    return {
      capabilities: {
        textDocumentSync: TextDocumentSyncKind.Incremental,
        completionProvider: { triggerCharacters: TRIGGER_CHARACTERS },
        hoverProvider: true,
        codeLensProvider: { resolveProvider: false },
        codeActionProvider: { codeActionKinds: [CodeActionKind.QuickFix] },
      },
      serverInfo: { name: 'qlora-language-server', version: '0.1.0' },
    };
  });

  connection.onDidChangeConfiguration((change) => {
    const section = (change.settings as { qlora?: unknown } | null)?.qlora;
    if (section !== undefined) settings = readSettings(section);
    revalidateAll();
  });
  // Data and model files change on disk too: re-check what is open.
  connection.onDidChangeWatchedFiles(revalidateAll);

  documents.onDidChangeContent((e) => schedule(e.document.uri));
  documents.onDidSave((e) => schedule(e.document.uri));
  documents.onDidClose((e) => {
    const timer = pending.get(e.document.uri);
    if (timer) clearTimeout(timer);
    pending.delete(e.document.uri);
    connection.sendDiagnostics({ uri: e.document.uri, diagnostics: [] });
  });

  connection.onCompletion(guard('completion', [], (p) => {
    const v = view(p.textDocument.uri);
    return v ? service.complete(v.doc, p.position, settings) : [];
  }));
  connection.onHover(guard('hover', null, (p) => {
    const v = view(p.textDocument.uri);
    return v ? service.hover(v.doc, p.position, settings) : null;
  }));
  connection.onCodeLens(guard('code lens', [], (p) => {
    const v = view(p.textDocument.uri);
    return v ? service.codeLenses(v.doc, p.textDocument.uri, settings) : [];
  }));
  connection.onCodeAction(guard('code actions', [], (p) => {
    const v = view(p.textDocument.uri);
    return v ? service.codeActions(v.doc, p.textDocument.uri, p.range, settings) : [];
  }));

  documents.listen(connection);
  connection.listen();
  return connection;
}

/** The folder relative paths resolve against: the file's own, else the workspace's. */
function baseDirOf(uri: string, workspaceFolder: string | undefined): string {
  const path = uri.startsWith('file:') ? pathOf(uri) : undefined;
  return path ? dirname(path) : (workspaceFolder ?? process.cwd());
}

/** The path of a file URI; undefined for one Node cannot map (a remote host, say). */
function pathOf(uri: string): string | undefined {
  try {
    return fileURLToPath(uri);
  } catch {
    return undefined;
  }
}
