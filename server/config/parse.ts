// Parses a `.qlora` file into a ResolvedConfig and a list of problems with exact ranges.
// Pure: no file system access (checkFiles.ts does that), so it can run on every keystroke.
// The `yaml` package keeps the offsets of every node, which is why it is used rather
// than a JSON-first loader: each message lands on the key or value it is about.
import { isAlias, isMap, isScalar, isSeq, parseDocument, type Document, type Node, type Pair } from 'yaml';
import { checkBounds } from './bounds';
import { checkConflicts } from './conflicts';
import { expectation, formatDefault } from './describe';
import { sortDiagnostics, type ConfigDiagnostic, type Fix } from './diagnostics';
import { LineIndex } from './lineIndex';
import { resolveConfig } from './resolve';
import {
  ALL_KEYS,
  findKey,
  isSection,
  SECTION_NAMES,
  sectionKeys,
  type KeyInfo,
  type ResolvedConfig,
  type SectionName,
} from './schema';
import { entryDeletion, type ConfigSource, type KeyOccurrence, type ModuleEntry, type Report } from './source';
import { suggest } from './suggest';
import { readValue, valueRange, type Replacement, type ValueReporter } from './values';

export interface ParseResult {
  config: ResolvedConfig;
  diagnostics: ConfigDiagnostic[];
  /** Where each key sits in the text, for file checks, hover and quick fixes. */
  source: ConfigSource;
}

/** Parses `text`; relative paths resolve against `baseDir` (the folder of the file). */
export function parse(text: string, baseDir: string): ParseResult {
  const lines = new LineIndex(text);
  const source: ConfigSource = { text, baseDir, lines, occurrences: [], first: new Map(), moduleEntries: [] };
  const diagnostics: ConfigDiagnostic[] = [];
  // Text the parser was not shown as written (after an unclosed bracket): nothing else is said about it.
  const muted: [number, number][] = [];
  const report: Report = (range, severity, code, message, data) => {
    if (muted.some(([a, b]) => range[0] >= a && range[0] < b)) return;
    // Block collections end after their last line break; a squiggle should not.
    let end = range[1];
    while (end > range[0] + 1 && /\s/.test(text[end - 1])) end--;
    diagnostics.push({ message, severity, code, range: lines.range(range[0], end), ...(data ? { data } : {}) });
  };

  const unparsed = (range: [number, number], message: string): ParseResult => {
    report(range, 'error', 'yaml-syntax', message);
    return { config: resolveConfig(new Map(), baseDir), diagnostics, source };
  };
  const bounds = checkBounds(text);
  if (bounds.problem) return unparsed(bounds.problem.range, bounds.problem.message);
  // An unclosed bracket gets one message here, and the parser reads the line as if it
  // were not there (same length, so every offset holds) instead of swallowing the rest.
  let yamlText = text;
  for (const at of bounds.unclosed) {
    const close = text[at] === '[' ? ']' : '}';
    report([at, at + 1], 'error', 'yaml-syntax', `YAML: this ${text[at]} is never closed: add ${close}`);
    yamlText = `${yamlText.slice(0, at)} ${yamlText.slice(at + 1)}`;
    const lineEnd = text.indexOf('\n', at);
    muted.push([at, lineEnd < 0 ? text.length + 1 : lineEnd + 1]);
  }
  let doc: Document;
  try {
    doc = parseDocument(yamlText, { uniqueKeys: false, prettyErrors: false });
  } catch (e) {
    // Within the bounds this should not happen; if the parser still fails, the text gets a diagnostic, not the caller an exception.
    return unparsed([0, Math.min(text.length, 1)], `YAML: the parser failed on this file (${(e as Error).message})`);
  }
  for (const e of doc.errors) report(visible(e.pos, text), 'error', 'yaml-syntax', syntaxMessage(e.code, e.message));
  for (const w of doc.warnings) report(visible(w.pos, text), 'warning', 'yaml-syntax', w.message);

  const values = new Map<string, unknown>();
  const walker = new Walker(doc, text, source, values, report);
  walker.walkRoot(doc.contents as Node | null);

  for (const key of ALL_KEYS) {
    if (key.spec.required && !source.first.has(key.path)) {
      const section = source.first.get(key.section);
      const range = section ? section.keyRange : ([0, lines.lineEnd(0)] as [number, number]);
      report(range, 'error', 'missing-key', `${key.path} is required: ${expectation(key.spec)}`, { key: key.path });
    }
  }

  const config = resolveConfig(values, baseDir);
  checkConflicts(config, source, report);
  return { config, diagnostics: sortDiagnostics(diagnostics), source };
}

/** Walks the two levels of a `.qlora` file: sections, then keys. */
class Walker {
  constructor(
    private readonly doc: Document,
    private readonly text: string,
    private readonly source: ConfigSource,
    private readonly values: Map<string, unknown>,
    private readonly report: Report,
  ) {}

