// Generation with the KV cache against generation without it (every token re-running the
// whole window): the same tokens, greedy and sampled, with grouped-query attention, Qwen2
// biases, an untied head, a LoRA adapter, NF4 weights, and past the model's context.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../server/engine/tf';
import { initBackend } from '../../server/engine/backend';
import { generateIds, type GenerateOptions } from '../../server/engine/generate';
import { loadModel } from '../../server/engine/formats/modelFolder';
import { LlamaModel, type QuantizationOptions } from '../../server/engine/model/llama';
import { KvCache } from '../../server/engine/model/kvCache';
import { LoraAdapter } from '../../server/engine/lora/adapter';
import { Rng } from '../../server/engine/rng';
import type { LlamaConfig } from '../../server/engine/model/config';
import { randomLlama } from '../helpers/reference';
import { stories260K } from '../helpers/shared';

const NONE: QuantizationOptions = { quantization: 'none', blockSize: 64, doubleQuant: false };
const NF4: QuantizationOptions = { quantization: 'nf4', blockSize: 32, doubleQuant: true };
const greedy = (maxTokens: number, more: Partial<GenerateOptions> = {}): GenerateOptions =>
  ({ maxTokens, temperature: 0, topP: 1, seed: 1, stopIds: [], ...more });

function randomModel(seed: number, quant: QuantizationOptions, over: Partial<LlamaConfig> = {}): LlamaModel {
  const { config, weights } = randomLlama(seed, over);
  return LlamaModel.fromLoaded({ dir: '(random)', format: 'huggingface', config, weights, tokenizer: undefined as never }, quant);
}

async function both(model: LlamaModel, prompt: number[], opts: GenerateOptions): Promise<[number[], number[]]> {
  const cached = await generateIds(model, prompt, { ...opts, kvCache: true });
  const uncached = await generateIds(model, prompt, { ...opts, kvCache: false });
  return [cached, uncached];
}

describe('KV cache (wasm)', () => {
  test('each step\'s logits equal the last row of a full forward pass (GQA 4 heads / 2 kv heads)', async () => {
    await initBackend('wasm');
    const model = randomModel(3, NONE);
    const ids = [1, 5, 9, 33, 2, 17, 63, 0, 8, 8, 12, 40];
    const cache = new KvCache(model);
    let worst = 0;
    // A 5-token prefill, then one token at a time.
    for (let n = 5; n <= ids.length; n++) {
      const step = cache.step(n === 5 ? ids.slice(0, 5) : [ids[n - 1]]);
      const got = await step.data();
      step.dispose();
      const full = tf.tidy(() => tf.slice(model.forward(tf.tensor2d([ids.slice(0, n)], [1, n], 'int32')), [n - 1, 0], [1, -1]));
      const want = await full.data();
      full.dispose();
      for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
    }
    console.log(`# max |cached - full| logit = ${worst.toExponential(2)}`);
    assert.ok(worst < 1e-4, `max abs diff ${worst}`);
    assert.equal(cache.length, ids.length);
    cache.dispose();
    model.dispose();
  });

  test('greedy output equals the uncached output token for token, across the context (GQA, NF4)', async () => {
    await initBackend('wasm');
    const model = randomModel(5, NF4, { maxPositionEmbeddings: 32 });
    const [cached, uncached] = await both(model, [1, 7, 7, 20, 3], greedy(45)); // 50 positions > 32
    assert.equal(uncached.length, 45);
    assert.deepEqual(cached, uncached);
    model.dispose();
  });

  test('Qwen2-style biases, an untied head and a LoRA adapter: the same tokens, sampled and greedy', async () => {
    await initBackend('wasm');
    const model = randomModel(9, NONE, { attentionBias: true, tieWordEmbeddings: false, numHeads: 4, numKvHeads: 1 });
    model.lora = LoraAdapter.create(model.config, { r: 4, alpha: 8, dropout: 0.1, targetModules: 'all-linear', rslora: false }, new Rng(2));
    const rng = new Rng(11);
    for (const v of model.lora.variables()) {
      if (v.name.includes('B') || v.shape[1] === 4) v.assign(tf.tidy(() => tf.mul(tf.tensor(Array.from({ length: v.size }, () => rng.next() - 0.5), v.shape), 0.3)));
    }
    const [g1, g2] = await both(model, [1, 2, 3], greedy(30));
    assert.deepEqual(g1, g2);
    const [s1, s2] = await both(model, [1, 2, 3], { maxTokens: 30, temperature: 0.9, topP: 0.95, seed: 4, stopIds: [] });
    assert.deepEqual(s1, s2);
    assert.notDeepEqual(s1, g1, 'sampling differs from greedy here');
    model.lora.dispose();
    model.lora = undefined;
    model.dispose();
  });

  test('stops on any id of the EOS list; no tensor is left behind', async () => {
    await initBackend('wasm');
    const model = randomModel(5, NONE);
    const free = await generateIds(model, [1, 4], greedy(20));
    const before = tf.memory().numTensors;
    // Stop ids as Llama 3.x lists them: several, the one that occurs first not first in the list.
    const third = free[3];
    const stopped = await generateIds(model, [1, 4], greedy(20, { stopIds: [999, third] }));
    assert.deepEqual(stopped, free.slice(0, free.indexOf(third)));
    assert.equal(tf.memory().numTensors, before);
    model.dispose();
  });

  test('an aborted signal stops generation with its reason; an empty prompt is refused', async () => {
    await initBackend('wasm');
    const model = randomModel(5, NONE);
    const ac = new AbortController();
    ac.abort(new Error('stopped by the user'));
    await assert.rejects(generateIds(model, [1], greedy(5, { signal: ac.signal })), /stopped by the user/);
    await assert.rejects(generateIds(model, [], greedy(5)), /at least one prompt token/);
    model.dispose();
  });
});

test('stories260K: greedy output with the KV cache equals the uncached output (NF4)', async (t) => {
  const shared = stories260K();
  if (shared.skip) return t.skip(shared.skip);
  await initBackend('wasm');
  const loaded = await loadModel(shared.dir);
  const model = LlamaModel.fromLoaded(loaded, { quantization: 'nf4', blockSize: 64, doubleQuant: true });
  const prompt = loaded.tokenizer.encode('Once upon a time, there was a little');
  const [cached, uncached] = await both(model, prompt, greedy(80, { stopIds: loaded.tokenizer.eosIds }));
  assert.ok(uncached.length > 20, `generated ${uncached.length} tokens`);
  assert.deepEqual(cached, uncached);
  console.log(`# ${cached.length} tokens: ${JSON.stringify(loaded.tokenizer.decode(cached).slice(0, 80))}`);
  model.dispose();
});
