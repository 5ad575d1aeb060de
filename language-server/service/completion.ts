// Completion: sections and keys valid at the cursor (with snippets), enum values, module
// names from the actual model, and file paths. Everything comes from the schema.
import {
  CompletionItemKind,
  InsertTextFormat,
  MarkupKind,
  type CompletionItem,
  type Position,
  type Range,
} from 'vscode-languageserver';
import { LINEAR_MODULES, type LinearModule } from '../../server/engine/model/config';
import {
  ALL_LINEAR,
  formatDefault,
  formatValue,
  LineIndex,
  MODULE_DOCS,
  SCHEMA,
  SECTION_NAMES,
  sectionKeys,
  type KeyInfo,
  type SectionName,
} from '../../server/config';
import { baseModel, parsed, type QloraDocument } from './analysis';
import { cursorContext, type Span } from './context';
import { enumValueMarkdown, keyMarkdown, keySummary, moduleMarkdown, sectionMarkdown } from './docs';
import { pathCompletions } from './paths';
import type { QloraSettings } from './settings';

export function complete(doc: QloraDocument, position: Position, settings: QloraSettings): CompletionItem[] {
  const lines = new LineIndex(doc.text);
  const ctx = cursorContext(doc.text, position, lines);
  const range = (span: Span): Range => lines.range(span.start, span.end);
  switch (ctx.kind) {
    case 'none':
      return [];
    case 'section':
      return SECTION_NAMES.filter((s) => !ctx.present.has(s)).flatMap((s, i) =>
        sectionItems(s, i, range(ctx.span), ctx.keyOnly, indentUnit(lines)),
      );
    case 'key':
      return sectionKeys(ctx.section)
        .filter((k) => !ctx.present.has(k.name))
        .map((k, i) => keyItem(k, i, range(ctx.span), ctx.keyOnly));
    case 'value':
      if (ctx.key.spec.type === 'modules') {
        return ctx.inFlowList ? moduleItems(doc, settings, ctx.listed, range(ctx.span)) : modulesValueItems(range(ctx.span));
      }
      if (ctx.key.spec.type === 'path') {
        return pathCompletions(doc.baseDir, ctx.prefix, ctx.span, ctx.key.spec.target, lines);
      }
      return valueItems(ctx.key, range(ctx.span));
    case 'listItem':
      return ctx.key.spec.type === 'modules' ? moduleItems(doc, settings, ctx.listed, range(ctx.span)) : [];
  }
}

function markdown(value: string) {
  return { kind: MarkupKind.Markdown, value };
}

/** The section name alone, and a snippet that writes the section with all its keys. */
function sectionItems(section: SectionName, order: number, range: Range, keyOnly: boolean, indent: string): CompletionItem[] {
  const doc = markdown(sectionMarkdown(section));
  const name: CompletionItem = {
    label: section,
    kind: CompletionItemKind.Module,
    detail: SCHEMA[section].description,
    documentation: doc,
    sortText: `0${order}`,
    insertTextFormat: InsertTextFormat.Snippet,
    textEdit: { range, newText: keyOnly ? section : `${section}:\n${indent}$0` },
  };
  if (keyOnly) return [name];
  let tabStop = 1;
  const body = sectionKeys(section)
    .filter((k) => k.spec.required || k.spec.default !== undefined)
    .map((k) => `${indent}${k.name}: ${valueSnippet(k, tabStop++)}`);
  const snippet: CompletionItem = {
    label: `${section} (all keys)`,
    filterText: section,
    kind: CompletionItemKind.Snippet,
    detail: `${section} with every key at its default`,
    documentation: doc,
    sortText: `1${order}`,
    insertTextFormat: InsertTextFormat.Snippet,
    textEdit: { range, newText: `${section}:\n${body.join('\n')}\n$0` },
  };
  return [name, snippet];
}

function keyItem(key: KeyInfo, order: number, range: Range, keyOnly: boolean): CompletionItem {
  return {
    label: key.name,
    kind: CompletionItemKind.Property,
    detail: keySummary(key),
    documentation: markdown(keyMarkdown(key)),
    // Required keys first, then the schema's order (which reads like the sketch).
    sortText: `${key.spec.required ? 0 : 1}${String(order).padStart(3, '0')}`,
    insertTextFormat: InsertTextFormat.Snippet,
    textEdit: { range, newText: keyOnly ? key.name : `${key.name}: ${valueSnippet(key, 1)}` },
  };
}

