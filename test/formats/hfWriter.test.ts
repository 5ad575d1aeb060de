import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { roundToBfloat16, roundToFloat16 } from '../../server/engine/formats/halfFloat';
import { writeHuggingFaceFolder } from '../../server/engine/formats/hfWriter';
import { loadModel } from '../../server/engine/formats/modelFolder';
import { readSafetensorsHeader } from '../../server/engine/formats/safetensors';
import type { LoadedModel } from '../../server/engine/formats/types';
import { stories260K } from '../helpers/shared';
import { TINY, writeTinyCheckpoint, writeTinyTokenizer } from './llama2cFixtures';

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'qlora-hfw-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const TEXTS = ['Once upon a time, there was a little girl named Lily.', 'abc cab aaaa', 'Numbers 1, 22, 333!\nNew line\ttab', 'café 日本 🙂', ''];

async function tinyModel(root: string, version: 0 | 1 = 0, shared = true): Promise<LoadedModel> {
  const dir = join(root, `l2c-v${version}-${shared}`);
  mkdirSync(dir);
  writeTinyCheckpoint(join(dir, 'model.bin'), TINY, version, shared);
  writeTinyTokenizer(join(dir, 'tokenizer.bin'));
  return loadModel(dir);
}

function assertSameModel(a: LoadedModel, b: LoadedModel): void {
  assert.deepEqual(b.config, a.config);
  assert.deepEqual([...b.weights.keys()].sort(), [...a.weights.keys()].sort());
  for (const [name, w] of a.weights) {
    const got = b.weights.get(name)!;
    assert.deepEqual(got.shape, w.shape, name);
    assert.deepEqual(got.data, w.data, name);
  }
  for (const text of TEXTS) {
    const ids = a.tokenizer.encode(text);
    assert.deepEqual(b.tokenizer.encode(text), ids, JSON.stringify(text));
    assert.equal(b.tokenizer.decode(ids), a.tokenizer.decode(ids), JSON.stringify(text));
  }
}

test('llama2.c -> Hugging Face folder -> loadModel gives identical float32 weights and tokenization', async (t) => {
  const root = tempDir(t);
  for (const [version, shared] of [[0, true], [1, false]] as const) {
    const source = await tinyModel(root, version, shared);
    const out = writeHuggingFaceFolder(join(root, `hf-${version}`), source, { dtype: 'F32' });
    assert.deepEqual(readdirSync(out).sort(), ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    const loaded = await loadModel(out);
    assert.equal(loaded.format, 'huggingface');
    assertSameModel(source, loaded);
    const names = readSafetensorsHeader(join(out, 'model.safetensors')).entries.map((e) => e.name);
    assert.equal(names.includes('lm_head.weight'), !shared, 'a tied head is not written twice');
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    assert.deepEqual(config.architectures, ['LlamaForCausalLM']);
    assert.equal(config.torch_dtype, 'float32');
    assert.deepEqual(JSON.parse(readFileSync(join(out, 'generation_config.json'), 'utf8')), { _from_model_config: true, bos_token_id: 1, eos_token_id: 2 });
  }
  assert.deepEqual(readdirSync(root).filter((n) => n.startsWith('.')), [], 'no temporary folder is left behind');
});

test('stories260K converts to a Hugging Face folder that loads back identically', async (t) => {
  const shared = stories260K();
  if (shared.skip) return t.skip(shared.skip);
  const root = tempDir(t);
  const source = await loadModel(shared.dir);
  const out = writeHuggingFaceFolder(join(root, 'stories260K-hf'), source, { dtype: 'F32' });
  const loaded = await loadModel(out);
  assertSameModel(source, loaded);
  assert.equal(JSON.parse(readFileSync(join(out, 'tokenizer_config.json'), 'utf8')).model_max_length, 512);

  // Re-saving a Hugging Face model copies its tokenizer files as they are.
  writeFileSync(join(out, 'tokenizer_config.json'), JSON.stringify({ ...JSON.parse(readFileSync(join(out, 'tokenizer_config.json'), 'utf8')), chat_template: '{{ messages }}' }));
  const withTemplate = await loadModel(out);
  assert.equal(withTemplate.tokenizer.chatTemplate, '{{ messages }}');
  const again = writeHuggingFaceFolder(join(root, 'again'), withTemplate, { dtype: 'F32' });
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) {
    assert.deepEqual(readFileSync(join(again, f)), readFileSync(join(out, f)), f);
  }
  assertSameModel(withTemplate, await loadModel(again));
});

