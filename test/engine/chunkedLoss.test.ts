// The fused head + cross-entropy over vocabulary chunks against a float64 implementation:
// the loss, and its gradient in h by central differences (on wasm with the native provider,
// each chunk is one native call each way, checked to have run and to equal the tfjs
// kernels); and the compact bf16 table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../server/engine/tf';
import { initBackend } from '../../server/engine/backend';
import { chunkedLinearCrossEntropy, chunkedLogits, lseChunkRunsNative } from '../../server/engine/model/chunkedLoss';
import { activeNativeProvider, setNativeKernels } from '../../server/engine/kernels/nativeBatchMatMul';
import { FrozenTable } from '../../server/engine/model/frozenTable';
import { Rng } from '../../server/engine/rng';

const N = 6, C = 16, V = 50;

/** Weighted mean NLL of targets under h W^T, in float64, written out plainly. */
function hostLoss(h: Float64Array, W: Float64Array, targets: Int32Array, w: Float32Array): number {
  let total = 0, count = 0;
  for (let n = 0; n < N; n++) {
    const z = new Float64Array(V);
    for (let v = 0; v < V; v++) { let s = 0; for (let c = 0; c < C; c++) s += h[n * C + c] * W[v * C + c]; z[v] = s; }
    const max = Math.max(...z);
    let se = 0;
    for (const x of z) se += Math.exp(x - max);
    total += w[n] * (Math.log(se) + max - z[targets[n]]);
    count += w[n];
  }
  return total / Math.max(count, 1);
}

test('wasm, native provider: each vocabulary chunk is one native call each way, and equals the tfjs kernels (loss 1e-6, dL/dh 1e-5 relative)', async (t) => {
  await initBackend('wasm');
  if (!activeNativeProvider()) { t.skip('the native provider is not running here (absent or QLORA_NATIVE=0)'); return; }
  const rng = new Rng(5);
  const head = FrozenTable.fromFloat32(Float32Array.from({ length: V * C }, () => rng.normal()), V, C);
  const h = tf.tensor2d(Float32Array.from({ length: N * C }, () => rng.normal() * 0.5), [N, C]);
  const wT = tf.tensor1d(Float32Array.from([1, 0, 1, 1, 0.5, 1]));
  const targets = Int32Array.from([1, 2, 3, 4, 5, 49]);
  const run = () => {
    const f = (x: tf.Tensor) => chunkedLinearCrossEntropy(x as tf.Tensor2D, head, targets, wT, 16);
    const g = tf.grad(f)(h), l = f(h);
    const out = { loss: l.dataSync()[0], g: g.dataSync().slice() };
    tf.dispose([g, l]);
    return out;
  };
  try {
    assert.ok(lseChunkRunsNative());
    const prof = await tf.profile(() => { run(); });
    const names = prof.kernelNames;
    assert.ok(names.includes('QloraLseChunk') && names.includes('QloraLseChunkGrad'), `native chunk kernels ran (${names})`);
    assert.ok(!names.includes('Exp') && !names.includes('Transpose'), `no tfjs exp or transpose over the chunks (${names})`);
    const native = run();
    setNativeKernels(false);
    assert.equal(lseChunkRunsNative(), false);
    const plain = run();
    assert.ok(Math.abs(native.loss - plain.loss) <= 1e-6 * Math.abs(plain.loss), `loss ${native.loss} vs ${plain.loss}`);
    let d = 0, n = 0;
    for (let i = 0; i < plain.g.length; i++) { d += (native.g[i] - plain.g[i]) ** 2; n += plain.g[i] ** 2; }
    assert.ok(Math.sqrt(d / n) < 1e-5, `dL/dh relative difference ${Math.sqrt(d / n)}`);
  } finally {
    setNativeKernels(true);
    tf.dispose([h, wT]);
  }
});

