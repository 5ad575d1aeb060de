// The webgpu backend (Dawn): the Dequantize4bit WGSL kernel against the host reference,
// bit for bit, in both layouts, and a QLoRA training step against the cpu backend. Runs
// wherever Dawn finds an adapter; elsewhere every test is skipped with Dawn's reason.
// Without a GPU, test/gpu/with-mesa.sh runs it on Mesa's llvmpipe (OpenGL, compatibility mode).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../helpers/shared';
import { qlora } from '../helpers/cli';
import { runConfig } from '../helpers/runConfig';
import { shipLogs } from '../../server/demo/corpus';
import { writeTinyModel, TINY_MODEL } from '../../server/demo/tinyModel';
import { tf } from '../../server/engine/tf';
import { BackendUnavailableError, initBackend } from '../../server/engine/backend';
import { adapterName, startWebGpu } from '../../server/engine/kernels/webgpuDawn';
import { hasDequantizeKernel, DEQUANTIZE_4BIT } from '../../server/engine/quant/kernels';
import { QuantizedWeight, dequantizeWeightReference } from '../../server/engine/quant/quantizedWeight';
import type { QuantOptions } from '../../server/engine/quant/quantizedWeight';
import { largestDifference, qloraStep } from './trainStep';
import { randomWeight, transposeHost } from '../helpers/weights';

let unavailable: string | undefined;

// First, before anything starts Dawn for real: the refusal of a CPU renderer.
test('a software adapter (llvmpipe, SwiftShader) is refused unless QLORA_WEBGPU_ALLOW_SOFTWARE=1', async (t) => {
  const r = await startWebGpu({ ...process.env, QLORA_WEBGPU_ALLOW_SOFTWARE: '0' });
  if (r.ok) {
    t.skip(`the adapter here is a GPU: ${adapterName(r.adapter)}`);
    return;
  }
  if (/no GPU adapter/.test(r.why)) {
    t.skip(r.why);
    return;
  }
  assert.match(r.why, /software renderer on the CPU/);
  assert.match(r.howToGet, /QLORA_WEBGPU_ALLOW_SOFTWARE=1/);
});

test('without an adapter, forcing webgpu is a BackendUnavailableError that says what Dawn needs', async () => {
  // In a process of its own where Dawn cannot load (here and on a machine with a GPU alike).
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'test/gpu/forceWebgpu.ts'], {
    cwd: projectRoot, encoding: 'utf8', timeout: 120_000,
    env: { ...process.env, QLORA_DAWN_NODE: join(tmpdir(), 'no-such-dir', 'dawn.node') },
  });
  const line = r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  assert.ok(line, `no answer (exit ${r.status}): ${r.stderr}`);
  const answer = JSON.parse(line) as { error?: string; message?: string };
  assert.equal(answer.error, BackendUnavailableError.name, line);
  assert.match(answer.message!, /backend 'webgpu' is not available: Dawn's addon .*no-such-dir.* did not load/);
  // As it is here: either an adapter starts or the refusal names what Dawn needs.
  try {
    const info = await initBackend('webgpu');
    console.log(`# an adapter exists here: ${info.device}`);
  } catch (e) {
    assert.ok(e instanceof BackendUnavailableError, String(e));
    assert.match((e as Error).message, /backend 'webgpu' is not available: .*(libvulkan|software renderer|did not load|not installed|no GPU adapter)/);
  }
});

/** Switches to webgpu; false (the test skipped, with Dawn's reason printed) where it cannot start. */
async function useWebgpu(t: TestContext): Promise<boolean> {
  if (unavailable === undefined) {
    try {
      const info = await initBackend('webgpu');
      unavailable = '';
      console.log(`# webgpu device: ${info.device}`);
    } catch (e) {
      unavailable = (e as Error).message;
      console.log(`# SKIP webgpu tests: ${unavailable}`);
    }
  }
  if (unavailable) {
    t.skip(unavailable);
    return false;
  }
  await initBackend('webgpu');
  assert.equal(tf.getBackend(), 'webgpu');
  return true;
}

/** Bit-for-bit equality (-0 differs from +0): the first differing index with both values, or ''. */
function firstBitDifference(a: Float32Array, b: Float32Array): string {
  if (a.length !== b.length) return `lengths ${a.length} vs ${b.length}`;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length), ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return `[${i}]: ${a[i]} vs ${b[i]}`;
  return '';
}

// As test/quant/kernels.test.ts: partial last words and blocks, odd rows, blocks that
// straddle rows; plus a 2048x1376 weight (a Llama MLP's shape class).
const CASES: Array<{ shape: [number, number]; blockSize: number }> = [
  { shape: [37, 45], blockSize: 64 },
  { shape: [30, 40], blockSize: 64 },
  { shape: [48, 96], blockSize: 128 },
  { shape: [3, 5], blockSize: 64 },
  { shape: [2048, 1376], blockSize: 64 },
];

test('webgpu Dequantize4bit kernel equals the reference bit for bit: both layouts, nf4/fp4, double quant', async (t) => {
  if (!(await useWebgpu(t))) return;
  assert.ok(hasDequantizeKernel(), `${DEQUANTIZE_4BIT} registered for webgpu`);
  for (const { shape, blockSize } of CASES) {
    for (const quantType of ['nf4', 'fp4'] as const) {
      for (const doubleQuant of [false, true]) {
        const opts: QuantOptions = { quantType, blockSize, doubleQuant };
        const q = QuantizedWeight.fromHost(randomWeight(shape[0], shape[1], shape[0] + blockSize), opts);
        const ref = dequantizeWeightReference(q.toQuantized(), q.state);
        const what = `${shape.join('x')} ${JSON.stringify(opts)}`;
        const w = q.dequantize();
        const wT = q.dequantize({ transpose: true });
        assert.deepEqual(w.shape, shape);
        assert.deepEqual(wT.shape, [shape[1], shape[0]]);
        assert.equal(firstBitDifference((await w.data()) as Float32Array, ref), '', `${what}: W`);
        assert.equal(firstBitDifference((await wT.data()) as Float32Array, transposeHost(ref, shape[0], shape[1])), '', `${what}: W^T`);
        tf.dispose([w, wT]);
        q.dispose();
      }
    }
  }
});

