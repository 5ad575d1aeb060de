// SwiGLU's SIMD loops on the wasm heap (server/engine/kernels/wasmSwiglu.ts), e^x in SIMD
// lanes: forward and backward against float64 (relative error < 1e-6) over gates from
// -100 to 100 (past float32's exp range at both ends: results stay finite); lengths not a
// multiple of 4 and host arrays are declined.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../server/engine/tf';
import { initBackend } from '../../server/engine/backend';
import { swigluGradSimd, swigluSimd } from '../../server/engine/kernels/wasmSwiglu';
import { Rng } from '../../server/engine/rng';

const heap = (t: tf.Tensor) => (tf.backend() as unknown as { typedArrayFromHeap(t: tf.TensorInfo): Float32Array }).typedArrayFromHeap(t);

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0, n = 0;
  for (let i = 0; i < b.length; i++) { d += (a[i] - b[i]) ** 2; n += b[i] ** 2; }
  return Math.sqrt(d / n);
}

test('wasm: SwiGLU SIMD forward and backward = float64 over gates -100..100; other lengths and host arrays declined', async () => {
  await initBackend('wasm');
  const rng = new Rng(6), n = 4 * 1001;
  const ga = Float32Array.from({ length: n }, (_, i) => i < 2002 ? -100 + (200 * i) / 2001 : rng.normal() * 3);
  const ua = Float32Array.from({ length: n }, () => rng.normal()), dya = Float32Array.from({ length: n }, () => rng.normal());
  const [g, u, dy, y, dg, du] = [tf.tensor1d(ga), tf.tensor1d(ua), tf.tensor1d(dya), tf.zeros([n]), tf.zeros([n]), tf.zeros([n])];
  assert.ok(swigluSimd(heap(g), heap(u), heap(y)), 'the forward ran');
  assert.ok(swigluGradSimd(heap(dy), heap(g), heap(u), heap(dg), heap(du)), 'the backward ran');
  const want = { y: new Float64Array(n), dg: new Float64Array(n), du: new Float64Array(n) };
  for (let i = 0; i < n; i++) {
    const s = 1 / (1 + Math.exp(-ga[i]));
    want.y[i] = ga[i] * s * ua[i];
    want.du[i] = dya[i] * ga[i] * s;
    want.dg[i] = dya[i] * ua[i] * s * (1 + ga[i] * (1 - s));
  }
  for (const [k, t] of [['y', y], ['dg', dg], ['du', du]] as const) {
    const got = heap(t);
    assert.ok(got.every(Number.isFinite), `${k}: finite everywhere`);
    assert.ok(relErr(got, want[k]) < 1e-6, `${k}: relative error ${relErr(got, want[k])}`);
  }
  tf.dispose([g, u, dy, y, dg, du]);
  const odd = tf.zeros([6]);
  assert.equal(swigluSimd(heap(odd), heap(odd), heap(odd)), false, 'a length of 6: declined');
  assert.equal(swigluSimd(new Float32Array(8), new Float32Array(8), new Float32Array(8)), false, 'host arrays: declined');
  odd.dispose();
});
