// The TensorFlow.js Llama against the float64 reference, on every backend available here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../server/engine/tf';
import { initBackend } from '../../server/engine/backend';
import { LlamaModel } from '../../server/engine/model/llama';
import { LoraAdapter } from '../../server/engine/lora/adapter';
import { Rng } from '../../server/engine/rng';
import { randomLlama, referenceLogits } from '../helpers/reference';

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const loaded = (seed: number, over = {}) => {
  const { config, weights } = randomLlama(seed, over);
  return { dir: '(random)', format: 'huggingface' as const, config, weights, tokenizer: undefined as never };
};

for (const backend of ['wasm', 'cpu'] as const) {
  test(`${backend}: forward equals the float64 reference (GQA, tied head)`, async () => {
    await initBackend(backend);
    const m = loaded(1);
    const model = LlamaModel.fromLoaded(m, { quantization: 'none', blockSize: 64, doubleQuant: false });
    const ids = [1, 5, 9, 33, 2, 17, 63, 0, 8, 8, 12];
    const logits = tf.tidy(() => model.forward(tf.tensor2d([ids], [1, ids.length], 'int32')));
    const got = await logits.data();
    const want = referenceLogits(m.config, m.weights, ids);
    const d = maxAbsDiff(got, want);
    console.log(`# ${backend}: max |logit - float64 reference| = ${d.toExponential(2)}`);
    assert.ok(d < 1e-4, `max abs diff ${d}`);
    logits.dispose();
    model.dispose();
  });

  test(`${backend}: untied head, q/k/v biases (Qwen2 style), MHA`, async () => {
    await initBackend(backend);
    const m = loaded(2, { tieWordEmbeddings: false, attentionBias: true, numKvHeads: 4, family: 'qwen2' });
    const model = LlamaModel.fromLoaded(m, { quantization: 'none', blockSize: 64, doubleQuant: false });
    const ids = [3, 1, 4, 1, 5, 9, 2, 6];
    const got = tf.tidy(() => model.forward(tf.tensor2d([ids], [1, ids.length], 'int32'))).dataSync();
    const d = maxAbsDiff(got, referenceLogits(m.config, m.weights, ids));
    assert.ok(d < 1e-4, `max abs diff ${d}`);
    model.dispose();
  });

  test(`${backend}: rope_scaling llama3 (all three frequency bands) and linear equal the float64 reference`, async () => {
    await initBackend(backend);
    // head_dim 8, theta 10000: wavelengths 6.3, 63, 628, 6283 against original 64 / 4 = 16
    // and 64 / 1 = 64: one pair kept, one blended, two slowed by the factor.
    const scalings = [
      { type: 'llama3' as const, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 },
      { type: 'linear' as const, factor: 4 },
    ];
    for (const ropeScaling of scalings) {
      const m = loaded(6, { ropeScaling, tieWordEmbeddings: false, headDim: 8, numHeads: 4, numKvHeads: 2 });
      const model = LlamaModel.fromLoaded(m, { quantization: 'none', blockSize: 64, doubleQuant: false });
      const ids = Array.from({ length: 40 }, (_, i) => (i * 13 + 5) % 64); // positions past 16, 32, 63/2
      const got = tf.tidy(() => model.forward(tf.tensor2d([ids], [1, ids.length], 'int32'))).dataSync();
      const d = maxAbsDiff(got, referenceLogits(m.config, m.weights, ids));
      const plain = referenceLogits({ ...m.config, ropeScaling: undefined }, m.weights, ids);
      const moved = maxAbsDiff(got, plain);
      console.log(`# ${backend}: ${ropeScaling.type}: max |logit - float64 reference| = ${d.toExponential(2)}; differs from unscaled rope by ${moved.toExponential(2)}`);
      assert.ok(d < 1e-4, `${ropeScaling.type}: max abs diff ${d}`);
      assert.ok(moved > 1e-3, `${ropeScaling.type}: the scaling changed nothing`);
      model.dispose();
    }
  });

  test(`${backend}: a batch with right padding gives each row its own logits`, async () => {
    await initBackend(backend);
    const m = loaded(3);
    const model = LlamaModel.fromLoaded(m, { quantization: 'none', blockSize: 64, doubleQuant: false });
    const a = [1, 7, 7, 3, 9], b = [1, 4, 2];
    const T = 5, V = m.config.vocabSize;
    const ids = tf.tensor2d([a, [...b, 0, 0]], [2, T], 'int32');
    const mask = tf.tensor2d([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], [2, T]);
    const got = tf.tidy(() => model.forward(ids, { attentionMask: mask })).dataSync();
    assert.ok(maxAbsDiff(got.slice(0, T * V), referenceLogits(m.config, m.weights, a)) < 1e-4);
    assert.ok(maxAbsDiff(got.slice(T * V, (T + b.length) * V), referenceLogits(m.config, m.weights, b)) < 1e-4);
    tf.dispose([ids, mask]);
    model.dispose();
  });

  test(`${backend}: a fresh LoRA adapter leaves the output unchanged; tensors do not leak across a training step`, async () => {
    await initBackend(backend);
    const m = loaded(4);
    const model = LlamaModel.fromLoaded(m, { quantization: 'nf4', blockSize: 64, doubleQuant: true });
    const ids = tf.tensor2d([[1, 2, 3, 4, 5, 6]], [1, 6], 'int32');
    const targets = tf.tensor2d([[2, 3, 4, 5, 6, 7]], [1, 6], 'int32');
    const weights = tf.ones([1, 6]) as tf.Tensor2D;
    const before = tf.tidy(() => model.forward(ids)).dataSync();
    model.lora = LoraAdapter.create(m.config, { r: 4, alpha: 8, dropout: 0.1, targetModules: 'all-linear', rslora: false }, new Rng(7));
    const after = tf.tidy(() => model.forward(ids)).dataSync();
    assert.equal(maxAbsDiff(before, after), 0);

    const vars = model.lora.variables();
    const rng = new Rng(9);
    const step = () => {
      const { value, grads } = tf.variableGrads(() => model.loss(ids, targets, weights, { dropoutSeed: () => rng.nextUint32() }), vars);
      const gA = grads[vars[0].name].dataSync();
      const gB = grads[vars[1].name].dataSync();
      const loss = value.dataSync()[0];
      tf.dispose([value, ...Object.values(grads)]);
      return { loss, gA, gB };
    };
    const n0 = tf.memory().numTensors;
    const s = step();
    assert.equal(tf.memory().numTensors, n0, 'numTensors after a forward+backward step');
    assert.ok(Number.isFinite(s.loss));
    // B starts at zero, so dL/dA is zero and dL/dB is not (PEFT's init).
    assert.ok(s.gA.every((g) => g === 0));
    assert.ok(s.gB.some((g) => g !== 0));
    tf.dispose([ids, targets, weights]);
    model.dispose();
  });
}
