import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeHuggingFaceFolder } from '../../server/engine/formats/hfWriter';
import { loadModel, readModelConfig } from '../../server/engine/formats/modelFolder';
import { readSafetensors, writeSafetensors } from '../../server/engine/formats/safetensors';
import { ModelFormatError } from '../../server/engine/formats/types';
import { countParameters } from '../../server/engine/model/config';
import { Llama2cTokenizer } from '../../server/engine/tokenizer/llama2c';
import { HuggingFaceTokenizer } from '../../server/engine/tokenizer/huggingface';
import { stories260K } from '../helpers/shared';
import { TINY, TINY_PIECES, writeTinyCheckpoint, writeTinyTokenizer } from './llama2cFixtures';

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'qlora-mf-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A llama2.c folder: the TINY checkpoint and its 272-token tokenizer. */
function tinyLlama2cFolder(dir: string, opts: { tokenizerName?: string; version?: 0 | 1; shared?: boolean } = {}): string {
  mkdirSync(dir, { recursive: true });
  writeTinyCheckpoint(join(dir, 'model.bin'), TINY, opts.version ?? 0, opts.shared ?? true);
  writeTinyTokenizer(join(dir, opts.tokenizerName ?? 'tokenizer.bin'));
  return dir;
}

/** A Hugging Face folder converted from the tiny llama2.c model. */
async function tinyHfFolder(root: string, shared = true): Promise<string> {
  const model = await loadModel(tinyLlama2cFolder(join(root, 'l2c'), { shared }));
  return writeHuggingFaceFolder(join(root, 'hf'), model, { dtype: 'F32' });
}

async function assertRejectsFormat(promise: Promise<unknown> | (() => unknown), file: string, ...phrases: string[]): Promise<void> {
  const check = (err: unknown) => {
    assert.ok(err instanceof ModelFormatError, `expected a ModelFormatError, got ${err}`);
    assert.equal(err.file, file, err.message);
    for (const p of phrases) assert.ok(err.message.includes(p), `message mentions "${p}": ${err.message}`);
    return true;
  };
  if (typeof promise === 'function') assert.throws(promise, check);
  else await assert.rejects(promise, check);
}

test('a llama2.c folder loads from the folder or the checkpoint path; readModelConfig agrees', async (t) => {
  const dir = tinyLlama2cFolder(join(tempDir(t), 'm'), { tokenizerName: 'vocab.bin' }); // found by content, not name
  const model = await loadModel(dir);
  assert.equal(model.format, 'llama2c');
  assert.equal(model.dir, dir);
  assert.ok(model.tokenizer instanceof Llama2cTokenizer);
  assert.equal(model.tokenizer.vocabSize, 272);
  assert.equal(model.weights.size, 1 + TINY.nLayers * 9 + 1);
  assert.deepEqual(readModelConfig(dir), model.config);
  const byPath = await loadModel(join(dir, 'model.bin'));
  assert.deepEqual(byPath.config, model.config);
  assert.deepEqual(byPath.weights, model.weights);
  assert.deepEqual(readModelConfig(join(dir, 'model.bin')), model.config);
});

test('stories260K loads with 260,032 parameters, the expected shapes and its tokenizer', async (t) => {
  const shared = stories260K();
  if (shared.skip) return t.skip(shared.skip);
  const model = await loadModel(shared.dir);
  assert.equal(model.format, 'llama2c');
  assert.equal(countParameters(model.config).total, 260_032);
  assert.equal([...model.weights.values()].reduce((n, w) => n + w.data.length, 0), 260_032);
  assert.deepEqual(model.weights.get('model.layers.0.self_attn.k_proj.weight')!.shape, [32, 64]);
  assert.deepEqual(model.weights.get('model.layers.4.mlp.down_proj.weight')!.shape, [64, 172]);
  assert.equal(model.weights.has('lm_head.weight'), false);
  assert.equal(model.tokenizer.vocabSize, 512);
  assert.deepEqual(readModelConfig(shared.dir), model.config);
});

