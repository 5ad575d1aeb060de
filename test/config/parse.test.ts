// parse(): values and defaults, and every kind of problem with its exact range and fix.
import assert from 'node:assert/strict';
import { homedir } from 'node:os';
import { test } from 'node:test';
import { LINEAR_MODULES } from '../../server/engine/model/config';
import {
  ALL_KEYS,
  formatDiagnostic,
  LineIndex,
  parse,
  type ConfigDiagnostic,
  type TextEdit,
} from '../../server/config';
import { GOOD_CONFIG } from './workspace';

const BASE = '/projects/demo';

/** The diagnostics as `line:col-line:col severity code message` (one-based), easy to compare. */
function brief(ds: ConfigDiagnostic[]): string[] {
  return ds.map(
    (d) => `${d.range.start.line + 1}:${d.range.start.character + 1}-${d.range.end.line + 1}:${d.range.end.character + 1} ${d.severity} ${d.code} ${d.message}`,
  );
}

function applyEdits(text: string, edits: TextEdit[]): string {
  const lines = new LineIndex(text);
  const sorted = [...edits].sort((a, b) => lines.offset(b.range.start) - lines.offset(a.range.start));
  for (const e of sorted) text = text.slice(0, lines.offset(e.range.start)) + e.newText + text.slice(lines.offset(e.range.end));
  return text;
}

const minimal = 'model:\n  base: ./m\ndata:\n  train: ./d.jsonl\n';

test('the sketch from DESIGN.md parses without a problem and keeps its values', () => {
  const { config, diagnostics } = parse(GOOD_CONFIG, BASE);
  assert.deepEqual(brief(diagnostics), []);
  assert.equal(config.model.base, '/projects/demo/models/tiny');
  assert.equal(config.model.quantization, 'nf4');
  assert.equal(config.lora.alpha, 16);
  assert.deepEqual(config.lora.target_modules, ['q_proj', 'k_proj', 'v_proj', 'o_proj']);
  assert.equal(config.data.format, 'alpaca');
  assert.equal(config.training.learning_rate, 2e-4);
  assert.equal(config.output.dir, '/projects/demo/runs/my-run');
});

test('every key left out takes its declared default; all-linear is spelled out', () => {
  const { config, diagnostics } = parse(minimal, BASE);
  assert.deepEqual(brief(diagnostics), []);
  const sections = config as unknown as Record<string, Record<string, unknown>>;
  for (const key of ALL_KEYS) {
    const value = sections[key.section][key.name];
    if (key.spec.type === 'modules') assert.deepEqual(value, [...LINEAR_MODULES], key.path);
    else if (key.spec.type === 'path' && key.spec.default !== undefined) assert.equal(value, `${BASE}/${key.spec.default.replace(/^\.\//, '')}`, key.path);
    else if (!key.spec.required) assert.equal(value, key.spec.default, key.path);
  }
  assert.equal(config.training.max_steps, undefined);
  assert.equal(config.data.validation, undefined);
});

test('paths resolve against baseDir, ~ against the home folder', () => {
  const { config } = parse('model:\n  base: ~/models/x\ndata:\n  train: ../d.jsonl\n  validation: /abs/v.jsonl\n', BASE);
  assert.equal(config.model.base, `${homedir()}/models/x`);
  assert.equal(config.data.train, '/projects/d.jsonl');
  assert.equal(config.data.validation, '/abs/v.jsonl');
});

test('an empty file lacks the two required keys', () => {
  assert.deepEqual(brief(parse('', BASE).diagnostics), [
    '1:1-1:1 error missing-key model.base is required: a path to a model folder',
    '1:1-1:1 error missing-key data.train is required: a path to a JSONL file',
  ]);
});

test('a YAML syntax error is reported where the parser found it', () => {
  const text = `${minimal}lora:\n  r: 4: 5\ntraining:\n  seed: 1\n`;
  const syntax = parse(text, BASE).diagnostics.filter((d) => d.code === 'yaml-syntax');
  assert.equal(syntax.length, 1, JSON.stringify(syntax));
  assert.match(syntax[0].message, /^YAML: nested mappings are not allowed in compact mappings/);
  assert.equal(syntax[0].range.start.line, 5);
});