test('float16 and bfloat16 output holds each weight rounded to nearest even', async (t) => {
  const root = tempDir(t);
  const source = await tinyModel(root);
  // Make the weights need rounding: the fixture's small integers are exact in both formats.
  for (const w of source.weights.values()) w.data.forEach((v, i) => (w.data[i] = Math.sin(v + i) * 3.3));
  for (const [dtype, round, torch] of [['F16', roundToFloat16, 'float16'], ['BF16', roundToBfloat16, 'bfloat16']] as const) {
    const out = writeHuggingFaceFolder(join(root, dtype), source, { dtype });
    assert.equal(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).torch_dtype, torch);
    assert.ok(readSafetensorsHeader(join(out, 'model.safetensors')).entries.every((e) => e.dtype === dtype));
    const loaded = await loadModel(out);
    let changed = 0;
    for (const [name, w] of source.weights) {
      const got = loaded.weights.get(name)!.data;
      w.data.forEach((v, i) => {
        assert.equal(got[i], round(v), `${dtype} ${name}[${i}]`);
        if (got[i] !== v) changed++;
      });
    }
    assert.ok(changed > 0, 'some weights were rounded');
  }
});

test('an existing non-empty output folder is kept unless force; force replaces it whole', async (t) => {
  const root = tempDir(t);
  const source = await tinyModel(root);
  const out = join(root, 'out');
  mkdirSync(out);
  writeHuggingFaceFolder(out, source, { dtype: 'F32' }); // an empty folder is fine
  writeFileSync(join(out, 'stale.txt'), 'old');
  assert.throws(() => writeHuggingFaceFolder(out, source, { dtype: 'BF16' }), /already exists and is not empty/);
  assert.equal(readSafetensorsHeader(join(out, 'model.safetensors')).entries[0].dtype, 'F32', 'untouched');
  writeHuggingFaceFolder(out, source, { dtype: 'BF16', force: true });
  assert.equal(readSafetensorsHeader(join(out, 'model.safetensors')).entries[0].dtype, 'BF16');
  assert.ok(!readdirSync(out).includes('stale.txt'));
  assert.deepEqual(readdirSync(root).filter((n) => n.startsWith('.')), []);
});

test('large models are sharded with an index that loadModel follows', async (t) => {
  const root = tempDir(t);
  const source = await tinyModel(root);
  const out = writeHuggingFaceFolder(join(root, 'sharded'), source, { dtype: 'F32', maxShardBytes: 4096 });
  const files = readdirSync(out);
  assert.ok(files.includes('model.safetensors.index.json'));
  assert.ok(files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)).length > 1);
  assert.ok(!files.includes('model.safetensors'));
  assertSameModel(source, await loadModel(out));
});

test('incomplete weights are refused before anything is written', async (t) => {
  const root = tempDir(t);
  const source = await tinyModel(root);
  const weights = new Map(source.weights);
  weights.delete('model.layers.0.self_attn.q_proj.weight');
  assert.throws(() => writeHuggingFaceFolder(join(root, 'out'), { ...source, weights }, { dtype: 'F32' }), /missing tensor "model.layers.0.self_attn.q_proj.weight"/);
  assert.deepEqual(readdirSync(root).sort(), ['l2c-v0-true']);
});
