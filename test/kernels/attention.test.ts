// Attention as one native call each way (server/engine/ops/attention.ts over
// kernels/nativeAttention.ts): its value and its gradients in q, k and v against float64
// central differences of a plain loop (relative error < 1e-3), and against the separate
// ops it stands for (two products around the masked softmax) on plain wasm, with a causal
// (T, T) mask and a (B, 1, T, T) key-padding mask; and no tensors left behind. Odd sizes on
// purpose. Where the native provider does not run, the op is the separate ops, and the
// float64 checks still hold.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../server/engine/tf';
import { initBackend } from '../../server/engine/backend';
import { setNativeKernels } from '../../server/engine/kernels/nativeBatchMatMul';
import { attention, attentionRunsNative, setFusedOps } from '../../server/engine/ops';
import { Rng } from '../../server/engine/rng';

const B = 2, H = 3, T = 5, HS = 4;

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0, n = 0;
  for (let i = 0; i < b.length; i++) { d += (a[i] - b[i]) ** 2; n += b[i] ** 2; }
  return Math.sqrt(d) / Math.max(Math.sqrt(n), 1e-30);
}

/** o = softmax(q k^T / sqrt(hs) + mask) v in float64; mask (T, T) or (B, 1, T, T). */
function attention64(q: Float64Array, k: Float64Array, v: Float64Array, mask: Float64Array, perBatch: boolean): Float64Array {
  const o = new Float64Array(q.length), scale = 1 / Math.sqrt(HS), p = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const base = (b * H + h) * T * HS;
      for (let i = 0; i < T; i++) {
        let max = -Infinity;
        for (let j = 0; j < T; j++) {
          let s = 0;
          for (let d = 0; d < HS; d++) s += q[base + i * HS + d] * k[base + j * HS + d];
          p[j] = s * scale + mask[(perBatch ? b * T * T : 0) + i * T + j];
          max = Math.max(max, p[j]);
        }
        let sum = 0;
        for (let j = 0; j < T; j++) { p[j] = Math.exp(p[j] - max); sum += p[j]; }
        for (let j = 0; j < T; j++) for (let d = 0; d < HS; d++) o[base + i * HS + d] += (p[j] / sum) * v[base + j * HS + d];
      }
    }
  }
  return o;
}

function fd(L: () => number, x: Float64Array): Float64Array {
  return Float64Array.from(x, (x0, i) => {
    x[i] = x0 + 1e-5; const up = L();
    x[i] = x0 - 1e-5; const dn = L();
    x[i] = x0;
    return (up - dn) / 2e-5;
  });
}

const masks: [string, number[], (i: number) => number][] = [
  ['causal (T, T)', [T, T], (i) => (i % T > Math.floor(i / T) % T ? -1e9 : 0)],
  ['key padding (B, 1, T, T)', [B, 1, T, T], (i) => (i % T > Math.floor(i / T) % T || (i >= T * T && i % T === T - 1) ? -1e9 : 0)],
];

/** Value and d/dq, d/dk, d/dv of sum(attention * R) on the current path. */
function run(q: Float32Array, k: Float32Array, v: Float32Array, maskA: Float32Array, maskShape: number[], r: Float32Array) {
  return tf.tidy(() => {
    const shape = [B, H, T, HS];
    const [qt, kt, vt] = [q, k, v].map((a) => tf.tensor4d(a, shape as [number, number, number, number]));
    const mask = tf.tensor(maskA, maskShape), R = tf.tensor4d(r, shape as [number, number, number, number]);
    const f = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => attention(a as tf.Tensor4D, b as tf.Tensor4D, c as tf.Tensor4D, mask);
    const y = f(qt, kt, vt).dataSync().slice();
    const gs = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(f(a, b, c), R)))([qt, kt, vt]).map((g) => g.dataSync().slice());
    return { y, gs };
  });
}

for (const [label, maskShape, maskAt] of masks) {
  test(`wasm: attention with a ${label} mask: value and d/dq, d/dk, d/dv = float64 central differences, and = the separate ops on plain wasm`, async (t) => {
    await initBackend('wasm');
    if (!attentionRunsNative()) t.diagnostic('native provider not running: the op is the separate ops here');
    const rng = new Rng(7), n = B * H * T * HS;
    const randn = (scale: number) => Float32Array.from({ length: n }, () => rng.normal() * scale);
    const q = randn(1.5), k = randn(1.5), v = randn(1), r = randn(1);
    const maskA = Float32Array.from({ length: maskShape.reduce((p, d) => p * d, 1) }, (_, i) => maskAt(i));
    const got = run(q, k, v, maskA, maskShape, r);
    const xs = [q, k, v].map((a) => Float64Array.from(a)), m64 = Float64Array.from(maskA), r64 = Float64Array.from(r);
    const L = () => attention64(xs[0], xs[1], xs[2], m64, maskShape.length === 4).reduce((s, y, i) => s + y * r64[i], 0);
    assert.ok(relErr(got.y, attention64(xs[0], xs[1], xs[2], m64, maskShape.length === 4)) < 1e-5, 'value vs float64');
    ['q', 'k', 'v'].forEach((name, i) => {
      const e = relErr(got.gs[i], fd(L, xs[i]));
      assert.ok(e < 1e-3, `d/d${name} vs central differences: ${e}`);
    });
    setNativeKernels(false);
    setFusedOps(false);
    try {
      const plain = run(q, k, v, maskA, maskShape, r);
      assert.ok(relErr(got.y, plain.y) < 1e-5, 'value vs plain wasm');
      ['q', 'k', 'v'].forEach((name, i) => assert.ok(relErr(got.gs[i], plain.gs[i]) < 1e-5, `d/d${name} vs plain wasm`));
    } finally {
      setNativeKernels(true);
      setFusedOps(true);
    }
  });
}

test('wasm: attention leaves no tensors behind across steps', async () => {
  await initBackend('wasm');
  const rng = new Rng(8), shape: [number, number, number, number] = [B, H, T, HS];
  const [q, k, v] = [0, 1, 2].map(() => tf.tensor4d(Float32Array.from({ length: B * H * T * HS }, () => rng.normal()), shape));
  const mask = tf.tensor2d(Float32Array.from({ length: T * T }, (_, i) => masks[0][2](i)), [T, T]);
  const step = () => tf.tidy(() => tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
    tf.sum(attention(a as tf.Tensor4D, b as tf.Tensor4D, c as tf.Tensor4D, mask)))([q, k, v]).forEach((g) => g.dataSync()));
  step();
  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) step();
  assert.equal(tf.memory().numTensors, before);
  tf.dispose([q, k, v, mask]);
});