test('an unclosed bracket is one error on it; the rest of the file is still checked', () => {
  const text = `${minimal}lora:\n  target_modules: [q_proj, k_proj\n  rnak: 4\ntraining:\n  seed: 1\n`;
  const ds = parse(text, BASE).diagnostics;
  assert.deepEqual(brief(ds), ['6:19-6:20 error yaml-syntax YAML: this [ is never closed: add ]', '7:3-7:7 error unknown-key unknown key lora.rnak; did you mean r?']);
});

test('unknown keys say "did you mean", including other tools\' names, and offer the rename', () => {
  const text = `${minimal}lora:\n  rnak: 4\n  lora_alpha: 32\ntraining:\n  batch_size: 2\n  learning_rat: 1.0e-4\n`;
  const ds = parse(text, BASE).diagnostics;
  assert.deepEqual(brief(ds), [
    '6:3-6:7 error unknown-key unknown key lora.rnak; did you mean r?',
    '7:3-7:13 error unknown-key unknown key lora.lora_alpha; did you mean alpha?',
    '9:3-9:13 error unknown-key unknown key training.batch_size; did you mean micro_batch_size?',
    '10:3-10:15 error unknown-key unknown key training.learning_rat; did you mean learning_rate?',
  ]);
  assert.equal(ds[0].data?.suggestion, 'r');
  const fixed = applyEdits(text, ds.map((d) => d.data!.fixes![0].edits[0]));
  assert.deepEqual(brief(parse(fixed, BASE).diagnostics), []);
  assert.match(fixed, /\n {2}r: 4\n {2}alpha: 32\n/);
});

test('a key in the wrong section, and an unknown section, are named', () => {
  const ds = parse(`${minimal}lora:\n  epochs: 2\nr: 4\ntrainig:\n  seed: 1\nextras: {}\n`, BASE).diagnostics;
  assert.deepEqual(brief(ds), [
    '6:3-6:9 error misplaced-key epochs belongs in the training section, not lora (training.epochs)',
    '7:1-7:2 error misplaced-key r belongs in the lora section (lora.r)',
    '8:1-8:8 error unknown-key unknown section trainig; did you mean training?',
    '10:1-10:7 error unknown-key unknown section extras: the sections are model, lora, data, training, output',
  ]);
});

test('wrong types are errors on the value, with the likely fix', () => {
  const text = 'model:\n  base: ./m\n  double_quant: yes\n  block_size: "64"\ndata:\n  train: ./d.jsonl\nlora:\n  r: [8]\n  target_modules: q_proj\n';
  const ds = parse(text, BASE).diagnostics;
  assert.deepEqual(brief(ds), [
    '3:17-3:20 error wrong-type model.double_quant must be true or false, got the string "yes"',
    '4:15-4:19 error wrong-type model.block_size must be a power of two from 32 to 4096, got the string "64"',
    '8:6-8:9 error wrong-type lora.r must be an integer ≥ 1, got a list',
    '9:19-9:25 error wrong-type lora.target_modules must be a list or all-linear: write [q_proj]',
  ]);
  assert.deepEqual(ds.map((d) => d.data?.fixes?.[0]?.edits[0].newText), ['true', '64', '8', '[q_proj]']);
});