/** A key's value as a snippet placeholder: the choices of an enum, else its default. */
function valueSnippet(key: KeyInfo, tabStop: number): string {
  const spec = key.spec;
  const d = formatDefault(spec);
  if (spec.type === 'enum' || spec.type === 'boolean') {
    const values = spec.type === 'enum' ? Object.keys(spec.values) : ['true', 'false'];
    const ordered = d === undefined ? values : [d, ...values.filter((v) => v !== d)];
    return `\${${tabStop}|${ordered.join(',')}|}`;
  }
  return d === undefined ? `\$${tabStop}` : `\${${tabStop}:${d}}`;
}

function valueItems(key: KeyInfo, range: Range): CompletionItem[] {
  const spec = key.spec;
  const item = (value: string, order: number, doc?: string, kind: CompletionItemKind = CompletionItemKind.Value): CompletionItem => ({
    label: value,
    kind,
    detail: formatDefault(spec) === value ? 'default' : undefined,
    documentation: doc ? markdown(doc) : undefined,
    sortText: String(order).padStart(3, '0'),
    textEdit: { range, newText: value },
  });
  switch (spec.type) {
    case 'enum':
      return Object.keys(spec.values).map((v, i) => item(v, i, enumValueMarkdown(key, v), CompletionItemKind.EnumMember));
    case 'boolean':
      return ['true', 'false'].map((v, i) => item(v, i, keyMarkdown(key), CompletionItemKind.Keyword));
    case 'integer':
      if (spec.powerOfTwo) {
        const powers: string[] = [];
        for (let p = spec.min ?? 1; p <= (spec.max ?? 4096); p *= 2) powers.push(String(p));
        return powers.map((v, i) => item(v, i, keyMarkdown(key)));
      }
      return defaultItem(key, item);
    case 'number':
      return defaultItem(key, item);
    default:
      return [];
  }
}

function defaultItem(key: KeyInfo, item: (value: string, order: number, doc?: string) => CompletionItem): CompletionItem[] {
  const d = formatDefault(key.spec);
  return d === undefined ? [] : [item(d, 0, keyMarkdown(key))];
}

/** After `target_modules:`: all-linear, or a list to fill in. */
function modulesValueItems(range: Range): CompletionItem[] {
  const attention: LinearModule[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj'];
  return [
    {
      label: ALL_LINEAR,
      kind: CompletionItemKind.EnumMember,
      detail: 'default',
      documentation: markdown(`All seven projections: ${LINEAR_MODULES.join(', ')} (the QLoRA paper's choice).`),
      sortText: '0',
      textEdit: { range, newText: ALL_LINEAR },
    },
    {
      label: formatValue(attention),
      kind: CompletionItemKind.Value,
      detail: 'attention projections only',
      documentation: markdown('The four attention projections: fewer trainable parameters than all-linear.'),
      sortText: '1',
      textEdit: { range, newText: formatValue(attention) },
    },
    {
      label: '[…]',
      kind: CompletionItemKind.Snippet,
      detail: 'a list of modules',
      sortText: '2',
      insertTextFormat: InsertTextFormat.Snippet,
      textEdit: { range, newText: '[$1]' },
      command: { title: 'List modules', command: 'editor.action.triggerSuggest' },
    },
  ];
}

/** The modules the model has (all seven without a readable model), minus those listed. */
function moduleItems(doc: QloraDocument, settings: QloraSettings, listed: string[], range: Range): CompletionItem[] {
  const model = baseModel(doc, settings);
  const r = parsed(doc).config.lora.r;
  const available = model?.modules ?? LINEAR_MODULES;
  return available.filter((m) => !listed.includes(m)).map((m, i) => ({
    label: m,
    kind: CompletionItemKind.EnumMember,
    detail: MODULE_DOCS[m],
    documentation: markdown(moduleMarkdown(m, model?.config, r)),
    sortText: String(i),
    textEdit: { range, newText: m },
  }));
}

/** The file's own indentation step, two spaces when it has none yet. */
function indentUnit(lines: LineIndex): string {
  for (let l = 0; l < lines.lineCount; l++) {
    const m = /^( +)\S/.exec(lines.lineText(l));
    if (m) return m[1];
  }
  return '  ';
}
