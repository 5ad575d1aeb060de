// Forward + backward time of a Llama-shaped layer stack (NF4 base, LoRA on all seven
// projections) on each backend available here, with achieved GFLOP/s and the measured
// resident bytes per quantized parameter. Prints a table; asserts nothing.
//   node --import tsx test/bench/engine.bench.ts [--layers 2] [--seq 256] [--steps 3]
import { parseArgs } from 'node:util';
import { tf } from '../../server/engine/tf';
import { initBackend } from '../../server/engine/backend';
import { LlamaModel } from '../../server/engine/model/llama';
import { LoraAdapter } from '../../server/engine/lora/adapter';
import { LINEAR_MODULES, linearShape, type LlamaConfig } from '../../server/engine/model/config';
import { Rng } from '../../server/engine/rng';
import { randomLlama } from '../helpers/reference';

const { values: a } = parseArgs({ options: {
  layers: { type: 'string', default: '2' }, seq: { type: 'string', default: '256' }, batch: { type: 'string', default: '1' },
  steps: { type: 'string', default: '3' }, backends: { type: 'string', default: 'wasm,cpu,tensorflow' },
} });
const layers = Number(a.layers), T = Number(a.seq), B = Number(a.batch), steps = Number(a.steps);

const shape: Partial<LlamaConfig> = {
  hiddenSize: 512, numHeads: 8, numKvHeads: 8, headDim: 64, intermediateSize: 1376, numLayers: layers,
  vocabSize: 512, maxPositionEmbeddings: Math.max(T, 256),
};

/** Matrix-multiply FLOPs of one step. Frozen projections need dx only (no dW): 2 products
 * of 2NKM each; attention's two products run once forward and twice backward. */
export function stepFlops(c: LlamaConfig, B: number, T: number, r: number): number {
  const N = B * T;
  let f = 0;
  for (const m of LINEAR_MODULES) {
    const [o, i] = linearShape(c, m);
    f += 2 * (2 * N * i * o); // forward + dx
    f += 3 * (2 * N * r * (i + o)); // LoRA: forward, dx and dA/dB
  }
  f += 3 * 2 * (2 * B * c.numHeads * T * T * c.headDim);
  f *= c.numLayers;
  f += 3 * 2 * N * c.hiddenSize * c.vocabSize; // head: forward + dx (+ unused dW-free)
  return f;
}

async function run(backend: 'wasm' | 'cpu' | 'tensorflow') {
  let info;
  try {
    info = await initBackend(backend);
  } catch (e) {
    console.log(`| ${backend.padEnd(10)} | not available: ${(e as Error).message.split('.')[0]} |`);
    return;
  }
  const { config, weights } = randomLlama(11, shape);
  const model = LlamaModel.fromLoaded({ dir: 'bench', format: 'huggingface', config, weights, tokenizer: undefined as never },
    { quantization: 'nf4', blockSize: 64, doubleQuant: true });
  model.lora = LoraAdapter.create(config, { r: 16, alpha: 32, dropout: 0, targetModules: 'all-linear', rslora: false }, new Rng(1));
  const rng = new Rng(2);
  const ids = tf.tensor2d(Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize)), [B, T], 'int32');
  const tg = tf.tensor2d(Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize)), [B, T], 'int32');
  const w = tf.ones([B, T]) as tf.Tensor2D;
  const vars = model.lora.variables();
  const step = () => {
    const { value, grads } = tf.variableGrads(() => model.loss(ids, tg, w), vars);
    value.dataSync();
    tf.dispose([value, ...Object.values(grads)]);
  };
  const nSteps = backend === 'cpu' ? 1 : steps;
  step(); // warm-up: kernels compiled, XNNPACK operators created
  const t0 = performance.now();
  for (let i = 0; i < nSteps; i++) step();
  const ms = (performance.now() - t0) / nSteps;
  const gflops = stepFlops(config, B, T, 16) / (ms * 1e6);
  const rb = model.residentBytes();
  console.log(`| ${backend.padEnd(10)} | ${info.device.padEnd(26)} | ${ms.toFixed(0).padStart(8)} | ${(B * T / ms * 1000).toFixed(0).padStart(8)} | ` +
    `${gflops.toFixed(2).padStart(7)} | ${(rb.projections / rb.projectionParams).toFixed(4)} |`);
  tf.dispose([ids, tg, w]);
  model.dispose();
}

(async () => {
  console.log(`\nEngine: ${layers} Llama layers, dim 512, 8 heads, MLP 1376, batch ${B} x seq ${T}, NF4 + double quant, LoRA r 16 on all seven projections`);
  console.log('| backend    | device                     | ms/step  | tokens/s | GFLOP/s | bytes/param |');
  console.log('|------------|----------------------------|----------|----------|---------|-------------|');
  for (const b of a.backends!.split(',')) await run(b as 'wasm' | 'cpu' | 'tensorflow');
})();
