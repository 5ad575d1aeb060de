// The Dequantize4bit kernels (cpu, wasm, and the host slow path) against the host
// reference, bit for bit, in both layouts; tensor leaks; a timing print against the
// gather + multiply composite the kernel replaces. On wasm, W in storage order takes the
// SIMD loop for its whole blocks (server/engine/kernels/wasmDequantize4bit.ts), checked to
// have run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../server/engine/tf';
import { NF4_LEVELS } from '../../server/engine/quant/codebooks';
import { quantize4bit } from '../../server/engine/quant/blockwise';
import { DEQUANTIZE_4BIT, hasDequantizeKernel, registerDequantizeKernels } from '../../server/engine/quant/kernels';
import { QuantizedWeight, dequantizeWeightReference } from '../../server/engine/quant/quantizedWeight';
import type { QuantOptions } from '../../server/engine/quant/quantizedWeight';
import { dequantizeBlocksSimd } from '../../server/engine/kernels/wasmDequantize4bit';
import { levelsOf } from '../../server/engine/quant/codebooks';
import { randomWeight, transposeHost } from '../helpers/weights';

async function useBackend(name: 'wasm' | 'cpu'): Promise<void> {
  assert.ok(await tf.setBackend(name), `backend ${name} initializes`);
  await tf.ready();
}

/** Bit-for-bit equality (so -0 differs from +0); the first differing index, or -1. */
function firstBitDifference(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return 0;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return i;
  return -1;
}

// Shapes with a partial last block and/or word: (37, 45) has n % 8 = 1 and odd rows (the
// any-shape transposed path); (30, 40) has rows of whole words (the tiled path) and
// n % 64 = 48; (48, 96) at block 128 has blocks that straddle rows.
const CASES: Array<{ shape: [number, number]; blockSize: number }> = [
  { shape: [37, 45], blockSize: 64 },
  { shape: [30, 40], blockSize: 64 },
  { shape: [48, 96], blockSize: 128 },
  { shape: [3, 5], blockSize: 64 },
  { shape: [20, 44], blockSize: 32 },
];

function checkAgainstReference(label: string): void {
  for (const { shape, blockSize } of CASES) {
    for (const quantType of ['nf4', 'fp4'] as const) {
      for (const doubleQuant of [false, true]) {
        const opts: QuantOptions = { quantType, blockSize, doubleQuant };
        const q = QuantizedWeight.fromHost(randomWeight(shape[0], shape[1], shape[0] * 7 + blockSize), opts);
        const ref = dequantizeWeightReference(q.toQuantized(), q.state);
        const what = `${label} ${shape.join('x')} ${JSON.stringify(opts)}`;
        const w = q.dequantize();
        const wT = q.dequantize({ transpose: true });
        assert.deepEqual(w.shape, shape);
        assert.deepEqual(wT.shape, [shape[1], shape[0]]);
        assert.equal(firstBitDifference(w.dataSync() as Float32Array, ref), -1, `${what}: W`);
        assert.equal(firstBitDifference(wT.dataSync() as Float32Array, transposeHost(ref, shape[0], shape[1])), -1, `${what}: W^T`);
        assert.equal(firstBitDifference(q.dequantizeToHost(), ref), -1, `${what}: dequantizeToHost`);
        tf.dispose([w, wT]);
        q.dispose();
      }
    }
  }
}

for (const backend of ['wasm', 'cpu'] as const) {
  test(`${backend} kernel equals the reference bit for bit, both layouts, partial blocks, double quant`, async () => {
    await useBackend(backend);
    assert.ok(hasDequantizeKernel(), `Dequantize4bit registered for ${backend}`);
    checkAgainstReference(backend);
  });

  test(`${backend}: no tensor leaks across dequantize + dispose`, async () => {
    await useBackend(backend);
    const before = tf.memory().numTensors;
    const q = QuantizedWeight.fromHost(randomWeight(64, 72, 1), { quantType: 'nf4', blockSize: 64, doubleQuant: true });
    const held = tf.memory().numTensors;
    assert.equal(held - before, 3, 'packed codes, absmax codes, absmax2');
    for (const transpose of [false, true]) {
      const w = q.dequantize({ transpose });
      w.dispose();
      assert.equal(tf.memory().numTensors, held);
    }
    tf.tidy(() => {
      tf.sum(q.dequantize()); // both intermediates released by tidy
    });
    q.dequantizeToHost();
    assert.equal(tf.memory().numTensors, held);
    q.dispose();
    q.dispose(); // a second dispose is a no-op
    assert.equal(tf.memory().numTensors, before);
    assert.throws(() => q.dequantize(), /after dispose/);
  });
}

