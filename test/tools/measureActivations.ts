// Measures what one training step holds on the backend beyond the model (tf.profile peak
// bytes) for small random models that differ in one dimension at a time, with gradient
// checkpointing on and off, and prints it beside model/memory.ts's activationPlan.
// The per-token coefficients in memory.ts come from these differences.
//   node --import tsx test/tools/measureActivations.ts [wasm|cpu]
import { tf } from '../../server/engine/tf';
import { initBackend } from '../../server/engine/backend';
import { LlamaModel } from '../../server/engine/model/llama';
import { activationPlan } from '../../server/engine/model/memory';
import { loraParameterCount, LINEAR_MODULES, type LlamaConfig } from '../../server/engine/model/config';
import { LoraAdapter } from '../../server/engine/lora/adapter';
import { Rng } from '../../server/engine/rng';
import { randomLlama } from '../helpers/reference';

const R = 4;

async function measure(over: Partial<LlamaConfig>, T: number, ck: boolean): Promise<{ bytes: number; config: LlamaConfig }> {
  const { config, weights } = randomLlama(5, { vocabSize: 256, maxPositionEmbeddings: 512, ...over });
  const model = LlamaModel.fromLoaded({ dir: '(random)', format: 'huggingface', config, weights, tokenizer: undefined as never },
    { quantization: 'nf4', blockSize: 64, doubleQuant: true });
  model.lora = LoraAdapter.create(config, { r: R, alpha: 8, dropout: 0.1, targetModules: 'all-linear', rslora: false }, new Rng(3));
  const vars = model.lora.variables();
  const ids = tf.tensor2d(Array.from({ length: T }, (_, i) => (i * 7) % 256), [1, T], 'int32');
  const w = tf.ones([1, T]) as tf.Tensor2D;
  const step = () => {
    const rng = new Rng(1);
    const r = tf.variableGrads(() => model.loss(ids, ids, w, { gradientCheckpointing: ck, dropoutSeed: () => rng.nextUint32() }), vars);
    tf.dispose([r.value, ...Object.values(r.grads)]);
  };
  step(); // the position tables are made once per length
  const before = tf.memory().numBytes;
  const prof = await tf.profile(step);
  tf.dispose([ids, w]);
  model.dispose();
  return { bytes: prof.peakBytes - before, config };
}

async function main(): Promise<void> {
  const backend = (process.argv[2] ?? 'wasm') as 'wasm' | 'cpu';
  await initBackend(backend);
  const base = { hiddenSize: 128, intermediateSize: 384, numHeads: 4, numKvHeads: 2, headDim: 32 };
  const shapes: [string, Partial<LlamaConfig>, number][] = [
    ['base', base, 64],
    ['intermediate x2', { ...base, intermediateSize: 768 }, 64],
    ['hidden and heads x2', { ...base, hiddenSize: 256, numHeads: 8 }, 64],
    ['T x2', base, 128],
    ['kv heads x2', { ...base, numKvHeads: 4 }, 64],
    ['heads x2, head_dim / 2', { ...base, numHeads: 8, numKvHeads: 4, headDim: 16 }, 64],
  ];
  console.log(`backend ${backend}; bytes beyond the model at the step's peak, 3 layers, LoRA r ${R} on all seven projections`);
  for (const [name, s, T] of shapes) {
    const row: string[] = [];
    for (const ck of [false, true]) {
      const one = await measure({ ...s, numLayers: 1 }, T, ck);
      const three = await measure({ ...s, numLayers: 3 }, T, ck);
      const grads = 4 * loraParameterCount(three.config, R, LINEAR_MODULES);
      const plan = activationPlan(three.config, { seqLen: T, microBatch: 1, gradientCheckpointing: ck }).peak + grads;
      const perLayer = (three.bytes - one.bytes) / 2 / T;
      row.push(`${ck ? 'ckpt' : 'no ckpt'}: measured ${(three.bytes / 1e6).toFixed(2)} MB, plan ${(plan / 1e6).toFixed(2)} MB, ` +
        `per layer per token ${perLayer.toFixed(0)} B`);
    }
    console.log(`${name.padEnd(24)} T ${T}: ${row.join('; ')}`);
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
