// One schema, many consumers: the README table and the TextMate grammar in the tree must
// be what the schema generates now, and the contract keys must all be declared.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ALL_KEYS, SECTION_NAMES } from '../../server/config';
import { projectRoot } from '../helpers/shared';
import { jsonSchema, readmeTable, tmGrammar, tmGrammarText, withReadmeTable } from '../tools/schemaArtifacts';

const REGENERATE = 'stale: run `node --import tsx test/tools/gen-schema-artifacts.ts`';

test('the README key reference is the one the schema generates', () => {
  const readme = readFileSync(join(projectRoot, 'README.md'), 'utf8');
  assert.equal(withReadmeTable(readme), readme, REGENERATE);
  for (const key of ALL_KEYS) assert.ok(readmeTable().includes(`| \`${key.path}\` |`), key.path);
});

test('syntaxes/qlora.tmLanguage.json is the grammar the schema generates', () => {
  assert.equal(readFileSync(join(projectRoot, 'syntaxes', 'qlora.tmLanguage.json'), 'utf8'), tmGrammarText(), REGENERATE);
});

test('the keys of DESIGN.md\'s sketch, the training-loop issue and issue 19 are declared', () => {
  const contract = [
    'model.base', 'model.quantization', 'model.double_quant', 'model.block_size',
    'lora.r', 'lora.alpha', 'lora.dropout', 'lora.target_modules', 'lora.rslora',
    'data.train', 'data.format', 'data.validation_split', 'data.max_seq_len', 'data.validation', 'data.train_on_prompt',
    'training.epochs', 'training.max_steps', 'training.micro_batch_size', 'training.gradient_accumulation_steps',
    'training.learning_rate', 'training.lr_scheduler', 'training.warmup_steps', 'training.max_grad_norm', 'training.seed',
    'training.eval_every', 'training.save_every', 'training.backend', 'training.weight_decay',
    'training.gradient_checkpointing', // DESIGN.md's memory plan
    'output.dir',
  ];
  assert.deepEqual(ALL_KEYS.map((k) => k.path).sort(), contract.sort());
  const enums = Object.fromEntries(ALL_KEYS.filter((k) => k.spec.type === 'enum').map((k) => [k.path, Object.keys((k.spec as { values: object }).values)]));
  assert.deepEqual(enums, {
    'model.quantization': ['nf4', 'fp4', 'none'],
    'data.format': ['text', 'alpaca', 'chat'],
    'training.lr_scheduler': ['constant', 'linear', 'cosine'],
    'training.backend': ['auto', 'tensorflow', 'wasm', 'cpu', 'webgpu'],
  });
});

/** Every `match`/`begin`/`end` regex in a grammar, with where it sits. */
function regexes(node: unknown, path = ''): [string, string][] {
  if (typeof node !== 'object' || node === null) return [];
  return Object.entries(node).flatMap(([k, v]) =>
    ['match', 'begin', 'end'].includes(k) && typeof v === 'string' ? [[`${path}.${k}`, v] as [string, string]] : regexes(v, `${path}.${k}`),
  );
}

test('the grammar\'s patterns compile and pick out the schema\'s names', () => {
  const grammar = tmGrammar() as { scopeName: string; repository: Record<string, { match?: string; patterns?: { match: string }[] }> };
  assert.equal(grammar.scopeName, 'source.qlora');
  for (const [where, source] of regexes(grammar)) assert.doesNotThrow(() => new RegExp(source), where);
  const section = new RegExp(grammar.repository.section.match!);
  const [knownKey, otherKey] = grammar.repository.key.patterns!.map((p) => new RegExp(p.match));
  for (const s of SECTION_NAMES) assert.ok(section.test(`${s}:`), s);
  assert.ok(!section.test('modelx:'));
  for (const k of ALL_KEYS) assert.equal(knownKey.exec(`  ${k.name}: 1`)?.[2], k.name, k.path);
  assert.equal(knownKey.exec('  rank: 1'), null);
  assert.equal(otherKey.exec('  rank: 1')?.[2], 'rank');
  const values = grammar.repository.value.patterns!.filter((p) => p.match).map((p) => new RegExp(p.match));
  const firstMatch = (text: string) => values.findIndex((r) => r.exec(text)?.index === 0);
  assert.notEqual(firstMatch('nf4'), firstMatch('./models/x'), 'enum values look different from plain strings');
  assert.notEqual(firstMatch('2.0e-4'), firstMatch('nf4'));
});

test('the language configuration and the manifest point at each other', () => {
  const manifest = JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8'));
  const language = manifest.contributes.languages.find((l: { id: string }) => l.id === 'qlora');
  const grammar = manifest.contributes.grammars.find((g: { language: string }) => g.language === 'qlora');
  assert.equal(grammar.scopeName, tmGrammar().scopeName);
  const config = JSON.parse(readFileSync(join(projectRoot, language.configuration), 'utf8'));
  assert.equal(config.comments.lineComment, '#');
  const increase = new RegExp(config.indentationRules.increaseIndentPattern);
  assert.ok(increase.test('lora:'));
  assert.ok(increase.test('  target_modules:  # list below'));
  assert.ok(!increase.test('  r: 8'));
});

test('the JSON Schema for other YAML tools declares every key with its bounds', () => {
  const schema = jsonSchema() as { properties: Record<string, { properties: Record<string, Record<string, unknown>>; additionalProperties: boolean }>; required: string[] };
  assert.deepEqual(Object.keys(schema.properties), SECTION_NAMES);
  assert.deepEqual(schema.required, ['model', 'data']);
  for (const k of ALL_KEYS) assert.ok(schema.properties[k.section].properties[k.name], k.path);
  assert.deepEqual(schema.properties.lora.properties.dropout, {
    description: 'Dropout on the adapter input while training.',
    default: 0.05,
    type: 'number',
    minimum: 0,
    exclusiveMaximum: 1,
  });
  assert.deepEqual(schema.properties.model.properties.block_size.enum, [32, 64, 128, 256, 512, 1024, 2048, 4096]);
  assert.equal(schema.properties.training.additionalProperties, false);
});
