// One QLoRA training step on whatever backend is current: a small Llama (grouped-query
// attention), NF4 base with double quantization, LoRA r 4 on all seven projections,
// forward + backward + one AdamW step. Shared by the GPU backends' tests, which run it on
// their backend and on the cpu backend and compare. Shapes: B batch, T time.
import { tf } from '../../server/engine/tf';
import { LlamaModel } from '../../server/engine/model/llama';
import { LoraAdapter } from '../../server/engine/lora/adapter';
import { AdamW, alignGradients } from '../../server/engine/train/optimizer';
import { Rng } from '../../server/engine/rng';
import { randomLlama } from '../helpers/reference';

export interface StepResult {
  /** Loss of the forward pass before the update, then after it. */
  loss: number;
  lossAfter: number;
  /** Gradient of every LoRA matrix, in parameter order. */
  grads: Float32Array[];
  /** Tensors held after the step minus before it (0: nothing leaked). */
  leakedTensors: number;
  /** Kernels the step ran, by name. */
  kernels: string[];
}

export async function qloraStep(B = 2, T = 12): Promise<StepResult> {
  const { config, weights } = randomLlama(5, { numKvHeads: 2, tieWordEmbeddings: false });
  const model = LlamaModel.fromLoaded({ dir: 'step', format: 'huggingface', config, weights, tokenizer: undefined as never },
    { quantization: 'nf4', blockSize: 64, doubleQuant: true });
  const lora = LoraAdapter.create(config, { r: 4, alpha: 8, dropout: 0, targetModules: 'all-linear', rslora: false }, new Rng(3));
  model.lora = lora;
  const params = lora.variables();
  // B starts at zero (PEFT), which would leave A's gradient zero: a nonzero B exercises both.
  const rng = new Rng(4);
  for (const p of params) if (p.shape[1] === 4) p.assign(tf.tensor2d(Float32Array.from({ length: p.size }, () => rng.normal() * 0.02), p.shape as [number, number]));
  const optimizer = new AdamW(params);
  const ids = tf.tensor2d(Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize)), [B, T], 'int32');
  const targets = tf.tensor2d(Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize)), [B, T], 'int32');
  const w = tf.tensor2d(Float32Array.from({ length: B * T }, (_, i) => (i % T < 2 ? 0 : 1)), [B, T]);
  // The model keeps its rotary tables and causal mask for the sequence length it last saw
  // (freed by dispose): a first forward builds them, so that only the step is counted.
  tf.tidy(() => model.loss(ids, targets, w)).dispose();
  const before = tf.memory().numTensors;
  let loss = 0;
  let grads: Float32Array[] = [];
  const profile = await tf.profile(async () => {
    const { value, grads: g } = tf.variableGrads(() => model.loss(ids, targets, w), params);
    loss = (await value.data())[0];
    const aligned = alignGradients(params, g);
    grads = await Promise.all(aligned.map(async (x) => (await x.data()) as Float32Array));
    optimizer.step(aligned, 1e-2);
    tf.dispose([value, ...Object.values(g)]);
  });
  const leakedTensors = tf.memory().numTensors - before;
  const after = tf.tidy(() => model.loss(ids, targets, w));
  const lossAfter = (await after.data())[0];
  tf.dispose([after, ids, targets, w]);
  optimizer.dispose();
  model.dispose();
  return { loss, lossAfter, grads, leakedTensors, kernels: [...new Set(profile.kernelNames)].sort() };
}

/** Largest |a - b| / (|b| + floor) over two lists of arrays, with where it is. */
export function largestDifference(a: Float32Array[], b: Float32Array[], floor: number): { rel: number; where: string } {
  let rel = 0, where = '';
  a.forEach((x, t) => x.forEach((v, i) => {
    const d = Math.abs(v - b[t][i]) / (Math.abs(b[t][i]) + floor);
    if (d > rel) { rel = d; where = `tensor ${t} [${i}]: ${v} vs ${b[t][i]}`; }
  }));
  return { rel, where };
}