  walkRoot(root: Node | null): void {
    if (root === null || (isScalar(root) && root.value === null)) return;
    if (!isMap(root)) {
      this.report(valueRange(root), 'error', 'not-a-mapping', `a .qlora file is a mapping of sections (${SECTION_NAMES.join(', ')})`);
      return;
    }
    for (const pair of root.items) this.walkSection(pair);
  }

  private walkSection(pair: Pair): void {
    const occ = this.occurrence(pair, undefined);
    if (!occ) return;
    const name = occ.name;
    if (!isSection(name)) {
      this.unknownSection(name, occ);
      return;
    }
    this.remember(occ);
    const value = this.resolve(pair.value as Node | null);
    if (value === null || (isScalar(value) && value.value === null)) return; // `lora:` alone: all defaults
    if (!isMap(value)) {
      this.report(valueRange(value), 'error', 'not-a-mapping', `${name} must hold keys (e.g. ${exampleKey(name)}), not a single value`);
      return;
    }
    for (const keyPair of value.items) this.walkKey(name, keyPair);
  }

  private walkKey(section: SectionName, pair: Pair): void {
    const occ = this.occurrence(pair, section);
    if (!occ) return;
    const key = findKey(section, occ.name);
    if (!key) {
      this.unknownKey(section, occ);
      return;
    }
    const isFirst = this.remember(occ);
    const node = this.resolve(pair.value as Node | null);
    if (node === null || (isScalar(node) && node.value === null)) {
      this.noValue(key, occ, node);
      return;
    }
    const reporter: ValueReporter = {
      report: (range, severity, code, message, extra) =>
        this.report(range, severity, code, message, {
          key: key.path,
          ...(extra?.suggestion ? { suggestion: extra.suggestion } : {}),
          ...(extra?.replacements?.length ? { fixes: this.replaceFixes(range, extra.replacements) } : {}),
        }),
    };
    const value = readValue(key, node, this.text, reporter);
    if (key.spec.type === 'modules' && isFirst) this.recordModules(node);
    if (value !== undefined && isFirst) this.values.set(key.path, value);
  }

  /** Notes where a key sits; false when an earlier one of the same path already counts. */
  private remember(occ: KeyOccurrence): boolean {
    const first = this.source.first.get(occ.path);
    if (!first) {
      this.source.first.set(occ.path, occ);
      return true;
    }
    const firstLine = this.source.lines.position(first.keyRange[0]).line + 1;
    const isSectionEntry = occ.path === occ.section;
    this.report(
      occ.keyRange,
      'error',
      'duplicate-key',
      isSectionEntry
        ? `${occ.path} appears twice (first on line ${firstLine}): keep one section`
        : `${occ.path} is set twice (first on line ${firstLine}): only the first would count`,
      {
        key: occ.path,
        // Deleting a whole duplicate section would lose the keys in it; only a
        // duplicate key is safe to remove in one click.
        ...(isSectionEntry ? {} : { fixes: [{ title: `Remove this duplicate ${occ.path}`, edits: [entryDeletion(occ, this.source)] }] }),
      },
    );
    return false;
  }

  private occurrence(pair: Pair, section: SectionName | undefined): KeyOccurrence | undefined {
    const keyNode = pair.key as Node | null;
    if (!keyNode || !isScalar(keyNode) || keyNode.value === null || typeof keyNode.value === 'object') {
      if (keyNode) this.report(valueRange(keyNode), 'error', 'unknown-key', 'keys in a .qlora file are plain names');
      return undefined;
    }
    const name = String(keyNode.value);
    const keyRange = valueRange(keyNode);
    const valueNode = pair.value as Node | null;
    const valueRangeOrNone = valueNode?.range ? valueRange(valueNode) : undefined;
    const occ: KeyOccurrence = {
      path: section ? `${section}.${name}` : name,
      section: section ?? name,
      name,
      keyRange,
      valueRange: valueRangeOrNone,
    };
    this.source.occurrences.push(occ);
    return occ;
  }

  private unknownSection(name: string, occ: KeyOccurrence): void {
    const meant = suggest(name, SECTION_NAMES.map((s) => ({ name: s })));
    if (meant) {
      this.report(occ.keyRange, 'error', 'unknown-key', `unknown section ${name}; did you mean ${meant}?`, {
        suggestion: meant,
        fixes: this.replaceFixes(occ.keyRange, [{ title: `Change to ${meant}`, text: meant }]),
      });
      return;
    }
    const home = homeOf(name);
    if (home) {
      this.report(occ.keyRange, 'error', 'misplaced-key', `${name} belongs in the ${home.section} section (${home.path})`, {
        suggestion: home.path,
      });
      return;
    }
    this.report(occ.keyRange, 'error', 'unknown-key', `unknown section ${name}: the sections are ${SECTION_NAMES.join(', ')}`);
  }

