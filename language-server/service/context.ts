// What the cursor is in the middle of, read from the lines around it rather than from the
// YAML tree: while someone types, the file is usually not valid YAML (`lora:\n  r`), but
// its indentation still says which section and key they are at.
import { findKey, isSection, LineIndex, type KeyInfo, type Position, type SectionName } from '../../server/config';

/** A span of the current line (offsets into the document) that a completion replaces. */
export interface Span {
  start: number;
  end: number;
}

export type CursorContext =
  /** Typing a top-level name. */
  | { kind: 'section'; prefix: string; span: Span; present: Set<string>; keyOnly: boolean }
  /** Typing a key inside a section. */
  | { kind: 'key'; section: SectionName; prefix: string; span: Span; present: Set<string>; keyOnly: boolean; indent: string }
  /** After `key:`; `listed` holds the entries already in a flow list (`[a, b, |`). */
  | { kind: 'value'; key: KeyInfo; prefix: string; span: Span; inFlowList: boolean; listed: string[] }
  /** After `- ` under a key that holds a list. */
  | { kind: 'listItem'; key: KeyInfo; prefix: string; span: Span; listed: string[] }
  | { kind: 'none' };

const KEY_LINE = /^(\s*)([A-Za-z_][\w.-]*)\s*:(?:\s|$)/;
const BARE_KEY_LINE = /^(\s*)([A-Za-z_][\w.-]*)\s*:\s*(#.*)?$/;
const NAME_CHAR = /[\w.-]/;

export function cursorContext(text: string, position: Position, lines = new LineIndex(text)): CursorContext {
  if (position.line >= lines.lineCount) return { kind: 'none' };
  const lineStart = lines.lineStart(position.line);
  const line = lines.lineText(position.line);
  const col = Math.min(position.character, line.length);
  const before = line.slice(0, col);
  if (/(^|\s)#/.test(before) || /^\s*(---|\.\.\.)/.test(before)) return { kind: 'none' };
  const indent = /^\s*/.exec(before)![0];

  const item = /^(\s*)-\s+(.*)$/.exec(before) ?? /^(\s*)-$/.exec(before);
  if (item) {
    const parent = listParent(lines, position.line, item[1].length);
    if (!parent) return { kind: 'none' };
    const prefix = (item[2] ?? '').trimStart();
    const start = lineStart + col - prefix.length;
    return { kind: 'listItem', key: parent, prefix, span: { start, end: wordEnd(text, lineStart + col) }, listed: blockListEntries(lines, position.line, item[1].length) };
  }

  const keyed = KEY_LINE.exec(before);
  if (keyed) {
    if (keyed[1].length === 0) return { kind: 'none' }; // after `lora:`: a section holds keys, not a value
    const section = sectionAbove(lines, position.line, keyed[1].length);
    const key = section ? findKey(section, keyed[2]) : undefined;
    if (!key) return { kind: 'none' };
    const valueStart = lineStart + keyed[0].length + (/^\s*/.exec(before.slice(keyed[0].length))?.[0].length ?? 0);
    const valueText = text.slice(valueStart, lineStart + col);
    const flow = /^\[([^\]]*)$/.exec(valueText);
    if (flow) {
      const parts = flow[1].split(',');
      const prefix = parts[parts.length - 1].trimStart();
      const listed = parts.slice(0, -1).map((p) => p.trim()).filter(Boolean);
      return { kind: 'value', key, prefix, span: { start: lineStart + col - prefix.length, end: wordEnd(text, lineStart + col) }, inFlowList: true, listed };
    }
    return { kind: 'value', key, prefix: valueText, span: { start: valueStart, end: valueEnd(text, lineStart + col, lines.lineEnd(position.line)) }, inFlowList: false, listed: [] };
  }

  const typing = /^(\s*)([A-Za-z_][\w.-]*)?$/.exec(before);
  if (!typing) return { kind: 'none' };
  const prefix = typing[2] ?? '';
  const span = { start: lineStart + col - prefix.length, end: wordEnd(text, lineStart + col) };
  // On a line that already has `name:` after the cursor, only the name is replaced.
  const keyOnly = /^[\w.-]*\s*:/.test(line.slice(col));
  if (indent.length === 0) {
    return { kind: 'section', prefix, span, present: sectionsPresent(lines, position.line), keyOnly };
  }
  const section = sectionAbove(lines, position.line, indent.length);
  if (!section) return { kind: 'none' };
  return { kind: 'key', section, prefix, span, present: keysPresent(lines, position.line, section), keyOnly, indent };
}

/** The known section whose block holds a line indented by `indent`, if any. */
export function sectionAbove(lines: LineIndex, line: number, indent: number): SectionName | undefined {
  for (let l = line - 1; l >= 0; l--) {
    const t = lines.lineText(l);
    if (isBlank(t)) continue;
    const own = /^\s*/.exec(t)![0].length;
    if (own >= indent) continue;
    if (own > 0) return undefined; // nested deeper than a section's keys
    const name = KEY_LINE.exec(t)?.[2];
    return name && isSection(name) ? name : undefined;
  }
  return undefined;
}

/** The key a `- ` item at `indent` belongs to: a bare `key:` above it at most as indented. */
function listParent(lines: LineIndex, line: number, indent: number): KeyInfo | undefined {
  for (let l = line - 1; l >= 0; l--) {
    const t = lines.lineText(l);
    if (isBlank(t)) continue;
    const own = /^\s*/.exec(t)![0].length;
    if (/^\s*-(\s|$)/.test(t) && own === indent) continue; // an earlier item of the same list
    const m = BARE_KEY_LINE.exec(t);
    if (!m || own > indent || own === 0) return undefined;
    const section = sectionAbove(lines, l, own);
    return section ? findKey(section, m[2]) : undefined;
  }
  return undefined;
}

/** The entries of the block list around `line`, e.g. the modules already named. */
function blockListEntries(lines: LineIndex, line: number, indent: number): string[] {
  const out: string[] = [];
  const collect = (l: number): boolean => {
    const t = lines.lineText(l);
    if (isBlank(t)) return true;
    const m = /^(\s*)-\s*([^#\s]*)/.exec(t);
    if (!m || m[1].length !== indent) return false;
    if (m[2]) out.push(m[2]);
    return true;
  };
  for (let l = line - 1; l >= 0 && collect(l); l--);
  for (let l = line + 1; l < lines.lineCount && collect(l); l++);
  return out;
}

function sectionsPresent(lines: LineIndex, except: number): Set<string> {
  const out = new Set<string>();
  for (let l = 0; l < lines.lineCount; l++) {
    if (l === except) continue;
    const m = /^([A-Za-z_][\w.-]*)\s*:/.exec(lines.lineText(l));
    if (m) out.add(m[1]);
  }
  return out;
}

/** Keys already written in `section` (every block of it), other than on `except`. */
function keysPresent(lines: LineIndex, except: number, section: SectionName): Set<string> {
  const out = new Set<string>();
  let inSection = false;
  for (let l = 0; l < lines.lineCount; l++) {
    const t = lines.lineText(l);
    if (isBlank(t)) continue;
    const top = /^([A-Za-z_][\w.-]*)\s*:/.exec(t);
    if (top) {
      inSection = top[1] === section;
      continue;
    }
    if (/^\S/.test(t)) inSection = false;
    if (!inSection || l === except) continue;
    const m = KEY_LINE.exec(t);
    if (m) out.add(m[2]);
  }
  return out;
}

function isBlank(line: string): boolean {
  return /^\s*(#.*)?$/.test(line);
}

/** The end of the name the cursor is in: a completion replaces the whole word. */
function wordEnd(text: string, offset: number): number {
  let end = offset;
  while (end < text.length && NAME_CHAR.test(text[end])) end++;
  return end;
}

/** The end of a scalar value on the line, before any trailing comment. */
function valueEnd(text: string, offset: number, lineEnd: number): number {
  const rest = text.slice(offset, lineEnd);
  const comment = /\s#/.exec(rest);
  const value = comment ? rest.slice(0, comment.index) : rest;
  return offset + value.trimEnd().length;
}