test('values out of range are errors, with the nearest valid value then the default', () => {
  const text = 'model:\n  base: ./m\n  block_size: 100\ndata:\n  train: ./d.jsonl\nlora:\n  r: 0\n  dropout: 1\n  alpha: 2.5\ntraining:\n  seed: -1\n  epochs: 1.5\n';
  const ds = parse(text, BASE).diagnostics;
  assert.deepEqual(brief(ds), [
    '3:15-3:18 error out-of-range model.block_size must be a power of two from 32 to 4096, got 100',
    '7:6-7:7 error out-of-range lora.r must be an integer ≥ 1, got 0',
    '8:12-8:13 error out-of-range lora.dropout must be a number in [0, 1), got 1',
    '11:9-11:11 error out-of-range training.seed must be an integer in [0, 4294967295], got -1',
    '12:11-12:14 error wrong-type training.epochs must be an integer ≥ 1, got 1.5',
  ]);
  const titles = ds.map((d) => d.data!.fixes!.map((f) => f.title));
  assert.deepEqual(titles[0], ['Set model.block_size to 128', 'Set model.block_size to its default, 64']);
  assert.deepEqual(titles[1], ['Set lora.r to 1', 'Set lora.r to its default, 8']);
  // [0, 1) has no nearest value above: only the default is offered.
  assert.deepEqual(titles[2], ['Set lora.dropout to its default, 0.05']);
});

test('enum values: a near miss is suggested, and the fix applies it', () => {
  const text = `${minimal}training:\n  lr_scheduler: Cosine\n  backend: gpu\n`;
  const ds = parse(text, BASE).diagnostics;
  assert.deepEqual(brief(ds), [
    '6:17-6:23 error unknown-value training.lr_scheduler must be one of constant | linear | cosine, got Cosine; did you mean cosine?',
    '7:12-7:15 error unknown-value training.backend must be one of auto | tensorflow | wasm | cpu | webgpu, got gpu; did you mean webgpu?',
  ]);
  const fixed = applyEdits(text, ds.map((d) => d.data!.fixes![0].edits[0]));
  assert.deepEqual(brief(parse(fixed, BASE).diagnostics), []);
  assert.equal(parse(fixed, BASE).config.training.backend, 'webgpu');
});

test('target_modules entries are checked one by one, on their own ranges', () => {
  const ds = parse(`${minimal}lora:\n  target_modules:\n    - q_proj\n    - v_prj\n    - q_proj\n`, BASE).diagnostics;
  assert.deepEqual(brief(ds), [
    '8:7-8:12 error unknown-value lora.target_modules: v_prj is not a linear module of a Llama-family model (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj); did you mean v_proj?',
    '9:7-9:13 warning duplicate-key lora.target_modules lists q_proj twice',
  ]);
});

test('a duplicate key is an error whose fix removes its line', () => {
  const text = `${minimal}lora:\n  r: 8\n  alpha: 16\n  r: 16\n`;
  const [d] = parse(text, BASE).diagnostics;
  assert.equal(brief([d])[0], '8:3-8:4 error duplicate-key lora.r is set twice (first on line 6): only the first would count');
  const fixed = applyEdits(text, d.data!.fixes![0].edits);
  assert.equal(fixed, `${minimal}lora:\n  r: 8\n  alpha: 16\n`);
  assert.equal(parse(text, BASE).config.lora.r, 8);
});

test('conflicting settings: epochs with max_steps is an error, the rest warnings', () => {
  const text = `model:\n  base: ./m\n  quantization: none\n  double_quant: true\ndata:\n  train: ./d.jsonl\n  validation: ./v.jsonl\n  validation_split: 0.2\ntraining:\n  epochs: 2\n  max_steps: 5\n  warmup_steps: 5\n`;
  const ds = parse(text, BASE).diagnostics;
  assert.deepEqual(brief(ds), [
    '4:3-4:15 warning conflict model.double_quant has no effect with quantization: none (no absmax scales to quantize)',
    '8:3-8:19 warning conflict data.validation_split is ignored: data.validation names the held-out file',
    '11:3-11:12 error conflict training.epochs and training.max_steps are both set: keep one',
    '12:3-12:15 warning conflict training.warmup_steps (5) reaches max_steps (5): the learning rate never gets to its peak',
  ]);
  const epochsFix = ds[2].data!.fixes!.find((f) => f.title === 'Remove training.epochs')!;
  assert.doesNotMatch(applyEdits(text, epochsFix.edits), /epochs/);
});

