// The random-weight model maker: exact config.json, bf16 safetensors (sharded with an index
// past the shard size), a real tokenizer whose ids fit the embeddings, deterministic weights,
// and a folder the engine loads and runs. Only a small real-width shape here (SmolLM2's
// widths, one block): the large shapes are for the real-shapes benchmark.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel } from '../../server/engine/formats/modelFolder';
import { readSafetensorsHeader } from '../../server/engine/formats/safetensors';
import { initBackend } from '../../server/engine/backend';
import { LlamaModel } from '../../server/engine/model/llama';
import { evaluateIds } from '../../server/engine/evaluate';
import { makeModel, RECIPES } from './make-model';

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'qlora-make-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');

test('the five named configs match the published shapes', () => {
  const pick = (n: string) => RECIPES[n].config as Record<string, unknown>;
  assert.equal(pick('smollm2-135m').vocab_size, 49152);
  assert.equal(pick('qwen2.5-0.5b').vocab_size, 151936);
  assert.equal(pick('llama-3.2-1b').vocab_size, 128256);
  assert.equal(pick('llama-3.2-3b').vocab_size, 128256);
  assert.equal(pick('tinyllama-1.1b').vocab_size, 32000);
  assert.deepEqual((pick('llama-3.2-1b').rope_scaling as Record<string, unknown>).rope_type, 'llama3');
  assert.equal(pick('tinyllama-1.1b').tie_word_embeddings, false);
  assert.equal(pick('llama-3.2-3b').head_dim, 128);
});

test('smollm2-135m widths, one block: bf16, deterministic, sharded on request, loads and predicts near ln V', async (t) => {
  const root = tempDir(t);
  const a = makeModel('smollm2-135m', join(root, 'a'), { layers: 1, seed: 7 });
  const b = makeModel('smollm2-135m', join(root, 'b'), { layers: 1, seed: 7 });
  const c = makeModel('smollm2-135m', join(root, 'c'), { layers: 1, seed: 8 });
  assert.equal(sha(join(a.dir, 'model.safetensors')), sha(join(b.dir, 'model.safetensors')), 'same seed, same bytes');
  assert.notEqual(sha(join(a.dir, 'model.safetensors')), sha(join(c.dir, 'model.safetensors')));
  const config = JSON.parse(readFileSync(join(a.dir, 'config.json'), 'utf8'));
  assert.deepEqual(config, { ...RECIPES['smollm2-135m'].config, num_hidden_layers: 1 });
  const header = readSafetensorsHeader(join(a.dir, 'model.safetensors'));
  assert.ok(header.entries.every((e) => e.dtype === 'BF16'));
  assert.ok(existsSync(join(a.dir, 'tokenizer.json')) && existsSync(join(a.dir, 'tokenizer_config.json')));

  // Sharded: 20 MiB shards put the 56 MiB embedding alone in the first, the block in the next.
  const s = makeModel('smollm2-135m', join(root, 's'), { layers: 1, seed: 7, shardMiB: 20 });
  assert.ok(existsSync(join(s.dir, 'model.safetensors.index.json')));
  assert.ok(!existsSync(join(s.dir, 'model.safetensors')));
  const single = await loadModel(a.dir);
  const sharded = await loadModel(s.dir);
  assert.ok(single.tokenizer.vocabSize <= single.config.vocabSize);
  for (const name of ['model.embed_tokens.weight', 'model.layers.0.mlp.down_proj.weight', 'model.norm.weight']) {
    assert.deepEqual(sharded.weights.get(name)!.data, single.weights.get(name)!.data, name);
  }
  const w = single.weights.get('model.layers.0.self_attn.q_proj.weight')!.data;
  let sum = 0, sq = 0;
  for (const v of w) { sum += v; sq += v * v; }
  const std = Math.sqrt(sq / w.length - (sum / w.length) ** 2);
  assert.ok(Math.abs(std - 0.02) < 0.002, `std ${std}`);

  await initBackend('cpu');
  const model = LlamaModel.fromLoaded(single);
  t.after(() => model.dispose());
  const r = await evaluateIds(model, single.tokenizer.encode('Once upon a time, a little girl found a red box.', { bos: true }));
  // Random weights at std 0.02 predict nearly uniformly.
  assert.ok(Math.abs(r.loss - Math.log(single.config.vocabSize)) < 0.5, `loss ${r.loss}`);
});
