// Hover: the schema's words for the key, section, value or module under the cursor.
import { MarkupKind, type Hover, type Position } from 'vscode-languageserver';
import { LINEAR_MODULES, type LinearModule } from '../../server/engine/model/config';
import { findKey, isSection, occurrenceAt, type LineIndex } from '../../server/config';
import { baseModel, parsed, type QloraDocument } from './analysis';
import { enumValueMarkdown, keyMarkdown, moduleMarkdown, sectionMarkdown } from './docs';
import type { QloraSettings } from './settings';

export function hover(doc: QloraDocument, position: Position, settings: QloraSettings): Hover | null {
  const { source, config } = parsed(doc);
  const offset = source.lines.offset(position);
  const entry = source.moduleEntries.find((e) => offset >= e.range[0] && offset <= e.range[1]);
  if (entry && (LINEAR_MODULES as readonly string[]).includes(entry.name)) {
    const model = baseModel(doc, settings)?.config;
    return answer(moduleMarkdown(entry.name as LinearModule, model, config.lora.r), entry.range, source.lines);
  }
  const at = occurrenceAt(source, offset);
  if (!at) return null;
  const { occ, on } = at;
  if (occ.path === occ.section) {
    return isSection(occ.name) ? answer(sectionMarkdown(occ.name), occ.keyRange, source.lines) : null;
  }
  const key = findKey(occ.section, occ.name);
  if (!key) return null;
  if (on === 'value' && occ.valueRange) {
    const written = source.text.slice(occ.valueRange[0], occ.valueRange[1]);
    const valueDoc = enumValueMarkdown(key, written);
    if (valueDoc) return answer(`${valueDoc}\n\n---\n\n${keyMarkdown(key)}`, occ.valueRange, source.lines);
    return answer(keyMarkdown(key), occ.valueRange, source.lines);
  }
  return answer(keyMarkdown(key), occ.keyRange, source.lines);
}

function answer(value: string, [start, end]: [number, number], lines: LineIndex): Hover {
  return { contents: { kind: MarkupKind.Markdown, value }, range: lines.range(start, end) };
}