test('webgpu Dequantize4bit: more than 65535 workgroups (the dispatch is split over y) and no leaks', async (t) => {
  if (!(await useWebgpu(t))) return;
  const [rows, cols] = [4100, 4096]; // 16.8M values: 65,600 workgroups of 256
  const q = QuantizedWeight.fromHost(randomWeight(rows, cols, 9), { quantType: 'nf4', blockSize: 64, doubleQuant: true });
  const ref = dequantizeWeightReference(q.toQuantized(), q.state);
  const held = tf.memory().numTensors;
  for (const transpose of [false, true]) {
    const w = q.dequantize({ transpose });
    const want = transpose ? transposeHost(ref, rows, cols) : ref;
    assert.equal(firstBitDifference((await w.data()) as Float32Array, want), '', `transpose ${transpose}`);
    w.dispose();
    assert.equal(tf.memory().numTensors, held);
  }
  q.dispose();
});

test('a QLoRA training step on webgpu matches the cpu backend, with no leaked tensors', async (t) => {
  if (!(await useWebgpu(t))) return;
  await initBackend('cpu');
  const cpuStep = await qloraStep();
  await useWebgpu(t);
  const gpuStep = await qloraStep();
  assert.ok(gpuStep.kernels.includes(DEQUANTIZE_4BIT), `the step ran ${DEQUANTIZE_4BIT} as a kernel: ${gpuStep.kernels.join(' ')}`);
  assert.equal(gpuStep.leakedTensors, 0, 'tensors held after the step');
  const lossDiff = Math.abs(gpuStep.loss - cpuStep.loss);
  const grad = largestDifference(gpuStep.grads, cpuStep.grads, 1e-3);
  console.log(`# loss webgpu ${gpuStep.loss} cpu ${cpuStep.loss} (|diff| ${lossDiff.toExponential(2)}); ` +
    `largest gradient difference ${grad.rel.toExponential(2)} relative (${grad.where}); loss after the update ${gpuStep.lossAfter} vs ${cpuStep.lossAfter}`);
  assert.ok(lossDiff <= 1e-5 * Math.abs(cpuStep.loss), `loss ${gpuStep.loss} vs ${cpuStep.loss}`);
  assert.ok(grad.rel <= 1e-3, `gradients: ${grad.where}`);
  assert.ok(Math.abs(gpuStep.lossAfter - cpuStep.lossAfter) <= 1e-4 * Math.abs(cpuStep.lossAfter), 'loss after one AdamW step');
  assert.ok(gpuStep.lossAfter < gpuStep.loss, 'the step lowered the loss');
});

test('qlora train on webgpu: 6 steps, losses and eval loss equal wasm within float32 tolerance', async (t) => {
  if (!(await useWebgpu(t))) return;
  const modelDir = mkdtempSync(join(tmpdir(), 'qlora-webgpu-model-'));
  const work = mkdtempSync(join(tmpdir(), 'qlora-webgpu-run-'));
  try {
    writeTinyModel(modelDir, shipLogs(200, 1), { ...TINY_MODEL, nLayers: 2 });
    writeFileSync(join(work, 'train.jsonl'), shipLogs(60, 3).map((text) => JSON.stringify({ text })).join('\n') + '\n');
    const losses: Record<string, { step: number[]; eval: number[] }> = {};
    for (const backend of ['wasm', 'webgpu']) {
      writeFileSync(join(work, `${backend}.qlora`), runConfig(modelDir, { maxSteps: 6, saveEvery: 0, evalEvery: 3, backend, dropout: 0 })
        .replace('./runs/r', `./runs/${backend}`));
      const r = qlora(['train', join(work, `${backend}.qlora`), '--json']);
      assert.equal(r.code, 0, `${backend}: ${r.stderr}`);
      const ev = r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { type: string; loss?: number; evalLoss?: number });
      losses[backend] = { step: ev.filter((e) => e.type === 'step').map((e) => e.loss!), eval: ev.filter((e) => e.type === 'eval').map((e) => e.evalLoss!) };
    }
    const { wasm, webgpu } = losses;
    console.log(`# wasm ${wasm.step.map((x) => x.toFixed(6)).join(' ')}\n# webgpu ${webgpu.step.map((x) => x.toFixed(6)).join(' ')}`);
    assert.equal(webgpu.step.length, 6);
    assert.equal(webgpu.eval.length, wasm.eval.length);
    for (const [i, x] of wasm.step.entries()) assert.ok(Math.abs(webgpu.step[i] - x) <= 1e-4 * Math.abs(x), `step ${i + 1}: ${webgpu.step[i]} vs ${x}`);
    for (const [i, x] of wasm.eval.entries()) assert.ok(Math.abs(webgpu.eval[i] - x) <= 1e-4 * Math.abs(x), `eval ${i + 1}: ${webgpu.eval[i]} vs ${x}`);
  } finally {
    rmSync(modelDir, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  }
});