test('folders that are not models say what was looked for', async (t) => {
  const root = tempDir(t);
  const empty = join(root, 'empty');
  mkdirSync(empty);
  await assertRejectsFormat(loadModel(empty), empty, 'looked for config.json');
  assert.throws(() => readModelConfig(empty), /looked for config.json/);
  await assertRejectsFormat(loadModel(join(root, 'absent')), join(root, 'absent'), 'does not exist');
  const adapter = join(root, 'adapter');
  mkdirSync(adapter);
  writeFileSync(join(adapter, 'adapter_config.json'), '{}');
  await assertRejectsFormat(loadModel(adapter), adapter, 'LoRA adapter folder');
  writeFileSync(join(root, 'notes.txt'), 'hello');
  await assertRejectsFormat(loadModel(join(root, 'notes.txt')), join(root, 'notes.txt'), 'not a model folder');
});

test('llama2.c folders with a missing, extra or mismatched tokenizer are refused', async (t) => {
  const root = tempDir(t);
  const noTokenizer = join(root, 'a');
  mkdirSync(noTokenizer);
  writeTinyCheckpoint(join(noTokenizer, 'model.bin'));
  await assertRejectsFormat(loadModel(noTokenizer), noTokenizer, 'no tokenizer .bin');

  const twoTokenizers = tinyLlama2cFolder(join(root, 'b'));
  writeTinyTokenizer(join(twoTokenizers, 'tok2.bin'));
  await assertRejectsFormat(loadModel(twoTokenizers), twoTokenizers, 'several llama2.c tokenizer files');

  const twoCheckpoints = tinyLlama2cFolder(join(root, 'c'));
  writeTinyCheckpoint(join(twoCheckpoints, 'other.bin'));
  await assertRejectsFormat(loadModel(twoCheckpoints), twoCheckpoints, 'several llama2.c checkpoint candidates');

  const mismatch = tinyLlama2cFolder(join(root, 'd'));
  const tokenizerFile = join(mismatch, 'tokenizer.bin');
  writeTinyTokenizer(tokenizerFile, TINY_PIECES.slice(0, -1));
  await assertRejectsFormat(loadModel(mismatch), tokenizerFile, 'has 271 tokens', 'vocab_size 272');
});

test('a truncated llama2.c checkpoint in a folder reports expected and actual bytes', async (t) => {
  const dir = tinyLlama2cFolder(join(tempDir(t), 'm'));
  const file = join(dir, 'model.bin');
  const size = readFileSync(file).length;
  truncateSync(file, size - 64);
  await assertRejectsFormat(loadModel(dir), file, `expected ${size} bytes`, `has ${size - 64} bytes (truncated)`);
  await assertRejectsFormat(() => readModelConfig(dir), file, `expected ${size} bytes`);
});

test('Hugging Face weights that do not match config.json are refused, naming tensor and file', async (t) => {
  const root = tempDir(t);
  const dir = await tinyHfFolder(root);
  const weightsFile = join(dir, 'model.safetensors');
  const original = readSafetensors(weightsFile).tensors;
  const rewrite = (edit: (w: typeof original) => void) => {
    const w = new Map(original);
    edit(w);
    writeSafetensors(weightsFile, w, { dtype: 'F32' });
  };

  rewrite((w) => w.delete('model.layers.1.mlp.up_proj.weight'));
  await assertRejectsFormat(loadModel(dir), weightsFile, 'missing tensor "model.layers.1.mlp.up_proj.weight"', '[12, 8]');

  rewrite((w) => w.set('model.norm.weight', { shape: [4, 2], data: new Float32Array(8) }));
  await assertRejectsFormat(loadModel(dir), weightsFile, '"model.norm.weight" has shape [4, 2]', 'needs [8]');

  rewrite((w) => w.set('model.layers.0.self_attn.o_proj.bias', { shape: [8], data: new Float32Array(8) }));
  await assertRejectsFormat(loadModel(dir), weightsFile, 'unexpected tensor "model.layers.0.self_attn.o_proj.bias"');

  // A tied model saved with a copy of its head, and rotary buffers from old exports, load fine.
  rewrite((w) => {
    w.set('lm_head.weight', w.get('model.embed_tokens.weight')!);
    w.set('model.layers.0.self_attn.rotary_emb.inv_freq', { shape: [2], data: new Float32Array(2) });
  });
  const loaded = await loadModel(dir);
  assert.equal(loaded.weights.has('lm_head.weight'), false);
  assert.equal(loaded.weights.size, original.size);
});

