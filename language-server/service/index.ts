// The pure language service: functions of a document (text and folder), a position and
// settings to LSP values. No connection, no editor: the handlers in ../server.ts forward
// to these, and tests call them directly.
import { diagnose, type QloraDocument } from './analysis';
import { toLspDiagnostic } from './lsp';
import type { QloraSettings } from './settings';
import type { Diagnostic } from 'vscode-languageserver';

export { codeActions } from './codeActions';
export { codeLenses, EXPORT_AXOLOTL_COMMAND, START_TRAINING_COMMAND } from './codeLens';
export { complete } from './completion';
export { cursorContext, type CursorContext } from './context';
export { hover } from './hover';
export { DEFAULT_SETTINGS, readSettings, type QloraSettings } from './settings';
export type { QloraDocument } from './analysis';

export function diagnostics(doc: QloraDocument, settings: QloraSettings): Diagnostic[] {
  return diagnose(doc, settings).map(toLspDiagnostic);
}
