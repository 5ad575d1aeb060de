import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseHfConfig, toHfConfigJson } from '../../server/engine/formats/hfConfig';
import { ModelFormatError } from '../../server/engine/formats/types';

const FILE = '/models/x/config.json';

// Abridged from the published config.json files of these models.
const TINYLLAMA = {
  architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 32000, hidden_size: 2048, intermediate_size: 5632,
  num_hidden_layers: 22, num_attention_heads: 32, num_key_value_heads: 4, max_position_embeddings: 2048, rms_norm_eps: 1e-5,
  rope_scaling: null, rope_theta: 10000.0, tie_word_embeddings: false, hidden_act: 'silu', bos_token_id: 1, eos_token_id: 2, torch_dtype: 'bfloat16',
};
const SMOLLM = {
  architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 49152, hidden_size: 576, intermediate_size: 1536,
  num_hidden_layers: 30, num_attention_heads: 9, num_key_value_heads: 3, max_position_embeddings: 2048, rms_norm_eps: 1e-5,
  rope_theta: 10000.0, tie_word_embeddings: true, bos_token_id: 0, eos_token_id: 0, attention_bias: false, mlp_bias: false,
};
const QWEN2 = {
  architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', vocab_size: 151936, hidden_size: 896, intermediate_size: 4864,
  num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2, max_position_embeddings: 32768, rms_norm_eps: 1e-6,
  rope_theta: 1000000.0, sliding_window: 32768, use_sliding_window: false, tie_word_embeddings: true, bos_token_id: 151643, eos_token_id: 151643,
};
const MISTRAL = {
  architectures: ['MistralForCausalLM'], model_type: 'mistral', vocab_size: 32000, hidden_size: 4096, intermediate_size: 14336,
  num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, max_position_embeddings: 32768, rms_norm_eps: 1e-5,
  rope_theta: 10000.0, sliding_window: 4096, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2,
};

function assertFormatError(fn: () => unknown, ...phrases: string[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ModelFormatError, `expected a ModelFormatError, got ${err}`);
    assert.ok(err.message.startsWith(`${FILE}: `), err.message);
    for (const p of phrases) assert.ok(err.message.includes(p), `message mentions "${p}": ${err.message}`);
    return true;
  });
}

test('a Llama config.json (TinyLlama) maps key by key', () => {
  assert.deepEqual(parseHfConfig(TINYLLAMA, FILE), {
    family: 'llama', vocabSize: 32000, hiddenSize: 2048, intermediateSize: 5632, numLayers: 22, numHeads: 32, numKvHeads: 4,
    headDim: 64, maxPositionEmbeddings: 2048, rmsNormEps: 1e-5, ropeTheta: 10000, tieWordEmbeddings: false, attentionBias: false,
    bosTokenId: 1, eosTokenId: 2,
  });
});

test('SmolLM is a tied llama; Qwen2 has q/k/v biases; Mistral uses its sliding window as context', () => {
  const smol = parseHfConfig(SMOLLM, FILE);
  assert.equal(smol.family, 'llama');
  assert.equal(smol.tieWordEmbeddings, true);
  assert.equal(smol.headDim, 64);
  const qwen = parseHfConfig(QWEN2, FILE);
  assert.equal(qwen.family, 'qwen2');
  assert.equal(qwen.attentionBias, true);
  assert.equal(qwen.ropeTheta, 1e6);
  assert.equal(qwen.maxPositionEmbeddings, 32768, 'use_sliding_window false leaves the context alone');
  const mistral = parseHfConfig(MISTRAL, FILE);
  assert.equal(mistral.family, 'mistral');
  assert.equal(mistral.maxPositionEmbeddings, 4096);
  assert.equal(mistral.attentionBias, false);
});

test('defaults: kv heads = heads, head_dim = hidden/heads, rope_theta 10000, untied, transformers eps and context', () => {
  const { num_key_value_heads: _kv, rope_theta: _theta, tie_word_embeddings: _tie, rms_norm_eps: _eps, max_position_embeddings: _ctx, ...rest } = TINYLLAMA;
  const c = parseHfConfig(rest, FILE);
  assert.equal(c.numKvHeads, 32);
  assert.equal(c.headDim, 64);
  assert.equal(c.ropeTheta, 10000);
  assert.equal(c.tieWordEmbeddings, false);
  assert.equal(c.rmsNormEps, 1e-6);
  assert.equal(c.maxPositionEmbeddings, 2048);
  assert.equal(parseHfConfig({ ...TINYLLAMA, head_dim: 128 }, FILE).headDim, 128);
  assert.equal(parseHfConfig({ ...TINYLLAMA, eos_token_id: [128001, 128008] }, FILE).eosTokenId, 128001);
  const { model_type: _type, ...byArchitecture } = MISTRAL;
  assert.equal(parseHfConfig(byArchitecture, FILE).family, 'mistral');
});

