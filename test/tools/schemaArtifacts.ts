// Artefacts generated from the `.qlora` schema: the README's key reference, the TextMate
// grammar's key names, and the JSON Schema the benchmark gives yaml-language-server.
// Each is a pure function of SCHEMA; gen-schema-artifacts.ts writes the first two and a
// test fails when the files in the tree differ from what these return.
import { LINEAR_MODULES } from '../../server/engine/model/config';
import {
  ALL_KEYS,
  ALL_LINEAR,
  describeType,
  formatDefault,
  SCHEMA,
  SECTION_NAMES,
  sectionKeys,
  type KeySpec,
} from '../../server/config';

export const README_START = '<!-- schema-table:start -->';
export const README_END = '<!-- schema-table:end -->';

/** The Markdown between the README markers: one table per section, then each enum's values. */
export function readmeTable(): string {
  const out: string[] = [
    '',
    '<!-- Generated from server/config/schema.ts by `node --import tsx test/tools/gen-schema-artifacts.ts`; do not edit by hand. -->',
    '',
  ];
  for (const section of SECTION_NAMES) {
    out.push(`### \`${section}\``, '', SCHEMA[section].description, '');
    out.push('| Key | Type | Default | Description |', '|---|---|---|---|');
    const enums: string[] = [];
    for (const key of sectionKeys(section)) {
      const d = formatDefault(key.spec);
      const dflt = key.spec.required ? 'required' : d === undefined ? '—' : `\`${d}\``;
      out.push(`| \`${key.path}\` | ${cell(describeType(key.spec))} | ${cell(dflt)} | ${cell(key.spec.description)} |`);
      if (key.spec.type === 'enum') {
        for (const [value, doc] of Object.entries(key.spec.values)) enums.push(`- \`${key.name}: ${value}\` — ${doc}`);
      }
    }
    out.push('');
    if (enums.length) out.push(...enums, '');
  }
  return out.join('\n');
}

function cell(s: string): string {
  return s.replace(/\|/g, '\\|');
}

