// Where things are in a `.qlora` file's text: each key's and value's offsets, kept by the
// parser so that file checks, hover and quick fixes can point at the exact spot.
import type { ConfigDiagnostic, DiagnosticCode, Severity, TextEdit } from './diagnostics';
import type { LineIndex } from './lineIndex';

export interface KeyOccurrence {
  /** `lora` for a section, `lora.r` for a key (also for unknown ones). */
  path: string;
  section: string;
  /** The key as written (the section name for a section). */
  name: string;
  keyRange: [number, number];
  /** Absent when nothing follows the colon. */
  valueRange?: [number, number];
}

/** One entry of `lora.target_modules` as written. */
export interface ModuleEntry {
  name: string;
  range: [number, number];
}

export interface ConfigSource {
  text: string;
  baseDir: string;
  lines: LineIndex;
  /** Every key and section in document order, duplicates and unknown ones included. */
  occurrences: KeyOccurrence[];
  /** The first occurrence of each path: the one whose value counts. */
  first: Map<string, KeyOccurrence>;
  moduleEntries: ModuleEntry[];
}

/** The innermost key or value under `offset`, if any. */
export function occurrenceAt(source: ConfigSource, offset: number): { occ: KeyOccurrence; on: 'key' | 'value' } | undefined {
  let found: { occ: KeyOccurrence; on: 'key' | 'value' } | undefined;
  for (const occ of source.occurrences) {
    if (offset >= occ.keyRange[0] && offset <= occ.keyRange[1]) found = { occ, on: 'key' };
    else if (occ.valueRange && offset >= occ.valueRange[0] && offset <= occ.valueRange[1] && occ.path !== occ.section) {
      found = { occ, on: 'value' };
    }
  }
  return found;
}

/**
 * The edit that deletes a whole `key: value` entry: its lines when it has them to
 * itself (block style), else just the entry and a following comma (flow style).
 */
export function entryDeletion(occ: KeyOccurrence, source: ConfigSource): TextEdit {
  const { lines, text } = source;
  const start = occ.keyRange[0];
  const end = Math.max(occ.keyRange[1], occ.valueRange?.[1] ?? 0);
  const startLine = lines.position(start).line;
  const endLine = lines.position(end).line;
  const before = text.slice(lines.lineStart(startLine), start);
  const after = text.slice(end, lines.lineEnd(endLine));
  if (/^\s*$/.test(before) && /^\s*(#.*)?$/.test(after)) {
    const from = lines.lineStart(startLine);
    const to = endLine + 1 < lines.lineCount ? lines.lineStart(endLine + 1) : text.length;
    return { range: lines.range(from, to), newText: '' };
  }
  const comma = /^\s*,\s*/.exec(text.slice(end));
  return { range: lines.range(start, end + (comma ? comma[0].length : 0)), newText: '' };
}

/** How the parser's parts report a problem: by offsets, turned into a range once. */
export type Report = (
  range: readonly [number, number],
  severity: Severity,
  code: DiagnosticCode,
  message: string,
  data?: ConfigDiagnostic['data'],
) => void;
