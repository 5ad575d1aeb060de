// The counter-based dropout (server/engine/ops/dropout.ts): the share of values kept, the
// scale of those kept, the same mask for the same seed and shape on cpu and wasm (which a
// checkpointed block's recompute relies on), other masks for other seeds, and the
// gradient, dy * mask.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../server/engine/tf';
import { initBackend } from '../../server/engine/backend';
import { dropout, dropoutMask } from '../../server/engine/ops/dropout';

test('dropoutMask keeps 1 - rate of the values, each scaled by 1 / (1 - rate), and is a function of (seed, index)', () => {
  const n = 200_000;
  for (const rate of [0.05, 0.1, 0.25, 0.5]) {
    const m = dropoutMask(n, rate, 12345);
    const keep = Math.fround(1 / (1 - rate));
    let kept = 0;
    for (const v of m) { assert.ok(v === 0 || v === keep, `value ${v}`); if (v) kept++; }
    // Binomial: sd = sqrt(n p (1 - p)) <= 224; 6 sd.
    assert.ok(Math.abs(kept - n * (1 - rate)) < 6 * Math.sqrt(n * rate * (1 - rate)), `rate ${rate}: kept ${kept} of ${n}`);
    assert.deepEqual(dropoutMask(n, rate, 12345), m, 'same seed, same mask');
    const other = dropoutMask(n, rate, 12346);
    let same = 0;
    for (let i = 0; i < n; i++) if ((other[i] === 0) === (m[i] === 0)) same++;
    // Independent masks agree on p^2 + (1-p)^2 of the values.
    const expect = rate * rate + (1 - rate) * (1 - rate);
    assert.ok(Math.abs(same / n - expect) < 0.01, `rate ${rate}: masks of neighbouring seeds agree on ${same / n}, independent ones on ${expect}`);
    // Neighbouring values are not correlated: runs of drops as for independent draws.
    let pairs = 0;
    for (let i = 1; i < n; i++) if (m[i] === 0 && m[i - 1] === 0) pairs++;
    assert.ok(Math.abs(pairs / (n - 1) - rate * rate) < 0.01, `rate ${rate}: adjacent drops ${pairs / (n - 1)}, independent ${rate * rate}`);
  }
  assert.throws(() => dropoutMask(4, 1, 1), /rate must be in \[0, 1\)/);
});

test('dropout is the same on cpu and wasm for one seed, and its gradient is dy * mask', async () => {
  const x = Float32Array.from({ length: 6 * 50 }, (_, i) => Math.sin(i) + 2);
  const out: Record<string, { y: Float32Array; g: Float32Array }> = {};
  for (const backend of ['cpu', 'wasm'] as const) {
    await initBackend(backend);
    const xt = tf.tensor2d(x, [6, 50]);
    const dy = tf.tensor2d(Float32Array.from({ length: x.length }, (_, i) => (i % 7) - 3), [6, 50]);
    const before = tf.memory().numTensors;
    const y = dropout(xt, 0.3, 99);
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(dropout(t, 0.3, 99), dy)))(xt);
    out[backend] = { y: y.dataSync() as Float32Array, g: g.dataSync() as Float32Array };
    tf.dispose([y, g]);
    assert.equal(tf.memory().numTensors, before, `${backend}: tensors leak`);
    tf.dispose([xt, dy]);
  }
  assert.deepEqual(out.wasm.y, out.cpu.y);
  assert.deepEqual(out.wasm.g, out.cpu.g);
  const m = dropoutMask(x.length, 0.3, 99);
  for (let i = 0; i < x.length; i++) {
    assert.equal(out.cpu.y[i], Math.fround(x[i] * m[i]));
    assert.equal(out.cpu.g[i], Math.fround(((i % 7) - 3) * m[i]));
  }
});
