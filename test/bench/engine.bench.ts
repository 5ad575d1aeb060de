// Our training step against the PyTorch peer (peer_torch.py), side by side in one run:
// 2 Llama layers (dim 512, MLP 1376), NF4 + double quant base, LoRA r 16 on all seven
// projections, forward + backward. Rounds are interleaved (ours, ours on plain wasm,
// torch as shipped, torch with OpenBLAS's SkylakeX kernels, then again), so that load
// from other work on the machine falls on every contender alike; each reports the min
// and median per step of wall time and of CPU time (all threads of the process). On a
// shared machine CPU time is the figure to compare. Also prints kernels per step.
// Asserts nothing.
//   node --import tsx test/bench/engine.bench.ts [--layers 2] [--seq 256] [--rounds 5] [--steps 2]
import { parseArgs } from 'node:util';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { tf } from '../../server/engine/tf';
import { initBackend } from '../../server/engine/backend';
import { activeNativeProvider, setNativeKernels } from '../../server/engine/kernels/nativeBatchMatMul';
import { setFusedOps } from '../../server/engine/ops';
import { LlamaModel } from '../../server/engine/model/llama';
import { LoraAdapter } from '../../server/engine/lora/adapter';
import { LINEAR_MODULES, linearShape, type LlamaConfig } from '../../server/engine/model/config';
import { Rng } from '../../server/engine/rng';
import { randomLlama } from '../helpers/reference';

const { values: a } = parseArgs({ options: {
  layers: { type: 'string', default: '2' }, seq: { type: 'string', default: '256' }, batch: { type: 'string', default: '1' },
  rounds: { type: 'string', default: '5' }, steps: { type: 'string', default: '2' },
} });
const layers = Number(a.layers), T = Number(a.seq), B = Number(a.batch), rounds = Number(a.rounds), steps = Number(a.steps);

const shape: Partial<LlamaConfig> = {
  hiddenSize: 512, numHeads: 8, numKvHeads: 8, headDim: 64, intermediateSize: 1376, numLayers: layers,
  vocabSize: 512, maxPositionEmbeddings: Math.max(T, 256),
};

/** Matrix-multiply FLOPs of one step. Frozen projections need dx only (no dW): 2 products
 * of 2NKM each, but block 0's q/k/v read the frozen embeddings and need no dx at all;
 * attention's two products run once forward and twice backward. */
export function stepFlops(c: LlamaConfig, B: number, T: number, r: number): number {
  const N = B * T;
  let f = 0;
  for (const m of LINEAR_MODULES) {
    const [o, i] = linearShape(c, m);
    const blocksWithDx = m === 'q_proj' || m === 'k_proj' || m === 'v_proj' ? c.numLayers - 1 : c.numLayers;
    f += (c.numLayers + blocksWithDx) * (2 * N * i * o); // forward + dx
    f += c.numLayers * 3 * (2 * N * r * (i + o)); // LoRA: forward, dx and dA/dB
  }
  f += c.numLayers * 3 * 2 * (2 * B * c.numHeads * T * T * c.headDim);
  f += 3 * 2 * N * c.hiddenSize * c.vocabSize; // head: forward + dx (+ unused dW-free)
  return f;
}

interface Samples { wall: number[]; cpu: number[] }
const SETTLE_MS = 300;
interface Contender { label: string; samples: Samples; kernels?: number; run(n: number): Promise<void> }

