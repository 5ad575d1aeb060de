// One parse per document text, shared by every request on it: completion, hover, lens
// and quick fixes on an unchanged document all reuse it.
import {
  checkFiles,
  modelFacts,
  parse,
  sortDiagnostics,
  type ConfigDiagnostic,
  type ModelFacts,
  type ParseResult,
} from '../../server/config';
import type { QloraSettings } from './settings';

/** The document as the service sees it: its text and the folder its paths are relative to. */
export interface QloraDocument {
  text: string;
  baseDir: string;
}

let last: { text: string; baseDir: string; parsed: ParseResult } | undefined;

/** parse(), remembering the last result: requests come in bursts on one text. */
export function parsed(doc: QloraDocument): ParseResult {
  if (last && last.text === doc.text && last.baseDir === doc.baseDir) return last.parsed;
  const result = parse(doc.text, doc.baseDir);
  last = { text: doc.text, baseDir: doc.baseDir, parsed: result };
  return result;
}

/** Every problem in the document: the parser's, then (if enabled) the file checks'. */
export function diagnose(doc: QloraDocument, settings: QloraSettings): ConfigDiagnostic[] {
  const result = parsed(doc);
  if (!settings.checkFiles) return result.diagnostics;
  return sortDiagnostics([...result.diagnostics, ...checkFiles(result, { dataLines: settings.dataLinesToCheck })]);
}

export type ReadableModel = Extract<ModelFacts, { ok: true }>;

/** What model.base holds when it names a readable model (and disk checks are on). */
export function baseModel(doc: QloraDocument, settings: QloraSettings): ReadableModel | undefined {
  const base = parsed(doc).config.model.base;
  if (!settings.checkFiles || !base) return undefined;
  try {
    const facts = modelFacts(base);
    return facts.ok ? facts : undefined;
  } catch {
    return undefined; // a folder that vanished between the check and the read
  }
}
