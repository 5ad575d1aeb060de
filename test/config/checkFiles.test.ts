// checkFiles(): the checks that read the disk, against a workspace the test writes.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parseAndCheck, type ConfigDiagnostic } from '../../server/config';
import { stories260K } from '../helpers/shared';
import { GOOD_CONFIG, makeWorkspace, type Workspace } from './workspace';

let ws: Workspace;
before(() => (ws = makeWorkspace()));
after(() => ws.cleanup());

function brief(ds: ConfigDiagnostic[]): string[] {
  return ds.map((d) => `${d.range.start.line + 1}:${d.range.start.character + 1}-${d.range.end.line + 1}:${d.range.end.character + 1} ${d.severity} ${d.code} ${d.message}`);
}

const check = (text: string) => brief(parseAndCheck(text, ws.dir).diagnostics);

test('a config whose files are all in order has no problem', () => {
  assert.deepEqual(check(GOOD_CONFIG), []);
});

test('a missing model folder is an error on its value, with the nearest sibling', () => {
  assert.deepEqual(check(GOOD_CONFIG.replace('./models/tiny', './models/tiyn')), [
    '2:9-2:22 error file-missing model.base: ./models/tiyn does not exist; did you mean tiny?',
  ]);
});

test('a folder that is not a model says why it cannot be loaded', () => {
  const [d, ...rest] = check(GOOD_CONFIG.replace('./models/tiny', './models/notamodel'));
  assert.deepEqual(rest, []);
  assert.equal(
    d,
    '2:9-2:27 error model-unloadable model.base: ./models/notamodel is not a loadable model: is not a model folder: looked for config.json with model.safetensors (Hugging Face) or a llama2.c checkpoint .bin with its tokenizer .bin',
  );
});

test('a model whose config.json is wrong names the file and the problem', () => {
  const dir = join(ws.dir, 'models', 'broken');
  mkdirSync(dir);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'llama', hidden_size: 16 }));
  writeFileSync(join(dir, 'model.safetensors'), '');
  assert.deepEqual(check(GOOD_CONFIG.replace('./models/tiny', './models/broken')), [
    '2:9-2:24 error model-unloadable model.base: ./models/broken is not a loadable model: config.json: missing required key "num_attention_heads"',
  ]);
});

test('missing data files are errors on data.train and data.validation', () => {
  const text = GOOD_CONFIG.replace('./data/alpaca.jsonl', './data/nope.jsonl').replace('  validation_split: 0.1\n', '  validation: ./data/val.jsonl\n');
  assert.deepEqual(check(text), [
    '13:10-13:27 error file-missing data.train: ./data/nope.jsonl does not exist',
    '15:15-15:31 error file-missing data.validation: ./data/val.jsonl does not exist',
  ]);
});

test('a data line that does not match data.format is reported with its line and reason', () => {
  assert.deepEqual(check(GOOD_CONFIG.replace('./data/alpaca.jsonl', './data/broken.jsonl')), [
    '13:10-13:29 error data-format data.train: ./data/broken.jsonl line 2 does not match format alpaca: missing field "output"',
  ]);
  assert.deepEqual(check(GOOD_CONFIG.replace('./data/alpaca.jsonl', './data/text.jsonl')), [
    '13:10-13:27 error data-format data.train: ./data/text.jsonl line 1 does not match format alpaca: missing field "instruction"',
  ]);
  assert.deepEqual(check(GOOD_CONFIG.replace('./data/alpaca.jsonl', './data/text.jsonl').replace('format: alpaca', 'format: text')), []);
});

test('an empty data file and a folder in its place are errors', () => {
  assert.deepEqual(check(GOOD_CONFIG.replace('./data/alpaca.jsonl', './data/empty.jsonl')), [
    '13:10-13:28 error data-format data.train: ./data/empty.jsonl is empty',
  ]);
  assert.deepEqual(check(GOOD_CONFIG.replace('./data/alpaca.jsonl', './data')), [
    '13:10-13:16 error file-missing data.train: ./data is a folder; expected a JSONL file',
  ]);
});

test('a data file rewritten on disk is checked again', () => {
  const file = join(ws.dir, 'data', 'changing.jsonl');
  const text = GOOD_CONFIG.replace('./data/alpaca.jsonl', './data/changing.jsonl');
  writeFileSync(file, '{"instruction": "a", "output": "b"}\n');
  assert.deepEqual(check(text), []);
  writeFileSync(file, '{"instruction": "a", "output": "b"}\nnot json\n');
  assert.match(check(text)[0], /line 2 does not match format alpaca: invalid JSON/);
});

test('chat data needs a chat template in the model folder', () => {
  const text = GOOD_CONFIG.replace('format: alpaca', 'format: chat').replace('./data/alpaca.jsonl', './data/chat.jsonl');
  writeFileSync(join(ws.dir, 'data', 'chat.jsonl'), '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n');
  assert.deepEqual(check(text), [
    "14:11-14:15 error conflict data.format: chat needs the model's chat template, and ./models/tiny has none (no chat_template in tokenizer_config.json): use alpaca or text",
  ]);
  writeFileSync(join(ws.dir, 'models', 'tiny', 'tokenizer_config.json'), JSON.stringify({ chat_template: '{{ messages }}' }));
  assert.deepEqual(check(text), []);
});

test('a max_seq_len beyond the model context is a warning', () => {
  assert.deepEqual(check(GOOD_CONFIG.replace('max_seq_len: 64', 'max_seq_len: 512')), [
    "16:16-16:19 warning out-of-range data.max_seq_len 512 is longer than the model's context (128 tokens)",
  ]);
});

test('an output.dir that is a file is an error', () => {
  assert.deepEqual(check(GOOD_CONFIG.replace('./runs/my-run', './data/text.jsonl')), [
    '30:8-30:25 error file-missing output.dir: ./data/text.jsonl is a file; the run needs a folder there',
  ]);
});

test('a key whose value is already wrong is not checked on disk as well', () => {
  assert.deepEqual(check(GOOD_CONFIG.replace('format: alpaca', 'format: alpacca').replace('./data/alpaca.jsonl', './data/text.jsonl')), [
    '14:11-14:18 error unknown-value data.format must be one of text | alpaca | chat, got alpacca; did you mean alpaca?',
  ]);
});

test('the real stories260K llama2.c folder is a loadable base', { skip: stories260K().skip }, () => {
  const text = GOOD_CONFIG.replace('./models/tiny', stories260K().dir).replace('format: alpaca', 'format: text').replace('./data/alpaca.jsonl', './data/text.jsonl');
  assert.deepEqual(check(text), []);
});