test('evaluation with nothing held out is a warning', () => {
  const ds = parse(`${minimal}  validation_split: 0\ntraining:\n  eval_every: 10\n`, BASE).diagnostics;
  assert.deepEqual(brief(ds), [
    '7:3-7:13 warning conflict training.eval_every has nothing to evaluate: set data.validation or a data.validation_split above 0',
  ]);
});

test('a learning rate above 1e-2 is a warning, not an error', () => {
  const { diagnostics, config } = parse(`${minimal}training:\n  learning_rate: 0.05\n`, BASE);
  assert.deepEqual(brief(diagnostics), [
    '6:18-6:22 warning suspicious-value training.learning_rate 0.05 is high: LoRA usually trains at 1e-5 to 1e-3, and the loss tends to diverge above 1e-2',
  ]);
  assert.equal(config.training.learning_rate, 0.05);
});

test('a key with no value: a warning when a default applies, an error when required', () => {
  const text = 'model:\n  base:\ndata:\n  train: ./d.jsonl\nlora:\n  r:\n';
  const ds = parse(text, BASE).diagnostics;
  assert.deepEqual(brief(ds), [
    '2:3-2:7 error no-value model.base has no value: it needs a path to a model folder',
    '6:3-6:4 warning no-value lora.r has no value, so the default 8 applies',
  ]);
  const fixed = applyEdits(text, ds[1].data!.fixes![0].edits);
  assert.match(fixed, /\n {2}r: 8\n$/);
});

test('the file must be a mapping of sections', () => {
  assert.deepEqual(brief(parse('- model\n', BASE).diagnostics).slice(0, 1), [
    '1:1-1:8 error not-a-mapping a .qlora file is a mapping of sections (model, lora, data, training, output)',
  ]);
  assert.deepEqual(brief(parse(`${minimal}lora: 8\n`, BASE).diagnostics), ['5:7-5:8 error not-a-mapping lora must hold keys (e.g. r: 8), not a single value']);
});

test('every fix offered for a broken config removes the problem it is attached to', () => {
  const text = `model:\n  base: ./m\n  quantization: nf5\n  block_size: 48\ndata:\n  train: ./d.jsonl\n  formt: chat\nlora:\n  r: -3\n  r: 4\n  dropout: 2\n  target_modules: [q_proj, o_prj]\ntraining:\n  learning_rate: "3e-4"\n  max_steps: 10\n  epochs: 1\n`;
  const before = parse(text, BASE).diagnostics;
  assert.ok(before.length >= 8, `expected many problems, got ${brief(before).join('\n')}`);
  for (const d of before) {
    for (const fix of d.data?.fixes ?? []) {
      const after = parse(applyEdits(text, fix.edits), BASE).diagnostics;
      assert.ok(after.length < before.length, `fix "${fix.title}" for "${d.message}" did not reduce the problems`);
      assert.ok(!after.some((a) => a.message === d.message), `fix "${fix.title}" left "${d.message}"`);
    }
  }
});

test('formatDiagnostic prints file:line:col: message, labelling what is not an error', () => {
  const ds = parse(`${minimal}training:\n  learning_rate: 0.05\n  seed: x\n`, BASE).diagnostics;
  assert.deepEqual(ds.map((d) => formatDiagnostic('train.qlora', d)), [
    'train.qlora:6:18: warning: training.learning_rate 0.05 is high: LoRA usually trains at 1e-5 to 1e-3, and the loss tends to diverge above 1e-2',
    'train.qlora:7:9: training.seed must be an integer in [0, 4294967295], got the string "x"',
  ]);
});

test('ranges count UTF-16 columns and survive CRLF line ends', () => {
  const text = '# é😀 comment\r\nmodel:\r\n  base: ./m # 😀\r\n  quantisation: nf4\r\ndata:\r\n  train: ./d.jsonl\r\n';
  assert.deepEqual(brief(parse(text, BASE).diagnostics), ['4:3-4:15 error unknown-key unknown key model.quantisation; did you mean quantization?']);
});