  private unknownKey(section: SectionName, occ: KeyOccurrence): void {
    const meant = suggest(occ.name, sectionKeys(section).map((k) => ({ name: k.name, aliases: k.spec.aliases })));
    if (meant) {
      this.report(occ.keyRange, 'error', 'unknown-key', `unknown key ${occ.path}; did you mean ${meant}?`, {
        suggestion: meant,
        fixes: this.replaceFixes(occ.keyRange, [{ title: `Change to ${meant}`, text: meant }]),
      });
      return;
    }
    const home = homeOf(occ.name);
    if (home && home.section !== section) {
      this.report(occ.keyRange, 'error', 'misplaced-key', `${occ.name} belongs in the ${home.section} section, not ${section} (${home.path})`, {
        suggestion: home.path,
      });
      return;
    }
    const known = sectionKeys(section).map((k) => k.name).join(', ');
    this.report(occ.keyRange, 'error', 'unknown-key', `unknown key ${occ.path}: ${section} takes ${known}`);
  }

  private noValue(key: KeyInfo, occ: KeyOccurrence, node: Node | null): void {
    const d = formatDefault(key.spec);
    // `r:` has an empty value node right after the colon; squiggle the key instead.
    const explicitNull = node?.range && node.range[1] > node.range[0];
    const range: [number, number] = explicitNull ? valueRange(node!) : occ.keyRange;
    const severity = key.spec.required || d === undefined ? 'error' : 'warning';
    const message = key.spec.required
      ? `${key.path} has no value: it needs ${expectation(key.spec)}`
      : d === undefined
        ? `${key.path} has no value: leave it out or give it one`
        : `${key.path} has no value, so the default ${d} applies`;
    const fixes: Fix[] = [];
    if (d !== undefined) {
      const colonEnd = this.afterColon(occ.keyRange[1]);
      const at = explicitNull ? valueRange(node!) : ([colonEnd, colonEnd] as [number, number]);
      const newText = explicitNull ? d : ` ${d}`;
      fixes.push({ title: `Set ${key.path} to its default, ${d}`, edits: [{ range: this.source.lines.range(at[0], at[1]), newText }] });
    }
    this.report(range, severity, 'no-value', message, { key: key.path, ...(fixes.length ? { fixes } : {}) });
  }

  /** The offset just past `key:`, ignoring trailing spaces, where an inserted value goes. */
  private afterColon(keyEnd: number): number {
    let i = keyEnd;
    while (i < this.text.length && (this.text[i] === ' ' || this.text[i] === '\t')) i++;
    if (this.text[i] === ':') i++;
    return i;
  }

  private recordModules(node: Node): void {
    const entries: ModuleEntry[] = [];
    if (isSeq(node)) {
      for (const item of node.items) {
        if (isScalar(item) && item.range) entries.push({ name: String(item.value), range: valueRange(item) });
      }
    } else if (isScalar(node) && node.range) {
      entries.push({ name: String(node.value), range: valueRange(node) });
    }
    this.source.moduleEntries = entries;
  }

  private resolve(node: Node | null): Node | null {
    if (node && isAlias(node)) return (node.resolve(this.doc) as Node | undefined) ?? null;
    return node;
  }

  private replaceFixes(range: readonly [number, number], replacements: Replacement[]): Fix[] {
    return replacements.map((r) => ({ title: r.title, edits: [{ range: this.source.lines.range(range[0], range[1]), newText: r.text }] }));
  }
}

/** The key of some section that `name` names, by its name or by an alias only it has. */
function homeOf(name: string): KeyInfo | undefined {
  const byName = ALL_KEYS.filter((k) => k.name === name);
  if (byName.length === 1) return byName[0];
  const byAlias = ALL_KEYS.filter((k) => k.spec.aliases?.includes(name));
  return byAlias.length === 1 ? byAlias[0] : undefined;
}

function exampleKey(section: SectionName): string {
  const first = sectionKeys(section)[0];
  return `${first.name}: ${formatDefault(first.spec) ?? '...'}`;
}

/** YAML's zero-width error positions widened to one character so that editors show them. */
function visible(pos: [number, number], text: string): [number, number] {
  const [start, end] = pos;
  if (end > start) return [start, end];
  if (start < text.length) return [start, start + 1];
  return [Math.max(0, start - 1), start];
}

function syntaxMessage(code: string, message: string): string {
  if (code === 'MULTIPLE_DOCS') return 'a .qlora file holds one YAML document: remove the second ---';
  return `YAML: ${lowerFirst(message)}`;
}

function lowerFirst(s: string): string {
  return s.length > 1 && /[A-Z][a-z]/.test(s.slice(0, 2)) ? s[0].toLowerCase() + s.slice(1) : s;
}
