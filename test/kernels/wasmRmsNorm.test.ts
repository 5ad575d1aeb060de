// RMSNorm's SIMD loops on the wasm heap (server/engine/kernels/wasmRmsNorm.ts): forward
// and backward against float64 loops (relative error < 1e-6), on rows of a multiple of 4;
// other row lengths and host arrays are declined (the JavaScript loops run them).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../server/engine/tf';
import { initBackend } from '../../server/engine/backend';
import { rmsNormGradSimd, rmsNormSimd } from '../../server/engine/kernels/wasmRmsNorm';
import { Rng } from '../../server/engine/rng';

const heap = (t: tf.Tensor) => (tf.backend() as unknown as { typedArrayFromHeap(t: tf.TensorInfo): Float32Array }).typedArrayFromHeap(t);

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0, n = 0;
  for (let i = 0; i < b.length; i++) { d += (a[i] - b[i]) ** 2; n += b[i] ** 2; }
  return Math.sqrt(d / n);
}

/** y, dx, dw in float64, as ops/rmsNorm.ts defines them. */
function reference(x: Float32Array, w: Float32Array, dy: Float32Array, C: number, eps: number) {
  const rows = x.length / C, y = new Float64Array(x.length), dx = new Float64Array(x.length), dw = new Float64Array(C);
  for (let r = 0; r < rows; r++) {
    let ss = 0, gx = 0;
    for (let j = 0; j < C; j++) { ss += x[r * C + j] ** 2; gx += dy[r * C + j] * w[j] * x[r * C + j]; }
    const inv = 1 / Math.sqrt(ss / C + eps), k = (inv ** 3 * gx) / C;
    for (let j = 0; j < C; j++) {
      const i = r * C + j;
      y[i] = x[i] * inv * w[j];
      dx[i] = inv * dy[i] * w[j] - k * x[i];
      dw[j] += dy[i] * x[i] * inv;
    }
  }
  return { y, dx, dw };
}

test('wasm: RMSNorm SIMD forward and backward = float64 loops on rows of a multiple of 4; other rows and host arrays declined', async () => {
  await initBackend('wasm');
  const rng = new Rng(9), eps = 1e-5;
  for (const [rows, C] of [[7, 64], [1, 4], [33, 576]]) {
    const rand = (n: number, s = 1) => Float32Array.from({ length: n }, () => rng.normal() * s);
    const xa = rand(rows * C), wa = rand(C, 0.5).map((v) => v + 1), dya = rand(rows * C);
    const [x, w, dy] = [tf.tensor1d(xa), tf.tensor1d(wa), tf.tensor1d(dya)];
    const [y, dx, dw] = [tf.zeros([rows * C]), tf.zeros([rows * C]), tf.fill([C], 7)];
    assert.ok(rmsNormSimd(heap(x), heap(w), heap(y), C, eps), `${rows}x${C}: the forward ran`);
    assert.ok(rmsNormGradSimd(heap(dy), heap(x), heap(w), heap(dx), heap(dw), C, eps), `${rows}x${C}: the backward ran`);
    const want = reference(xa, wa, dya, C, eps);
    assert.ok(relErr(heap(y), want.y) < 1e-6, `${rows}x${C} y: ${relErr(heap(y), want.y)}`);
    assert.ok(relErr(heap(dx), want.dx) < 1e-6, `${rows}x${C} dx: ${relErr(heap(dx), want.dx)}`);
    assert.ok(relErr(heap(dw), want.dw) < 1e-6, `${rows}x${C} dw (written over, not added to): ${relErr(heap(dw), want.dw)}`);
    tf.dispose([x, w, dy, y, dx, dw]);
  }
  const [odd, w6] = [tf.zeros([18]), tf.zeros([6])];
  assert.equal(rmsNormSimd(heap(odd), heap(w6), heap(odd), 6, eps), false, 'rows of 6: declined');
  assert.equal(rmsNormSimd(new Float32Array(8), new Float32Array(4), new Float32Array(8), 4, eps), false, 'host arrays: declined');
  tf.dispose([odd, w6]);
});
