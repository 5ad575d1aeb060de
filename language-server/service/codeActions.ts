// Quick fixes: the edits each diagnostic carries (replace an unknown key with the
// suggestion, remove a duplicate, set a value into range), offered for the diagnostics
// under the requested range.
import { CodeActionKind, type CodeAction, type Range } from 'vscode-languageserver';
import type { Range as ConfigRange } from '../../server/config';
import { diagnose, type QloraDocument } from './analysis';
import { toLspDiagnostic, toLspRange } from './lsp';
import type { QloraSettings } from './settings';

export function codeActions(doc: QloraDocument, uri: string, range: Range, settings: QloraSettings): CodeAction[] {
  const actions: CodeAction[] = [];
  for (const d of diagnose(doc, settings)) {
    if (!d.data?.fixes?.length || !overlaps(d.range, range)) continue;
    d.data.fixes.forEach((fix, i) => {
      actions.push({
        title: fix.title,
        kind: CodeActionKind.QuickFix,
        diagnostics: [toLspDiagnostic(d)],
        isPreferred: i === 0,
        edit: { changes: { [uri]: fix.edits.map((e) => ({ range: toLspRange(e.range), newText: e.newText })) } },
      });
    });
  }
  return actions;
}

function before(a: { line: number; character: number }, b: { line: number; character: number }): boolean {
  return a.line < b.line || (a.line === b.line && a.character < b.character);
}

/** Touching counts: a cursor at either end of a diagnostic is on it. */
function overlaps(a: ConfigRange, b: Range): boolean {
  return !before(a.end, b.start) && !before(b.end, a.start);
}