test('Hugging Face folders with a bad config, no weights or an oversized tokenizer are refused', async (t) => {
  const root = tempDir(t);
  const dir = await tinyHfFolder(root);
  const configFile = join(dir, 'config.json');
  const config = JSON.parse(readFileSync(configFile, 'utf8'));

  const { intermediate_size: _drop, ...missing } = config;
  writeFileSync(configFile, JSON.stringify(missing));
  await assertRejectsFormat(loadModel(dir), configFile, 'missing required key "intermediate_size"');
  await assertRejectsFormat(() => readModelConfig(dir), configFile, 'intermediate_size');

  writeFileSync(configFile, JSON.stringify({ ...config, model_type: 'gpt_neox', architectures: ['GPTNeoXForCausalLM'] }));
  await assertRejectsFormat(loadModel(dir), configFile, 'unsupported model_type "gpt_neox"');

  writeFileSync(configFile, '{ not json');
  await assertRejectsFormat(loadModel(dir), configFile, 'cannot read as JSON');

  // vocab_size smaller than the tokenizer: ids past it would have no embedding row.
  writeFileSync(configFile, JSON.stringify({ ...config, vocab_size: 270 }));
  const tokenizerFile = join(dir, 'tokenizer.json');
  const weightsFile = join(dir, 'model.safetensors');
  const w = readSafetensors(weightsFile).tensors;
  const embed = w.get('model.embed_tokens.weight')!;
  w.set('model.embed_tokens.weight', { shape: [270, 8], data: embed.data.slice(0, 270 * 8) });
  writeSafetensors(weightsFile, w, { dtype: 'F32' });
  await assertRejectsFormat(loadModel(dir), tokenizerFile, 'has 272 tokens', 'vocab_size is 270');

  writeFileSync(configFile, JSON.stringify(config));
  rmSync(weightsFile);
  writeFileSync(join(dir, 'pytorch_model.bin'), 'pickle');
  await assertRejectsFormat(loadModel(dir), dir, 'no model.safetensors', 'PyTorch pickle');
});

test('a Hugging Face folder without tokenizer.json is refused', async (t) => {
  const dir = await tinyHfFolder(tempDir(t));
  rmSync(join(dir, 'tokenizer.json'));
  await assertRejectsFormat(loadModel(dir), join(dir, 'tokenizer.json'), 'needs tokenizer.json');
});

test('a Hugging Face folder loads with its own tokenizer and readModelConfig agrees', async (t) => {
  const root = tempDir(t);
  const dir = await tinyHfFolder(root, false);
  const model = await loadModel(dir);
  assert.equal(model.format, 'huggingface');
  assert.ok(model.tokenizer instanceof HuggingFaceTokenizer);
  assert.equal(model.config.tieWordEmbeddings, false);
  assert.ok(model.weights.has('lm_head.weight'));
  assert.deepEqual(readModelConfig(dir), model.config);
  // generation_config.json is optional: the four essential files are enough.
  const copy = join(root, 'copy');
  mkdirSync(copy);
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(dir, f), join(copy, f));
  assert.deepEqual((await loadModel(copy)).weights, model.weights);
});