const median = (xs: number[]) => { const s = [...xs].sort((p, q) => p - q); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const min = (xs: number[]) => Math.min(...xs);

async function ours(): Promise<{ contenders: Contender[]; device: string; flops: number; dispose(): void }> {
  const info = await initBackend('wasm');
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
  const provider = activeNativeProvider();
  const cores = provider?.threads ?? 1;
  const make = (label: string, fast: boolean, threads = cores): Contender => {
    const samples: Samples = { wall: [], cpu: [] };
    const set = () => { setNativeKernels(fast); setFusedOps(fast); provider?.setThreads(threads); };
    set();
    step(); // warm-up: sessions created, XNNPACK operators packed
    const c: Contender = {
      label, samples,
      async run(n) {
        set();
        for (let i = 0; i < n; i++) {
          const c0 = process.cpuUsage(), t0 = performance.now();
          step();
          const cu = process.cpuUsage(c0);
          samples.wall.push(performance.now() - t0);
          samples.cpu.push((cu.user + cu.system) / 1000);
        }
      },
    };
    return c;
  };
  const contenders = provider
    ? [make(`ours (native GEMM, ${cores} threads, fused ops)`, true), make('ours (native GEMM, 1 thread, fused ops)', true, 1)]
    : [make('ours (fused ops; no native GEMM)', true)];
  contenders.push(make('ours on plain wasm (before)', false));
  for (const [k, c] of contenders.entries()) {
    const fast = k < contenders.length - 1;
    setNativeKernels(fast); setFusedOps(fast);
    c.kernels = (await tf.profile(() => { step(); })).kernels.length;
  }
  provider?.setThreads(cores);
  return { contenders, device: info.device, flops: stepFlops(config, B, T, 16),
    dispose: () => { tf.dispose([ids, tg, w]); model.dispose(); setNativeKernels(true); setFusedOps(true); } };
}

/** A peer process that stays up between rounds: one JSON line per request. */
async function peer(label: string, python: string, env: Record<string, string | undefined>): Promise<Contender & { info: Record<string, unknown>; close(): void } | string> {
  // An undefined value removes the variable (the machine's own OPENBLAS_CORETYPE, for one).
  const childEnv = Object.fromEntries(Object.entries({ ...process.env, ...env }).filter(([, v]) => v !== undefined)) as Record<string, string>;
  const child: ChildProcessWithoutNullStreams = spawn(python, [join(__dirname, 'peer_torch.py'), String(layers), String(T), String(B), '1', '--serve'],
    { env: childEnv });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const lines = createInterface({ input: child.stdout });
  const iter = lines[Symbol.asyncIterator]();
  const next = async (): Promise<Record<string, unknown>> => {
    const r = await iter.next();
    if (r.done) throw new Error(`the peer exited: ${stderr.trim().split('\n').pop()}`);
    return JSON.parse(r.value);
  };
  let info: Record<string, unknown>;
  try {
    info = await next();
  } catch (e) {
    child.kill();
    return (e as Error).message;
  }
  const samples: Samples = { wall: [], cpu: [] };
  return {
    label, samples, info,
    async run(n) {
      child.stdin.write(`${n}\n`);
      const r = await next() as { wallMs: number[]; cpuMs: number[] };
      samples.wall.push(...r.wallMs);
      samples.cpu.push(...r.cpuMs);
    },
    close() { child.stdin.end(); },
  };
}

(async () => {
  console.log(`\nEngine vs PyTorch: ${layers} Llama layers, dim 512, 8 heads, MLP 1376, batch ${B} x seq ${T}, NF4 + double quant, ` +
    `LoRA r 16 on all seven projections; ${rounds} interleaved rounds of ${steps} steps each`);
  const o = await ours();
  console.log(`ours: ${o.device}`);
  const contenders: Contender[] = [...o.contenders];
  const closers: (() => void)[] = [];
  const python = ['python3', '/usr/bin/python3'].find((p) => spawnSync(p, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0);
  if (!python) {
    console.log('peer: PyTorch is not installed, so the peer cannot run: `sudo apt-get install python3-torch libopenblas0-pthread` ' +
      '(Debian; without OpenBLAS its torch runs the reference BLAS), then `npm run bench` again.');
  } else {
    // Where this machine's environment sets OPENBLAS_CORETYPE, torch as shipped runs those
    // kernels; the package's own choice (OpenBLAS detecting the core) is a contender too.
    const set = process.env.OPENBLAS_CORETYPE;
    const peers: [string, Record<string, string | undefined>][] = set
      ? [[`torch as shipped, this machine's OPENBLAS_CORETYPE=${set}`, {}], ['torch as shipped, OpenBLAS detects the core', { OPENBLAS_CORETYPE: undefined }]]
      : [['torch as shipped', {}]];
    peers.push(['torch, OPENBLAS_CORETYPE=SkylakeX', { OPENBLAS_CORETYPE: 'SkylakeX' }]);
    for (const [label, env] of peers) {
      const p = await peer(label, python, env);
      if (typeof p === 'string') { console.log(`peer ${label}: failed: ${p}`); continue; }
      console.log(`peer ${label}: torch ${p.info.torch}, ${p.info.threads} thread(s), BLAS ${p.info.blas}, OpenBLAS core ${p.info.core}`);
      contenders.push(p);
      closers.push(p.close);
    }
  }
  // A pause before each contender's round: OpenBLAS's threads (the peer's) keep spinning for
  // a while after a call returns, and a round started then finds one core taken; every
  // contender gets the same settled start.
  const settle = () => new Promise((done) => setTimeout(done, SETTLE_MS));
  for (let r = 0; r < rounds; r++) for (const c of contenders) { await settle(); await c.run(steps); }
  closers.forEach((c) => c());
  o.dispose();

  const base = contenders[0];
  const gflops = (ms: number) => o.flops / (ms * 1e6);
  console.log('\n| contender                                            | wall ms min | wall ms median | CPU ms min | CPU ms median | GFLOP/s per CPU s | kernels/step | ours / this (CPU, median) | ours / this (wall, median) |');
  console.log('|------------------------------------------------------|-------------|----------------|------------|---------------|-------------------|--------------|---------------------------|----------------------------|');
  for (const c of contenders) {
    const s = c.samples;
    console.log(`| ${c.label.padEnd(52)} | ${min(s.wall).toFixed(0).padStart(11)} | ${median(s.wall).toFixed(0).padStart(14)} | ` +
      `${min(s.cpu).toFixed(0).padStart(10)} | ${median(s.cpu).toFixed(0).padStart(13)} | ${gflops(median(s.cpu)).toFixed(1).padStart(17)} | ` +
      `${(c.kernels === undefined ? '-' : String(c.kernels)).padStart(12)} | ` +
      `${(median(s.cpu) / median(base.samples.cpu)).toFixed(2).padStart(24)}x | ${(median(s.wall) / median(base.samples.wall)).toFixed(2).padStart(25)}x |`);
  }
  console.log('(ours / this = this contender\'s time per step over ours: above 1 means ours is faster. On a machine shared with other ' +
    'work the wall times swing with the load; CPU time, summed over every thread of each process, is the figure to compare.)');
})();