test('a missing required key is named with the config.json path', () => {
  for (const key of ['vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads']) {
    const json: Record<string, unknown> = { ...TINYLLAMA };
    delete json[key];
    assertFormatError(() => parseHfConfig(json, FILE), `missing required key "${key}"`);
  }
  assertFormatError(() => parseHfConfig({ ...TINYLLAMA, hidden_size: '2048' }, FILE), '"hidden_size" must be a positive integer');
});

test('unsupported architectures are named, with the supported ones listed', () => {
  assertFormatError(() => parseHfConfig({ ...TINYLLAMA, model_type: 'gpt2', architectures: ['GPT2LMHeadModel'] }, FILE), 'unsupported model_type "gpt2"', 'llama, mistral, qwen2');
  assertFormatError(() => parseHfConfig({ ...TINYLLAMA, architectures: ['LlavaForConditionalGeneration'] }, FILE), 'LlavaForConditionalGeneration', 'LlamaForCausalLM');
  const { model_type: _t, architectures: _a, ...neither } = TINYLLAMA;
  assertFormatError(() => parseHfConfig(neither, FILE), 'missing key "model_type"');
  assertFormatError(() => parseHfConfig([], FILE), 'is not a JSON object');
});

test('what the engine cannot run exactly is refused with the reason', () => {
  assertFormatError(() => parseHfConfig({ ...TINYLLAMA, rope_scaling: { rope_type: 'llama3', factor: 8 } }, FILE), 'rope_scaling.low_freq_factor', 'llama3');
  assertFormatError(() => parseHfConfig({ ...TINYLLAMA, rope_scaling: { rope_type: 'yarn', factor: 4 } }, FILE), 'rope_scaling', '"yarn"', 'model_type llama', 'not supported');
  assertFormatError(() => parseHfConfig({ ...TINYLLAMA, rope_scaling: { type: 'linear', factor: -2 } }, FILE), 'rope_scaling.factor');
  assert.equal(parseHfConfig({ ...TINYLLAMA, rope_scaling: { rope_type: 'default' } }, FILE).family, 'llama');
  assert.equal(parseHfConfig({ ...TINYLLAMA, rope_scaling: { type: 'linear', factor: 1 } }, FILE).family, 'llama');
  assertFormatError(() => parseHfConfig({ ...TINYLLAMA, attention_bias: true }, FILE), '"attention_bias": true');
  assertFormatError(() => parseHfConfig({ ...TINYLLAMA, mlp_bias: true }, FILE), '"mlp_bias": true');
  assertFormatError(() => parseHfConfig({ ...TINYLLAMA, hidden_act: 'gelu' }, FILE), 'hidden_act "gelu"');
  assertFormatError(() => parseHfConfig({ ...TINYLLAMA, num_key_value_heads: 5 }, FILE), 'not a multiple of num_key_value_heads 5');
});

// Llama-3.2-1B's published config.json, abridged.
const LLAMA32 = {
  architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 128256, hidden_size: 2048, intermediate_size: 8192,
  num_hidden_layers: 16, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64, max_position_embeddings: 131072,
  rms_norm_eps: 1e-5, rope_theta: 500000.0, tie_word_embeddings: true, bos_token_id: 128000, eos_token_id: [128001, 128008, 128009],
  rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
};

test('rope_scaling llama3 (Llama 3.x) and linear are read; head_dim when explicit', () => {
  const c = parseHfConfig(LLAMA32, FILE);
  assert.deepEqual(c.ropeScaling, { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
  assert.equal(c.headDim, 64);
  assert.deepEqual(parseHfConfig({ ...TINYLLAMA, rope_scaling: { type: 'linear', factor: 2 } }, FILE).ropeScaling, { type: 'linear', factor: 2 });
  assert.equal(parseHfConfig({ ...TINYLLAMA, hidden_size: 2048, head_dim: 128, num_attention_heads: 32 }, FILE).headDim, 128);
  assert.equal(parseHfConfig(TINYLLAMA, FILE).ropeScaling, undefined);
});

test('toHfConfigJson writes what parseHfConfig reads back, for every family', () => {
  for (const json of [TINYLLAMA, SMOLLM, QWEN2, MISTRAL, LLAMA32]) {
    const c = parseHfConfig(json, FILE);
    const written = toHfConfigJson(c, 'bfloat16');
    assert.deepEqual(parseHfConfig(written, FILE), c);
    assert.equal(written.torch_dtype, 'bfloat16');
    assert.deepEqual(written.architectures, json.architectures);
  }
  assert.equal(toHfConfigJson(parseHfConfig(TINYLLAMA, FILE)).rope_scaling, null);
});
