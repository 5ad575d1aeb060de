// model/memory.ts describes what a training step holds; this checks the description against
// what TensorFlow.js reports (tf.profile's peak bytes, which count every tensor) for one
// small model, with gradient checkpointing on and off. Not a speed or size target: a plan
// that drifts from the engine is wrong, whatever the sizes are. The plan describes the
// wasm kernels' tape; where the native provider runs, the fused LoRA projection
// (model/loraLinear.ts) saves less, and the plan must stay an upper bound there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../server/engine/tf';
import { initBackend } from '../../server/engine/backend';
import { LINEAR_MODULES, loraParameterCount } from '../../server/engine/model/config';
import { LlamaModel } from '../../server/engine/model/llama';
import { activationPlan, frozenTableBytes } from '../../server/engine/model/memory';
import { activeNativeProvider, setNativeKernels } from '../../server/engine/kernels/nativeBatchMatMul';
import { LoraAdapter } from '../../server/engine/lora/adapter';
import { Rng } from '../../server/engine/rng';
import { randomLlama } from '../helpers/reference';

test('wasm: activationPlan is within 15% of the measured peak of a step, checkpointing on and off', async () => {
  await initBackend('wasm');
  const T = 64, R = 4;
  const { config, weights } = randomLlama(5, { vocabSize: 256, hiddenSize: 128, intermediateSize: 384, numHeads: 4, numKvHeads: 2, headDim: 32, numLayers: 3, maxPositionEmbeddings: 128 });
  const model = LlamaModel.fromLoaded({ dir: '(random)', format: 'huggingface', config, weights, tokenizer: undefined as never },
    { quantization: 'nf4', blockSize: 64, doubleQuant: true });
  model.lora = LoraAdapter.create(config, { r: R, alpha: 8, dropout: 0.1, targetModules: 'all-linear', rslora: false }, new Rng(3));
  const vars = model.lora.variables();
  const ids = tf.tensor2d(Array.from({ length: T }, (_, i) => (i * 7) % 256), [1, T], 'int32');
  const w = tf.ones([1, T]) as tf.Tensor2D;
  const grads = 4 * loraParameterCount(config, R, LINEAR_MODULES);
  const measured: Record<string, number> = {};
  for (const ck of [false, true]) {
    const step = () => {
      const rng = new Rng(1);
      const r = tf.variableGrads(() => model.loss(ids, ids, w, { gradientCheckpointing: ck, dropoutSeed: () => rng.nextUint32() }), vars);
      tf.dispose([r.value, ...Object.values(r.grads)]);
    };
    const peakOf = async () => {
      step();
      const before = tf.memory().numBytes;
      return (await tf.profile(step)).peakBytes - before;
    };
    const plan = activationPlan(config, { seqLen: T, microBatch: 1, gradientCheckpointing: ck }).peak + grads;
    const native = activeNativeProvider() !== undefined;
    setNativeKernels(false);
    const peak = await peakOf().finally(() => setNativeKernels(true));
    measured[String(ck)] = peak;
    console.log(`# checkpointing ${ck}: measured ${(peak / 1e6).toFixed(2)} MB, plan ${(plan / 1e6).toFixed(2)} MB`);
    assert.ok(Math.abs(plan - peak) <= 0.15 * peak, `checkpointing ${ck}: plan ${plan} vs measured ${peak}`);
    if (native) {
      const nativePeak = await peakOf();
      console.log(`# checkpointing ${ck}, native provider: measured ${(nativePeak / 1e6).toFixed(2)} MB (the plan is an upper bound)`);
      assert.ok(nativePeak <= plan, `checkpointing ${ck}, native: measured ${nativePeak} above the plan ${plan}`);
    }
  }
  assert.ok(measured.true < measured.false, 'checkpointing holds less');
  assert.deepEqual(frozenTableBytes(config), { embedding: 256 * 128 * 2, head: 0 });
  tf.dispose([ids, w]);
  model.dispose();
});
