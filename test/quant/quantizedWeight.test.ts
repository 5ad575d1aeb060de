// The resident form: bytes actually held on the backend, the serializable state, lifetime.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../server/engine/tf';
import { Rng } from '../../server/engine/rng';
import { QuantizedWeight } from '../../server/engine/quant/quantizedWeight';
import type { QuantState } from '../../server/engine/quant/quantizedWeight';

function randomWeight(rows: number, cols: number, seed: number) {
  const rng = new Rng(seed);
  return { shape: [rows, cols], data: Float32Array.from({ length: rows * cols }, () => rng.normal() * 0.02) };
}

test('double quantization holds a 4096x4096 NF4 weight in at most 0.52 bytes per parameter', async () => {
  await tf.setBackend('wasm');
  await tf.ready();
  const w = randomWeight(4096, 4096, 1);
  const params = 4096 * 4096;
  const bytesBefore = tf.memory().numBytes;
  const dq = QuantizedWeight.fromHost(w, { quantType: 'nf4', blockSize: 64, doubleQuant: true });
  const held = tf.memory().numBytes - bytesBefore;
  const plain = QuantizedWeight.fromHost(w, { quantType: 'nf4', blockSize: 64, doubleQuant: false });
  try {
    const perParam = dq.residentBytes() / params;
    console.log(`# 4096x4096 NF4 block 64: ${perParam.toFixed(6)} bytes/param with double quant, ${(plain.residentBytes() / params).toFixed(6)} without`);
    assert.equal(dq.residentBytes(), held, 'residentBytes is what the backend holds');
    assert.ok(perParam <= 0.52, `${perParam} bytes/param`);
    // Without it: 0.5 for the codes + 4 bytes per 64 values for the absmax.
    assert.equal(plain.residentBytes() / params, 0.5 + 4 / 64);
  } finally {
    dq.dispose();
    plain.dispose();
  }
});

test('state is JSON; fromQuantized(toQuantized()) rebuilds the same weight', async () => {
  await tf.setBackend('cpu');
  await tf.ready();
  for (const doubleQuant of [false, true]) {
    const q = QuantizedWeight.fromHost(randomWeight(40, 24, 2), { quantType: 'fp4', blockSize: 64, doubleQuant });
    const state = JSON.parse(JSON.stringify(q.state)) as QuantState;
    assert.deepEqual(state, q.state);
    assert.deepEqual(state.shape, [40, 24]);
    assert.equal(state.numBlocks, 15);
    assert.equal(state.offset !== undefined, doubleQuant);
    const copy = QuantizedWeight.fromQuantized(q.toQuantized(), state);
    assert.deepEqual(copy.dequantizeToHost(), q.dequantizeToHost());
    assert.equal(copy.residentBytes(), q.residentBytes());
    copy.dispose();
    q.dispose();
  }
});

test('a weight built inside tf.tidy outlives it', async () => {
  await tf.setBackend('cpu');
  await tf.ready();
  const before = tf.memory().numTensors;
  let q: QuantizedWeight | undefined;
  tf.tidy(() => {
    q = QuantizedWeight.fromHost(randomWeight(8, 16, 3), { quantType: 'nf4', blockSize: 64, doubleQuant: false });
  });
  assert.ok(q);
  assert.equal(tf.memory().numTensors, before + 2);
  assert.equal(q.dequantizeToHost().length, 128);
  q.dispose();
  assert.equal(tf.memory().numTensors, before);
});

test('rejects what it cannot hold', () => {
  const w = randomWeight(4, 8, 4);
  assert.throws(() => QuantizedWeight.fromHost({ shape: [32], data: w.data }, { quantType: 'nf4', blockSize: 64, doubleQuant: false }), /2-D/);
  assert.throws(() => QuantizedWeight.fromHost({ shape: [4, 9], data: w.data }, { quantType: 'nf4', blockSize: 64, doubleQuant: false }), /does not match/);
  assert.throws(() => QuantizedWeight.fromHost(w, { quantType: 'nf4', blockSize: 60, doubleQuant: false }), /multiple of 8/);
  assert.throws(() => QuantizedWeight.fromHost(w, { quantType: 'int4' as 'nf4', blockSize: 64, doubleQuant: false }), /nf4 or fp4/);
});
