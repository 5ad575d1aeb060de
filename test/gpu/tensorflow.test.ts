// The tensorflow backend (tfjs-node-gpu, else tfjs-node): a QLoRA training step runs on
// it with TensorFlow's own kernels alone (Dequantize4bit takes its host path there) and
// agrees with the cpu backend. Runs wherever @tensorflow/tfjs-node(-gpu) is importable;
// elsewhere the test is skipped with the reason printed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../server/engine/tf';
import { initBackend } from '../../server/engine/backend';
import { DEQUANTIZE_4BIT, hasDequantizeKernel } from '../../server/engine/quant/kernels';
import { largestDifference, qloraStep } from './trainStep';

function importable(): string | undefined {
  const tried: string[] = [];
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      require.resolve(pkg);
      return undefined;
    } catch {
      tried.push(pkg);
    }
  }
  return `neither ${tried.join(' nor ')} is installed here (optional dependencies; tfjs-node-gpu needs CUDA 11.2 libraries at install)`;
}

test('a QLoRA training step on the tensorflow backend matches the cpu backend', async (t) => {
  const missing = importable();
  if (missing) {
    console.log(`# SKIP tensorflow backend test: ${missing}`);
    t.skip(missing);
    return;
  }
  await initBackend('cpu');
  const cpuStep = await qloraStep();
  const info = await initBackend('tensorflow');
  console.log(`# tensorflow device: ${info.device}`);
  assert.equal(tf.getBackend(), 'tensorflow');
  assert.equal(hasDequantizeKernel(), false, 'no Dequantize4bit kernel: the host path runs');
  const tfStep = await qloraStep();
  assert.ok(!tfStep.kernels.includes(DEQUANTIZE_4BIT), `only TensorFlow kernels ran: ${tfStep.kernels.join(' ')}`);
  assert.equal(tfStep.leakedTensors, 0, 'tensors held after the step');
  const grad = largestDifference(tfStep.grads, cpuStep.grads, 1e-3);
  console.log(`# loss tensorflow ${tfStep.loss} cpu ${cpuStep.loss}; largest gradient difference ${grad.rel.toExponential(2)} (${grad.where})`);
  assert.ok(Math.abs(tfStep.loss - cpuStep.loss) <= 1e-5 * Math.abs(cpuStep.loss), `loss ${tfStep.loss} vs ${cpuStep.loss}`);
  assert.ok(grad.rel <= 1e-3, `gradients: ${grad.where}`);
  assert.ok(Math.abs(tfStep.lossAfter - cpuStep.lossAfter) <= 1e-4 * Math.abs(cpuStep.lossAfter), 'loss after one AdamW step');
});