for (const backend of ['wasm', 'cpu'] as const) {
  test(`${backend}: chunked linear + cross-entropy: loss and dL/dh match float64 (central differences), any chunk size`, async () => {
    await initBackend(backend);
    const rng = new Rng(3);
    const wData = Float32Array.from({ length: V * C }, () => rng.normal());
    const head = FrozenTable.fromFloat32(wData, V, C);
    const hData = Float32Array.from({ length: N * C }, () => rng.normal() * 0.5);
    const targets = Int32Array.from([3, 49, 0, 17, 17, 25]);
    const weights = Float32Array.from([1, 1, 0, 1, 0.5, 1]);
    const W64 = Float64Array.from(head.toFloat32());
    const h64 = Float64Array.from(hData);
    const want = hostLoss(h64, W64, targets, weights);
    for (const chunk of [V, 16, 7, 1]) {
      const h = tf.tensor2d(hData, [N, C]);
      const wT = tf.tensor1d(weights);
      const n0 = tf.memory().numTensors;
      const f = (x: tf.Tensor) => chunkedLinearCrossEntropy(x as tf.Tensor2D, head, targets, wT, chunk);
      const g = tf.grad(f)(h);
      const lossT = f(h);
      const loss = lossT.dataSync()[0];
      const gd = g.dataSync();
      tf.dispose([g, lossT]);
      assert.ok(Math.abs(loss - want) < 1e-5 * Math.abs(want), `chunk ${chunk}: loss ${loss} vs float64 ${want}`);
      const eps = 1e-6;
      let num = 0, den = 0;
      for (let i = 0; i < h64.length; i++) {
        const keep = h64[i];
        h64[i] = keep + eps; const up = hostLoss(h64, W64, targets, weights);
        h64[i] = keep - eps; const down = hostLoss(h64, W64, targets, weights);
        h64[i] = keep;
        const fd = (up - down) / (2 * eps);
        num += (gd[i] - fd) ** 2;
        den += fd ** 2;
      }
      const rel = Math.sqrt(num / den);
      console.log(`# ${backend}: vocab chunk ${chunk}: |loss - float64| ${Math.abs(loss - want).toExponential(2)}, dL/dh relative error ${rel.toExponential(2)}`);
      assert.ok(rel < 1e-4, `chunk ${chunk}: dL/dh relative error ${rel}`);
      tf.dispose([h, wT]);
      assert.equal(tf.memory().numTensors, n0 - 2, 'nothing is left behind by forward + backward');
    }
  });

  test(`${backend}: chunked logits equal h W^T`, async () => {
    await initBackend(backend);
    const rng = new Rng(4);
    const wData = Float32Array.from({ length: V * C }, () => rng.normal());
    const head = FrozenTable.fromFloat32(wData, V, C);
    const hData = Float32Array.from({ length: N * C }, () => rng.normal());
    const got = tf.tidy(() => chunkedLogits(tf.tensor2d(hData, [N, C]), head, 13)).dataSync();
    let d = 0;
    for (let n = 0; n < N; n++) for (let v = 0; v < V; v++) {
      let s = 0;
      for (let c = 0; c < C; c++) s += hData[n * C + c] * wData[v * C + c];
      d = Math.max(d, Math.abs(got[n * V + v] - s));
    }
    assert.ok(d < 1e-4, `max abs diff ${d}`);
  });
}

test('FrozenTable: 16-bit when the values are bf16 or fp16 already, fp32 otherwise; bf16 rounding to nearest even on request', () => {
  const f = new Float32Array(4);
  const u = new Uint32Array(f.buffer);
  u[0] = 0x3f808000; // halfway between two bf16 values, lower one even: rounds down
  u[1] = 0x3f818000; // halfway, lower one odd: rounds up
  u[2] = 0x3f80c000; // above halfway: rounds up
  u[3] = 0x40490000; // exactly bf16 (3.140625)
  const t = FrozenTable.fromFloat32(f, 2, 2, { round: 'bf16' });
  assert.equal(t.dtype, 'bf16');
  assert.equal(t.residentBytes(), 8, 'two bytes a value');
  const back = new Uint32Array(t.toFloat32().buffer);
  assert.deepEqual([...back], [0x3f800000, 0x3f820000, 0x3f810000, 0x40490000]);
  assert.equal(FrozenTable.fromFloat32(Float32Array.from([0.1, 1]), 1, 2).dtype, 'fp32', '0.1 is neither bf16 nor fp16');
  const bf = Float32Array.from([1, -2, 0.5, 3.140625]);
  const kept = FrozenTable.fromFloat32(bf, 2, 2);
  assert.equal(kept.dtype, 'bf16');
  assert.deepEqual([...kept.toFloat32()], [...bf]);
  const half = Float32Array.from([1 + 2 ** -10, -0.333251953125, 65504, 2 ** -24]); // fp16 values, not bf16
  const h = FrozenTable.fromFloat32(half, 2, 2);
  assert.equal(h.dtype, 'fp16');
  assert.equal(h.residentBytes(), 8);
  assert.deepEqual([...h.toFloat32()], [...half]);
  assert.deepEqual([...h.gather([1, 0]).dataSync()], [65504, 2 ** -24, 1 + 2 ** -10, -0.333251953125]);
  assert.throws(() => kept.gather([0, 2]), /token id 2 is outside the vocabulary of 2/);
});

test('FrozenTable on wasm: rows2d and gather write straight into the tensor on the heap, equal to the host decode for bf16, fp16 and fp32 tables, and leave no tensors behind', async () => {
  await initBackend('wasm');
  const rng = new Rng(5);
  const fp32 = Float32Array.from({ length: 7 * 5 }, () => rng.normal());
  const tables = {
    bf16: FrozenTable.fromFloat32(fp32, 7, 5, { round: 'bf16' }),
    fp16: FrozenTable.fromFloat32(Float32Array.from(fp32, (x) => Math.round(x * 1024) / 1024), 7, 5),
    fp32: FrozenTable.fromFloat32(fp32, 7, 5),
  };
  for (const [dtype, t] of Object.entries(tables)) {
    assert.equal(t.dtype, dtype);
    const before = tf.memory().numTensors;
    const host = t.toFloat32();
    const chunk = t.rows2d(2, 6);
    assert.deepEqual(chunk.shape, [4, 5]);
    assert.deepEqual([...chunk.dataSync()], [...host.subarray(2 * 5, 6 * 5)], `${dtype}: rows [2, 6)`);
    const ids = [6, 0, 3, 3];
    const rows = t.gather(ids);
    assert.deepEqual([...rows.dataSync()], ids.flatMap((id) => [...host.subarray(id * 5, (id + 1) * 5)]), `${dtype}: gather`);
    const none = t.gather([]);
    assert.deepEqual(none.shape, [0, 5]);
    tf.dispose([chunk, rows, none]);
    assert.equal(tf.memory().numTensors, before, `${dtype}: tensors`);
  }
});