/** README text with the generated table put between the markers (which must exist). */
export function withReadmeTable(readme: string): string {
  const start = readme.indexOf(README_START);
  const end = readme.indexOf(README_END);
  if (start < 0 || end < start) throw new Error(`README.md lacks the ${README_START} ... ${README_END} markers`);
  return readme.slice(0, start + README_START.length) + readmeTable() + readme.slice(end);
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&');
const alternation = (names: readonly string[]) => [...new Set(names)].sort((a, b) => b.length - a.length).map(escape).join('|');

/** The TextMate grammar of `.qlora`: YAML's shapes, with the schema's names picked out. */
export function tmGrammar(): Record<string, unknown> {
  const sections = alternation(SECTION_NAMES);
  const keys = alternation(ALL_KEYS.map((k) => k.name));
  const enumValues = alternation(ALL_KEYS.flatMap((k) => (k.spec.type === 'enum' ? Object.keys(k.spec.values) : [])).concat(ALL_LINEAR));
  const modules = alternation(LINEAR_MODULES);
  const end = '(?=\\s*(?:#|,|\\]|\\}|$))';
  return {
    $schema: 'https://raw.githubusercontent.com/martinring/tmlanguage/master/tmlanguage.json',
    name: 'QLoRA config',
    scopeName: 'source.qlora',
    fileTypes: ['qlora'],
    comment: 'Generated from server/config/schema.ts by test/tools/gen-schema-artifacts.ts; do not edit by hand.',
    patterns: [
      { include: '#comment' },
      { include: '#document-marker' },
      { include: '#section' },
      { include: '#key' },
      { include: '#list-item' },
      { include: '#value' },
    ],
    repository: {
      comment: {
        match: '(?:^|(?<=\\s))(#).*$',
        name: 'comment.line.number-sign.qlora',
        captures: { '1': { name: 'punctuation.definition.comment.qlora' } },
      },
      'document-marker': { match: '^(?:---|\\.\\.\\.)(?=\\s|$)', name: 'entity.other.document.qlora' },
      section: {
        match: `^(${sections})\\s*(:)(?=\\s|$)`,
        captures: { '1': { name: 'entity.name.type.section.qlora' }, '2': { name: 'punctuation.separator.key-value.qlora' } },
      },
      key: {
        patterns: [
          {
            match: `^\\s*(?:(-)\\s+)?(${keys})\\s*(:)(?=\\s|$)`,
            captures: {
              '1': { name: 'punctuation.definition.list.begin.qlora' },
              '2': { name: 'support.type.property-name.qlora' },
              '3': { name: 'punctuation.separator.key-value.qlora' },
            },
          },
          {
            comment: 'Any other key: valid YAML, not a .qlora key (the language server says so).',
            match: '^\\s*(?:(-)\\s+)?([^\\s#:\'"\\[\\]{},-][^#:]*?)\\s*(:)(?=\\s|$)',
            captures: {
              '1': { name: 'punctuation.definition.list.begin.qlora' },
              '2': { name: 'entity.name.tag.qlora' },
              '3': { name: 'punctuation.separator.key-value.qlora' },
            },
          },
        ],
      },
      'list-item': { match: '^\\s*(-)(?=\\s|$)', captures: { '1': { name: 'punctuation.definition.list.begin.qlora' } } },
      value: {
        patterns: [
          { include: '#comment' },
          { match: '[\\[\\]{}]', name: 'punctuation.definition.collection.qlora' },
          { match: ',', name: 'punctuation.separator.sequence.qlora' },
          { match: `(?<![\\w.-])(?:true|false)${end}`, name: 'constant.language.boolean.qlora' },
          { match: `(?<![\\w.-])(?:null|~)${end}`, name: 'constant.language.null.qlora' },
          { match: `(?<![\\w.-])[-+]?(?:\\.[0-9]+|[0-9]+(?:\\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?${end}`, name: 'constant.numeric.qlora' },
          { match: `(?<![\\w.-])(?:${modules})${end}`, name: 'support.constant.module.qlora' },
          { match: `(?<![\\w.-])(?:${enumValues})${end}`, name: 'constant.language.enum.qlora' },
          { begin: '"', end: '"', name: 'string.quoted.double.qlora', patterns: [{ match: '\\\\.', name: 'constant.character.escape.qlora' }] },
          { begin: "'", end: "'", name: 'string.quoted.single.qlora' },
          { match: '[^\\s#,\\[\\]{}][^#,\\[\\]{}]*?(?=\\s*(?:#|,|\\]|\\}|$))', name: 'string.unquoted.qlora' },
        ],
      },
    },
  };
}

/** The grammar file's text as written to syntaxes/qlora.tmLanguage.json. */
export function tmGrammarText(): string {
  return `${JSON.stringify(tmGrammar(), null, 2)}\n`;
}

/** An equivalent JSON Schema (draft-07), so a generic YAML server can validate the same files. */
export function jsonSchema(): Record<string, unknown> {
  const sections: Record<string, unknown> = {};
  for (const section of SECTION_NAMES) {
    const properties: Record<string, unknown> = {};
    const required: string[] = [];
    for (const key of sectionKeys(section)) {
      properties[key.name] = keySchema(key.spec);
      if (key.spec.required) required.push(key.name);
    }
    sections[section] = {
      type: 'object',
      description: SCHEMA[section].description,
      properties,
      ...(required.length ? { required } : {}),
      additionalProperties: false,
    };
  }
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: '.qlora fine-tuning config',
    type: 'object',
    properties: sections,
    required: SECTION_NAMES.filter((s) => sectionKeys(s).some((k) => k.spec.required)),
    additionalProperties: false,
  };
}

function keySchema(spec: KeySpec): Record<string, unknown> {
  const common = { description: spec.description, ...(spec.default !== undefined ? { default: spec.default } : {}) };
  switch (spec.type) {
    case 'integer':
      if (spec.powerOfTwo) {
        const powers: number[] = [];
        for (let p = spec.min ?? 1; p <= (spec.max ?? 4096); p *= 2) powers.push(p);
        return { ...common, type: 'integer', enum: powers };
      }
      return { ...common, type: 'integer', ...bounds(spec.min, false, spec.max, false) };
    case 'number':
      return { ...common, type: 'number', ...bounds(spec.min, spec.minExclusive, spec.max, spec.maxExclusive) };
    case 'boolean':
      return { ...common, type: 'boolean' };
    case 'enum':
      return { ...common, type: 'string', enum: Object.keys(spec.values) };
    case 'path':
      return { ...common, type: 'string', minLength: 1 };
    case 'modules':
      return {
        ...common,
        oneOf: [
          { type: 'string', const: ALL_LINEAR },
          { type: 'array', items: { type: 'string', enum: [...LINEAR_MODULES] }, minItems: 1, uniqueItems: true },
        ],
      };
  }
}

function bounds(min?: number, minExclusive?: boolean, max?: number, maxExclusive?: boolean): Record<string, number> {
  const out: Record<string, number> = {};
  if (min !== undefined) out[minExclusive ? 'exclusiveMinimum' : 'minimum'] = min;
  if (max !== undefined) out[maxExclusive ? 'exclusiveMaximum' : 'maximum'] = max;
  return out;
}
