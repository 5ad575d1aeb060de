// Forward + backward time of a Llama-shaped layer stack (NF4 base, LoRA on all seven
// projections) on each backend available here, with achieved GFLOP/s and the measured
// resident bytes per quantized parameter. Prints a table; asserts nothing.
//   node --import tsx test/bench/engine.bench.ts [--layers 2] [--seq 256] [--steps 3]
import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
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

/** GFLOP/s of a plain 1024x1024 float32 matMul on the current backend: the machine's ceiling for us. */
function matmulRate(): number {
  const a = tf.randomNormal([1024, 1024]), b = tf.randomNormal([1024, 1024]);
  tf.matMul(a, b).dispose();
  const outs: tf.Tensor[] = [];
  const t0 = performance.now();
  for (let i = 0; i < 5; i++) { const c = tf.matMul(a, b); c.dataSync(); outs.push(c); }
  const ms = (performance.now() - t0) / 5;
  tf.dispose([a, b, ...outs]);
  return (2 * 1024 ** 3) / (ms * 1e6);
}

const results: Record<string, { tokensPerSec: number; ceiling: number; gflops: number }> = {};

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
  results[backend] = { tokensPerSec: (B * T) / ms * 1000, ceiling: backend === 'cpu' ? NaN : matmulRate(), gflops };
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
  peer();
})();

/** The same math in PyTorch on the CPU (Debian's python3-torch), as shipped and with OpenBLAS's SkylakeX kernels. */
function peer() {
  const script = join(__dirname, 'peer_torch.py');
  const python = ['python3', '/usr/bin/python3'].find((p) => spawnSync(p, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0);
  console.log('\nPeer: PyTorch on the CPU, same shapes, NF4 dequantize in plain PyTorch + LoRA, forward + backward');
  if (!python) {
    console.log('  PyTorch is not installed, so the peer cannot run: `sudo apt-get install python3-torch libopenblas0-pthread` (Debian; without OpenBLAS its torch runs the reference BLAS), then `npm run bench` again.');
    return;
  }
  const ours = results.wasm;
  let peerBlas = 'unknown';
  console.log('| peer                          | ms/step | tokens/s | matmul GFLOP/s | ours (wasm) / peer tokens/s | ours / ceiling | peer / ceiling |');
  console.log('|-------------------------------|---------|----------|----------------|-----------------------------|----------------|----------------|');
  for (const [label, env] of [['torch as shipped', {}], ['torch, OPENBLAS_CORETYPE=SkylakeX', { OPENBLAS_CORETYPE: 'SkylakeX' }]] as const) {
    const r = spawnSync(python, [script, String(layers), String(T), String(B), String(steps)], { encoding: 'utf8', env: { ...process.env, ...env } });
    if (r.status !== 0) { console.log(`| ${label} | failed: ${r.stderr.trim().split('\n').pop()} |`); continue; }
    const p = JSON.parse(r.stdout.trim().split('\n').pop()!);
    peerBlas = p.blas;
    const peerFlops = stepFlops({ ...randomLlama(0, shape).config }, B, T, 16) / (p.msPerStep * 1e6);
    console.log(`| ${label.padEnd(29)} | ${p.msPerStep.toFixed(0).padStart(7)} | ${p.tokensPerSec.toFixed(0).padStart(8)} | ` +
      `${p.matmulGflops.toFixed(1).padStart(14)} | ${ours ? (ours.tokensPerSec / p.tokensPerSec).toFixed(2).padStart(27) : 'n/a'.padStart(27)} | ` +
      `${ours ? (ours.gflops / ours.ceiling).toFixed(2).padStart(14) : 'n/a'} | ${(peerFlops / p.matmulGflops).toFixed(2).padStart(14)} |`);
  }
  if (ours) console.log(`(our wasm matmul ceiling: ${ours.ceiling.toFixed(1)} GFLOP/s, one thread; the peer's BLAS: ${peerBlas}, threads as it chose them)`);
}
