// The pure language service, called directly with caret-marked fixtures (`|`).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { CompletionItem, MarkupContent, TextEdit } from 'vscode-languageserver';
import { codeActions, codeLenses, complete, DEFAULT_SETTINGS, diagnostics, hover } from '../../language-server/service';
import { caret, GOOD_CONFIG, makeWorkspace, type Workspace } from '../config/workspace';

let ws: Workspace;
before(() => (ws = makeWorkspace()));
after(() => ws.cleanup());

/** Completion at the caret of `marked`, in the workspace. */
function completeAt(marked: string, settings = DEFAULT_SETTINGS): CompletionItem[] {
  const { text, position } = caret(marked);
  return complete({ text, baseDir: ws.dir }, position, settings);
}
const labels = (items: CompletionItem[]) => items.map((i) => i.label);
const edit = (item: CompletionItem) => item.textEdit as TextEdit;
const docOf = (item: CompletionItem) => (item.documentation as MarkupContent).value;

test('at the top level: the sections not yet written, each also as a snippet with its keys', () => {
  assert.deepEqual(labels(completeAt('|')), [
    'model', 'model (all keys)', 'lora', 'lora (all keys)', 'data', 'data (all keys)',
    'training', 'training (all keys)', 'output', 'output (all keys)',
  ]);
  const items = completeAt('model:\n  base: ./m\nlo|');
  assert.ok(!labels(items).includes('model'));
  const snippet = items.find((i) => i.label === 'lora (all keys)')!;
  assert.equal(edit(snippet).newText, 'lora:\n  r: ${1:8}\n  alpha: ${2:16}\n  dropout: ${3:0.05}\n  target_modules: ${4:all-linear}\n  rslora: ${5|false,true|}\n$0');
  assert.deepEqual(edit(snippet).range, { start: { line: 2, character: 0 }, end: { line: 2, character: 2 } });
});

test('inside a section: its keys not yet written, with type, default and docs', () => {
  const items = completeAt('lora:\n  r: 8\n  |\ntraining:\n  seed: 1\n');
  assert.deepEqual(labels(items), ['alpha', 'dropout', 'target_modules', 'rslora']);
  assert.equal(items[0].detail, 'number > 0 · default 16');
  assert.equal(edit(items[0]).newText, 'alpha: ${1:16}');
  assert.match(docOf(items[0]), /alpha \/ r/);
  const model = completeAt('model:\n  q|');
  assert.equal(edit(model.find((i) => i.label === 'quantization')!).newText, 'quantization: ${1|nf4,fp4,none|}');
  assert.equal(model[0].label, 'base', 'required keys come first');
  assert.equal(model[0].sortText! < model[1].sortText!, true);
});

test('on a line that already has a key, only the name is replaced', () => {
  const [item] = completeAt('training:\n  lea|rning_rat: 1.0e-4\n').filter((i) => i.label === 'learning_rate');
  assert.deepEqual(edit(item), { range: { start: { line: 1, character: 2 }, end: { line: 1, character: 14 } }, newText: 'learning_rate' });
});

test('enum values with their docs, replacing the whole value', () => {
  const items = completeAt('model:\n  quantization: f|p4  # the type\n');
  assert.deepEqual(labels(items), ['nf4', 'fp4', 'none']);
  assert.equal(items[0].detail, 'default');
  assert.match(docOf(items[0]), /NormalFloat/);
  assert.deepEqual(edit(items[1]).range, { start: { line: 1, character: 16 }, end: { line: 1, character: 19 } });
  assert.deepEqual(labels(completeAt('model:\n  block_size: |')), ['32', '64', '128', '256', '512', '1024', '2048', '4096']);
  assert.deepEqual(labels(completeAt('lora:\n  rslora: |')), ['true', 'false']);
  assert.deepEqual(labels(completeAt('lora:\n  r: |')), ['8']);
});

