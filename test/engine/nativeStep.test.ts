// One whole training step (forward, loss, LoRA gradients) with the native GEMM and the
// fused ops against the same step on today's wasm kernels and composite ops, in one
// process: the loss equal within 1e-5 relative, every LoRA gradient within 1e-4.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../server/engine/tf';
import { initBackend } from '../../server/engine/backend';
import { activeNativeProvider, setNativeKernels } from '../../server/engine/kernels/nativeBatchMatMul';
import { setFusedOps } from '../../server/engine/ops';
import { LlamaModel } from '../../server/engine/model/llama';
import { LoraAdapter } from '../../server/engine/lora/adapter';
import { Rng } from '../../server/engine/rng';
import { randomLlama } from '../helpers/reference';

test('wasm: a step with native GEMM + fused ops equals the plain wasm step (loss 1e-5, LoRA gradients 1e-4)', async (t) => {
  const info = await initBackend('wasm');
  const native = activeNativeProvider() !== undefined;
  console.log(`# backend: ${info.device}`);
  const { config, weights } = randomLlama(5, { hiddenSize: 64, numHeads: 4, numKvHeads: 2, headDim: 16, intermediateSize: 160,
    numLayers: 2, vocabSize: 96, maxPositionEmbeddings: 32 });
  const model = LlamaModel.fromLoaded({ dir: 'step', format: 'huggingface', config, weights, tokenizer: undefined as never },
    { quantization: 'nf4', blockSize: 64, doubleQuant: true });
  model.lora = LoraAdapter.create(config, { r: 4, alpha: 8, dropout: 0, targetModules: 'all-linear', rslora: false }, new Rng(1));
  const vars = model.lora.variables();
  // B starts at zero (PEFT); give it values so that every gradient, A's too, is non-zero.
  const rng = new Rng(2);
  for (const v of vars) v.assign(tf.tensor(Float32Array.from({ length: v.size }, () => rng.normal() * 0.05), v.shape));
  const B = 2, T = 24;
  const ids = tf.tensor2d(Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize)), [B, T], 'int32');
  const tg = tf.tensor2d(Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize)), [B, T], 'int32');
  const w = tf.tensor2d(Float32Array.from({ length: B * T }, (_, i) => (i % T < 3 ? 0 : 1)), [B, T]);
  const keyMask = tf.tensor2d(Float32Array.from({ length: B * T }, (_, i) => (i >= B * T - 4 ? 0 : 1)), [B, T]);
  const step = () => {
    const { value, grads } = tf.variableGrads(() => model.loss(ids, tg, w, { attentionMask: keyMask }), vars);
    const out = { loss: value.dataSync()[0], grads: vars.map((v) => grads[v.name].dataSync().slice()) };
    tf.dispose([value, ...Object.values(grads)]);
    return out;
  };
  try {
    const fast = step();
    const before = tf.memory().numTensors;
    step();
    assert.equal(tf.memory().numTensors, before, 'tensors leak across steps');
    setNativeKernels(false);
    setFusedOps(false);
    const plain = step();
    assert.ok(Number.isFinite(fast.loss));
    assert.ok(Math.abs(fast.loss - plain.loss) / Math.abs(plain.loss) < 1e-5, `loss ${fast.loss} vs ${plain.loss}`);
    for (let k = 0; k < vars.length; k++) {
      let d = 0, n = 0;
      for (let i = 0; i < plain.grads[k].length; i++) { d += (fast.grads[k][i] - plain.grads[k][i]) ** 2; n += plain.grads[k][i] ** 2; }
      assert.ok(n > 0, `gradient ${k} is zero`);
      assert.ok(Math.sqrt(d / n) < 1e-4, `gradient ${k}: rel ${Math.sqrt(d / n)}`);
    }
    if (!native) t.diagnostic('native provider not running: compared fused ops against composite ops only');
  } finally {
    setNativeKernels(true);
    setFusedOps(true);
    tf.dispose([ids, tg, w, keyMask]);
    model.dispose();
  }
});
