// The cost formulas the code lens shows, checked against sums done by hand.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readModelConfig } from '../../server/engine/formats/modelFolder';
import type { LlamaConfig } from '../../server/engine/model/config';
import { bytesPerBaseParameter, estimateCost, formatBytes, formatCount, parse } from '../../server/config';
import { stories260K } from '../helpers/shared';
import { GOOD_CONFIG, TINY } from './workspace';

test('bytes per base parameter follow the bitsandbytes layout', () => {
  // 4-bit codes + an 8-bit absmax per 64 + a float32 per 256 absmax: QLoRA's 4.127 bits.
  assert.equal(bytesPerBaseParameter({ quantization: 'nf4', double_quant: true, block_size: 64 }), 0.5 + 1 / 64 + 4 / (64 * 256));
  assert.equal(bytesPerBaseParameter({ quantization: 'nf4', double_quant: true, block_size: 64 }) * 8, 4.126953125);
  assert.equal(bytesPerBaseParameter({ quantization: 'fp4', double_quant: false, block_size: 64 }), 0.5625);
  assert.equal(bytesPerBaseParameter({ quantization: 'nf4', double_quant: false, block_size: 4096 }), 0.5 + 4 / 4096);
  assert.equal(bytesPerBaseParameter({ quantization: 'none', double_quant: true, block_size: 64 }), 4);
});

const tiny: LlamaConfig = {
  family: 'llama',
  vocabSize: TINY.vocab,
  hiddenSize: TINY.hidden,
  intermediateSize: TINY.intermediate,
  numLayers: TINY.layers,
  numHeads: TINY.heads,
  numKvHeads: TINY.kvHeads,
  headDim: TINY.hidden / TINY.heads,
  maxPositionEmbeddings: 128,
  rmsNormEps: 1e-6,
  ropeTheta: 10000,
  tieWordEmbeddings: true,
  attentionBias: false,
};

test('trainable parameters and the memory estimate for a model small enough to count by hand', () => {
  const { config } = parse(GOOD_CONFIG, '/x');
  const cost = estimateCost(tiny, config);
  // q 16x16, k 8x16, v 8x16, o 16x16: r x (in + out) = 8 x (32 + 24 + 24 + 32) per layer, 2 layers.
  assert.equal(cost.trainableParameters, 8 * 112 * 2);
  // Linear: (256 + 128 + 128 + 256 + 3 x 640) x 2 = 5376; norms 2 x 2 x 16 + 16; tied embedding 32 x 16.
  assert.equal(cost.totalParameters, 5376 + 80 + 512);
  assert.equal(cost.trainablePercent, (100 * 1792) / 5968);
  const plan = cost.memory.plan;
  const part = (name: string) => plan.parts.find((p) => p.name === name)!.bytes;
  assert.equal(part('baseWeights'), 5376 * (0.5 + 1 / 64 + 4 / (64 * 256)));
  // Norms (2 per layer + the final one) in float32 on the heap; the tied embedding once, in bf16, on the host.
  assert.equal(part('smallWeights'), 80 * 4);
  assert.equal(part('tables'), 512 * 2);
  // Weights and two AdamW moments; with gradient accumulation also the running sum.
  assert.equal(config.training.gradient_accumulation_steps > 1, true);
  assert.equal(part('lora'), 1792 * 16);
  // Checkpointed: each of 2 layers keeps its input (and the tape's copy) for B 4 x T 64 tokens.
  assert.equal(part('savedActivations'), 2 * 4 * 64 * 2 * 16 * 4);
  const heap = (phase: string) => plan.parts.filter((p) => p.where === 'heap' && p.phase === phase).reduce((a, p) => a + p.bytes, 0);
  assert.equal(plan.tensorPeak, heap('resident') + Math.max(heap('backward'), heap('optimizer')));
  assert.ok(plan.heapPeak >= plan.tensorPeak, 'the wasm heap adds its allocator slack');
  assert.equal(cost.memory.total, plan.rssPeak);
  assert.ok(plan.rssPeak >= plan.heapPeak + part('tables') + part('runtime'));
});

test('the estimate grows with rank, batch and sequence length, and shrinks with quantization', () => {
  const { config } = parse(GOOD_CONFIG, '/x');
  const base = estimateCost(tiny, config).memory.total;
  const bigger = (patch: (c: typeof config) => void) => {
    const c = structuredClone(config);
    patch(c);
    return estimateCost(tiny, c).memory.total;
  };
  assert.ok(bigger((c) => (c.lora.r = 64)) > base);
  assert.ok(bigger((c) => (c.training.micro_batch_size = 8)) > base);
  assert.ok(bigger((c) => (c.data.max_seq_len = 128)) > base);
  assert.ok(bigger((c) => (c.model.quantization = 'none')) > base);
  assert.ok(bigger((c) => ((c.training as { gradient_checkpointing?: boolean }).gradient_checkpointing = false)) > base);
  // T is capped at the model's context: 4096 costs what 128 does.
  assert.equal(bigger((c) => (c.data.max_seq_len = 4096)), bigger((c) => (c.data.max_seq_len = 128)));
});

test('stories260K: 260,032 parameters, and all-linear at r 8 adds 8 x (in + out) per projection', { skip: stories260K().skip }, () => {
  const model = readModelConfig(stories260K().dir);
  const { config } = parse('model:\n  base: m\ndata:\n  train: d\n', '/x');
  const cost = estimateCost(model, config);
  assert.equal(cost.totalParameters, 260_032);
  // dim 64, kv 32, hidden 172, 5 layers: q 128, k 96, v 96, o 128, gate 236, up 236, down 236.
  assert.equal(cost.trainableParameters, 8 * (128 + 96 + 96 + 128 + 3 * 236) * 5);
});

test('counts and sizes read the way the lens prints them', () => {
  assert.equal(formatCount(999), '999');
  assert.equal(formatCount(46_240), '46.2K');
  assert.equal(formatCount(6_738_415_616), '6.74B');
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(1536), '1.5 KiB');
  assert.equal(formatBytes(3.5 * 2 ** 30), '3.5 GiB');
});
