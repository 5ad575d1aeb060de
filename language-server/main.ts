// Entry point of the bundled language server (dist/languageServer.js). The transport is
// the one named on the command line (--stdio, --node-ipc, --socket=N), stdio when none is.
import { createConnection, ProposedFeatures } from 'vscode-languageserver/node';
import { startLanguageServer } from './server';

const named = process.argv.some((a) => a === '--stdio' || a === '--node-ipc' || a.startsWith('--socket') || a.startsWith('--pipe'));
startLanguageServer(named ? createConnection(ProposedFeatures.all) : createConnection(ProposedFeatures.all, process.stdin, process.stdout));
