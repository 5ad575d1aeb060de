// The rotary embedding's SIMD loop on the wasm heap (server/engine/kernels/wasmRope.ts):
// forward and inverse against float64 loops (relative error < 1e-6) for head sizes of a
// multiple of 8, table rows taken mod T; other head sizes and host arrays are declined.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../server/engine/tf';
import { initBackend } from '../../server/engine/backend';
import { ropeSimd } from '../../server/engine/kernels/wasmRope';
import { Rng } from '../../server/engine/rng';

const heap = (t: tf.Tensor) => (tf.backend() as unknown as { typedArrayFromHeap(t: tf.TensorInfo): Float32Array }).typedArrayFromHeap(t);

/** rotate_half in float64: y = x cos + rotate_half(x) sin, the angle negated for sign -1. */
function rope64(x: Float32Array, cos: Float32Array, sin: Float32Array, T: number, hs: number, sign: number): Float64Array {
  const y = new Float64Array(x.length), h = hs / 2;
  for (let r = 0; r < x.length / hs; r++) {
    const t = (r % T) * hs, o = r * hs;
    for (let i = 0; i < hs; i++) {
      const rot = i < h ? -x[o + i + h] : x[o + i - h];
      y[o + i] = x[o + i] * cos[t + i] + sign * rot * sin[t + i];
    }
  }
  return y;
}

test('wasm: rotary embedding SIMD forward and inverse = float64 loops for head sizes of a multiple of 8; others declined', async () => {
  await initBackend('wasm');
  const rng = new Rng(4);
  for (const [rows, T, hs] of [[2 * 3 * 5, 5, 64], [1, 1, 8], [4 * 7, 7, 128]]) {
    const xa = Float32Array.from({ length: rows * hs }, () => rng.normal());
    const ang = Float32Array.from({ length: T * hs }, (_, i) => Math.floor(i / hs) * (1 + (i % (hs / 2))) * 0.01);
    const [x, cos, sin, y] = [tf.tensor1d(xa), tf.tensor1d(ang.map(Math.cos)), tf.tensor1d(ang.map(Math.sin)), tf.zeros([rows * hs])];
    for (const sign of [1, -1] as const) {
      assert.ok(ropeSimd(heap(x), heap(cos), heap(sin), heap(y), T, hs, sign), `${rows}x${hs}, T ${T}, sign ${sign}: ran`);
      const want = rope64(xa, heap(cos).slice(), heap(sin).slice(), T, hs, sign), got = heap(y);
      let d = 0, n = 0;
      for (let i = 0; i < want.length; i++) { d += (got[i] - want[i]) ** 2; n += want[i] ** 2; }
      assert.ok(Math.sqrt(d / n) < 1e-6, `${rows}x${hs}, T ${T}, sign ${sign}: relative error ${Math.sqrt(d / n)}`);
    }
    tf.dispose([x, cos, sin, y]);
  }
  const [x6, t6] = [tf.zeros([12]), tf.zeros([6])];
  assert.equal(ropeSimd(heap(x6), heap(t6), heap(t6), heap(x6), 1, 6, 1), false, 'head size 6: declined');
  assert.equal(ropeSimd(new Float32Array(8), new Float32Array(8), new Float32Array(8), new Float32Array(8), 1, 8, 1), false, 'host arrays: declined');
  tf.dispose([x6, t6]);
});