test('wasm: whole blocks run the SIMD loop, bit for bit, with absmax on the heap or off it; other block sizes are declined', async () => {
  await useBackend('wasm');
  const heap = (t: tf.Tensor) => (tf.backend() as unknown as { typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array }).typedArrayFromHeap(t);
  for (const quantType of ['nf4', 'fp4'] as const) {
    for (const blockSize of [32, 64, 256]) {
      const [rows, cols] = [24, 80]; // n = 1920: a short last block at 256
      const q = QuantizedWeight.fromHost(randomWeight(rows, cols, blockSize), { quantType, blockSize, doubleQuant: false });
      const ref = dequantizeWeightReference(q.toQuantized(), q.state);
      const { tensors } = q.kernelOperands();
      const out = tf.zeros([rows * cols]);
      const whole = Math.floor((rows * cols) / blockSize) * blockSize;
      for (const [where, absmax] of [['heap', heap(tensors.absmax!) as Float32Array], ['host', new Float32Array(tensors.absmax!.dataSync())]] as const) {
        const view = heap(out) as Float32Array;
        view.fill(7);
        const wrote = dequantizeBlocksSimd(view, heap(tensors.packed) as Int32Array, absmax, levelsOf(quantType), rows * cols, blockSize);
        assert.equal(wrote, whole, `${quantType} block ${blockSize}, absmax on the ${where}: values written`);
        const got = (heap(out) as Float32Array).slice();
        assert.equal(firstBitDifference(got.subarray(0, whole), ref.subarray(0, whole)), -1, `${quantType} block ${blockSize} (${where}): W`);
        assert.ok(got.subarray(whole).every((v) => v === 7), 'nothing written past the whole blocks');
      }
      out.dispose();
      q.dispose();
    }
  }
  const host = new Float32Array(64);
  assert.equal(dequantizeBlocksSimd(host, new Int32Array(8), new Float32Array(1), levelsOf('nf4'), 64, 64), 0, 'host arrays: declined');
  const w = tf.zeros([96]), p = tf.zeros([12], 'int32');
  assert.equal(dequantizeBlocksSimd(heap(w) as Float32Array, heap(p) as Int32Array, new Float32Array(2), levelsOf('nf4'), 96, 48), 0, 'blocks of 48: declined');
  tf.dispose([w, p]);
});

test('host slow path (backend without the kernel) equals the reference', async () => {
  await useBackend('cpu');
  tf.unregisterKernel(DEQUANTIZE_4BIT, 'cpu');
  try {
    assert.equal(hasDequantizeKernel(), false);
    checkAgainstReference('host path');
  } finally {
    registerDequantizeKernels();
  }
  assert.ok(hasDequantizeKernel());
});

test('timing: wasm Dequantize4bit kernel vs gather + multiply composite', async () => {
  await useBackend('wasm');
  const timeMs = (fn: () => tf.Tensor, reps: number): number => {
    fn().dispose(); // warm up
    const start = performance.now();
    for (let i = 0; i < reps; i++) fn().dispose();
    return (performance.now() - start) / reps;
  };
  for (const [rows, cols] of [[768, 288], [1376, 512]] as const) {
    const w = randomWeight(rows, cols, rows);
    const blockSize = 64;
    const q = QuantizedWeight.fromHost(w, { quantType: 'nf4', blockSize, doubleQuant: false });
    // The composite: one int32 code per value, a gather of the levels, a broadcast multiply.
    const host = quantize4bit(w.data, { quantType: 'nf4', blockSize });
    const codes = tf.tensor1d(Int32Array.from(host.codes), 'int32');
    const levels = tf.tensor1d(NF4_LEVELS);
    const absmax = tf.tensor2d(host.absmax, [host.absmax.length, 1]);
    const composite = () => tf.tidy(() => tf.reshape(tf.mul(tf.reshape(tf.gather(levels, codes), [-1, blockSize]), absmax), [rows, cols]));
    const kernelOut = q.dequantize();
    const compositeOut = composite();
    assert.equal(firstBitDifference(kernelOut.dataSync() as Float32Array, compositeOut.dataSync() as Float32Array), -1, 'same values');
    tf.dispose([kernelOut, compositeOut]);
    const kernelMs = timeMs(() => q.dequantize(), 20);
    const kernelTMs = timeMs(() => q.dequantize({ transpose: true }), 20);
    const compositeMs = timeMs(composite, 5);
    console.log(`# ${rows}x${cols} NF4: kernel ${kernelMs.toFixed(2)} ms (transposed ${kernelTMs.toFixed(2)} ms), gather+multiply ${compositeMs.toFixed(2)} ms`);
    tf.dispose([codes, levels, absmax]);
    q.dispose();
  }
});