test('target_modules: all-linear or a list, then the model\'s modules not yet listed', () => {
  assert.deepEqual(labels(completeAt('lora:\n  target_modules: |')), ['all-linear', '[q_proj, k_proj, v_proj, o_proj]', '[…]']);
  const flow = completeAt('model:\n  base: ./models/tiny\nlora:\n  r: 4\n  target_modules: [q_proj, v|]\n');
  assert.deepEqual(labels(flow), ['k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
  // k_proj of the tiny model: 8 x 16 (2 kv heads of 4), 2 layers, at r 4.
  assert.match(docOf(flow[0]), /Weight 8 × 16 \(out × in\) in each of 2 layers\. At r = 4 the adapter adds 4 × \(16 \+ 8\) = 96 parameters per layer, \*\*192\*\* in all/);
  assert.deepEqual(edit(flow[1]).range, { start: { line: 4, character: 27 }, end: { line: 4, character: 28 } });
  const block = completeAt('lora:\n  target_modules:\n    - q_proj\n    - |\n    - o_proj\n');
  assert.deepEqual(labels(block), ['k_proj', 'v_proj', 'gate_proj', 'up_proj', 'down_proj']);
});

test('file paths for model.base and data files, relative to the config', () => {
  const models = completeAt('model:\n  base: ./models/|\n');
  assert.deepEqual(labels(models).sort(), ['notamodel/', 'tiny/']);
  assert.equal(models.find((i) => i.label === 'tiny/')!.detail, 'model folder');
  assert.deepEqual(edit(models[0]).range, { start: { line: 1, character: 17 }, end: { line: 1, character: 17 } });
  const data = completeAt('data:\n  train: data/al|\n');
  assert.deepEqual(labels(data).sort(), ['alpaca.jsonl', 'broken.jsonl', 'empty.jsonl', 'text.jsonl']);
  assert.deepEqual(edit(data[0]).range, { start: { line: 1, character: 14 }, end: { line: 1, character: 16 } });
  assert.deepEqual(labels(completeAt('data:\n  validation: |')).sort(), ['data/', 'models/']);
});

test('no completion in comments, after a section name, or under an unknown section', () => {
  assert.deepEqual(completeAt('# lo|'), []);
  assert.deepEqual(completeAt('lora: |'), []);
  assert.deepEqual(completeAt('extras:\n  |'), []);
  assert.deepEqual(completeAt('lora:\n  r: 8 # r|'), []);
});

test('hover: keys, sections, enum values and target modules with their parameter count', () => {
  const at = (marked: string) => {
    const { text, position } = caret(marked);
    const h = hover({ text, baseDir: ws.dir }, position, DEFAULT_SETTINGS);
    return h ? (h.contents as MarkupContent).value : null;
  };
  assert.match(at('lora:\n  |r: 8\n')!, /^\*\*lora\.r\*\* — integer ≥ 1 · default 8\n\nThe adapter rank/);
  assert.match(at('lo|ra:\n  r: 8\n')!, /^\*\*lora\*\* — The low-rank adapters/);
  assert.match(at('model:\n  quantization: n|f4\n')!, /^\*\*model\.quantization: nf4\*\* \(the default\) — 4-bit NormalFloat/);
  const text = 'model:\n  base: ./models/tiny\nlora:\n  r: 8\n  target_modules: [q_proj, do|wn_proj]\n';
  // down_proj of the tiny model: 16 x 40, r 8: 8 x (40 + 16) = 448 per layer, 896 in 2 layers.
  assert.match(at(text)!, /^\*\*down_proj\*\* — MLP down projection[^]*At r = 8 the adapter adds 8 × \(40 \+ 16\) = 448 parameters per layer, \*\*896\*\* in all\.$/);
  assert.equal(at('lora:\n  rnk|: 8\n'), null);
});

test('code lens: trainable parameters, bytes per parameter, peak memory, and the start command', () => {
  const uri = 'file:///w/train.qlora';
  const lenses = codeLenses({ text: GOOD_CONFIG, baseDir: ws.dir }, uri, DEFAULT_SETTINGS);
  assert.deepEqual(lenses.map((l) => l.command!.title).slice(0, 2), [
    'Trainable: 1.79K params (30.0% of 5.97K)',
    'Base weights: 0.5159 bytes/param (nf4, double quant, block 64)',
  ]);
  assert.match(lenses[2].command!.title, /^Peak memory ≈ \d+(\.\d+)? (KiB|MiB)$/);
  assert.deepEqual(lenses[3].command, { title: '▶ Start training', command: 'qlora.startTraining', arguments: [uri] });
  assert.deepEqual(lenses[4].command, { title: 'Export for Axolotl...', command: 'qlora.exportAxolotl', arguments: [uri] });
  assert.ok(lenses.every((l) => l.range.start.line === 0));
  const noModel = codeLenses({ text: GOOD_CONFIG.replace('./models/tiny', './nowhere'), baseDir: ws.dir }, uri, DEFAULT_SETTINGS);
  assert.deepEqual(noModel.map((l) => l.command!.title), [
    'Base weights: 0.5159 bytes/param (nf4, double quant, block 64)',
    'Cost: needs a readable model.base',
    '▶ Start training',
    'Export for Axolotl...',
  ]);
});

test('quick fixes for the diagnostic under the cursor, as workspace edits', () => {
  const uri = 'file:///w/train.qlora';
  const doc = { text: GOOD_CONFIG.replace('  r: 8', '  rank: 8'), baseDir: ws.dir };
  const range = { start: { line: 6, character: 4 }, end: { line: 6, character: 4 } };
  const [action] = codeActions(doc, uri, range, DEFAULT_SETTINGS);
  assert.equal(action.title, 'Change to r');
  assert.equal(action.kind, 'quickfix');
  assert.equal(action.isPreferred, true);
  assert.deepEqual(action.edit!.changes![uri], [{ range: { start: { line: 6, character: 2 }, end: { line: 6, character: 6 } }, newText: 'r' }]);
  assert.equal(action.diagnostics![0].message, 'unknown key lora.rank; did you mean r?');
  assert.deepEqual(codeActions(doc, uri, { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } }, DEFAULT_SETTINGS), []);
});

test('diagnostics as LSP values; file checks can be turned off', () => {
  const doc = { text: GOOD_CONFIG.replace('./data/alpaca.jsonl', './data/missing.jsonl').replace('learning_rate: 2.0e-4', 'learning_rate: 0.5'), baseDir: ws.dir };
  const ds = diagnostics(doc, DEFAULT_SETTINGS);
  assert.deepEqual(ds.map((d) => [d.severity, d.source, d.code]), [[1, 'qlora', 'file-missing'], [2, 'qlora', 'suspicious-value']]);
  assert.deepEqual(diagnostics(doc, { ...DEFAULT_SETTINGS, checkFiles: false }).map((d) => d.code), ['suspicious-value']);
});
