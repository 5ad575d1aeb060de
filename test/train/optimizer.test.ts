import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { Rng } from '../../server/engine/rng';
import { tf } from '../../server/engine/tf';
import { clipByGlobalNorm, GradAccumulator } from '../../server/engine/train/gradients';
import { AdamW, alignGradients, type AdamWState } from '../../server/engine/train/optimizer';

const shapes = [[2, 3], [4]];
const sizes = shapes.map((s) => s.reduce((a, b) => a * b, 1));

/** Float32-representable values with magnitudes in [0.5, 1.5] and a random sign. */
function values(rng: Rng, n: number): number[] {
  return Array.from({ length: n }, () => Math.fround((rng.next() < 0.5 ? -1 : 1) * rng.uniform(0.5, 1.5)));
}

/** Largest |actual - expected| / |expected| over a tensor, in float64. */
function maxRelErr(actual: ArrayLike<number>, expected: number[]): number {
  assert.equal(actual.length, expected.length);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]) / Math.abs(expected[i]));
  return worst;
}

/** PyTorch's AdamW in float64: the reference the float32 tensors are held to. */
function adamwReference(p0: number[][], grads: number[][][], lrs: number[], b1: number, b2: number, eps: number, wd: number) {
  const p = p0.map((x) => [...x]);
  const m = p0.map((x) => x.map(() => 0));
  const v = p0.map((x) => x.map(() => 0));
  lrs.forEach((lr, s) => {
    const t = s + 1;
    p.forEach((pi, i) => pi.forEach((_, j) => {
      const g = grads[s][i][j];
      pi[j] *= 1 - lr * wd;
      m[i][j] = b1 * m[i][j] + (1 - b1) * g;
      v[i][j] = b2 * v[i][j] + (1 - b2) * g * g;
      pi[j] -= (lr / (1 - b1 ** t)) * m[i][j] / (Math.sqrt(v[i][j]) / Math.sqrt(1 - b2 ** t) + eps);
    }));
  });
  return { p, m, v };
}

const bits = (a: Float32Array) => [...new Uint32Array(a.buffer, a.byteOffset, a.length)];

for (const backend of ['cpu', 'wasm']) {
  describe(`AdamW and gradients on ${backend}`, () => {
    before(async () => {
      assert.ok(await tf.setBackend(backend), `backend ${backend} did not start`);
    });

    const makeParams = (p: number[][]) => p.map((x, i) => tf.variable(tf.tensor(x, shapes[i]), true));

    test('3 steps match a float64 AdamW reference within 1e-6 relative', async () => {
      const rng = new Rng(1);
      const p0 = sizes.map((n) => values(rng, n));
      const grads = [0, 1, 2].map(() => sizes.map((n) => values(rng, n)));
      const lrs = [0.01, 0.02, 0.005];
      const params = makeParams(p0);
      const opt = new AdamW(params, { weightDecay: 0.1 });
      for (let s = 0; s < 3; s++) {
        const g = grads[s].map((x, i) => tf.tensor(x, shapes[i]));
        opt.step(g, lrs[s]);
        tf.dispose(g);
      }
      const ref = adamwReference(p0, grads, lrs, 0.9, 0.999, 1e-8, 0.1);
      const state = (await opt.getState());
      assert.equal(state.step, 3);
      params.forEach((p, i) => {
        const errs = { p: maxRelErr(p.dataSync(), ref.p[i]), m: maxRelErr(state.m[i], ref.m[i]), v: maxRelErr(state.v[i], ref.v[i]) };
        for (const [name, err] of Object.entries(errs)) assert.ok(err < 1e-6, `param ${i} ${name}: largest relative error ${err}`);
        // The update is far larger than the tolerance, so the check has teeth.
        assert.ok(maxRelErr(p0[i], ref.p[i]) > 1e-3);
      });
      opt.dispose();
      tf.dispose(params);
    });

    test('weight decay is decoupled: p * (1 - lr * wd), never added to the gradient', () => {
      const p = tf.variable(tf.tensor([1, -3, 4]));
      const opt = new AdamW([p], { weightDecay: 0.5 });
      const zero = tf.zeros([3]);
      opt.step([zero], 0.1);
      // Adam with L2 (g += wd * p) would move each weight by about lr: [0.9, -2.9, 3.9].
      const got = [...p.dataSync()];
      [0.95, -2.85, 3.8].forEach((e, i) => assert.ok(Math.abs(got[i] - e) < 1e-6, `${got} vs 0.95,-2.85,3.8`));
      opt.dispose();
      tf.dispose([p, zero]);
    });

    test('state round trip through bytes is bit-exact and continues identically', async () => {
      const rng = new Rng(2);
      const p0 = sizes.map((n) => values(rng, n));
      const grads = [0, 1, 2, 3].map(() => sizes.map((n) => values(rng, n)).map((x, i) => tf.tensor(x, shapes[i])));
      const a = makeParams(p0);
      const optA = new AdamW(a, { weightDecay: 0.01 });
      optA.step(grads[0], 1e-2);
      optA.step(grads[1], 1e-2);
      const saved = (await optA.getState());
      // As a checkpoint would: raw little-endian float32 bytes, then back.
      const viaBytes = (x: Float32Array) => new Float32Array(new Uint8Array(Buffer.from(x.buffer, x.byteOffset, x.byteLength)).buffer);
      const restored: AdamWState = { step: saved.step, m: saved.m.map(viaBytes), v: saved.v.map(viaBytes) };
      const b = a.map((p, i) => tf.variable(tf.tensor(p.dataSync(), shapes[i]), true));
      const optB = new AdamW(b, { weightDecay: 0.01 });
      optB.setState(restored);
      assert.equal(optB.stepCount, 2);
      assert.deepEqual((await optB.getState()).m.map(bits), saved.m.map(bits));
      assert.deepEqual((await optB.getState()).v.map(bits), saved.v.map(bits));
      for (const g of grads.slice(2)) {
        optA.step(g, 5e-3);
        optB.step(g, 5e-3);
      }
      a.forEach((p, i) => assert.deepEqual(bits(b[i].dataSync() as Float32Array), bits(p.dataSync() as Float32Array)));
      assert.throws(() => optB.setState({ step: 1, m: saved.m.slice(1), v: saved.v }), /1 m tensors for 2 parameters/);
      assert.throws(() => optB.setState({ step: 1, m: saved.m, v: [saved.v[0], new Float32Array(3)] }), /v\[1\] has 3 values/);
      optA.dispose();
      optB.dispose();
      tf.dispose([...a, ...b, ...grads.flat()]);
    });

    test('numTensors stays flat across 5 steps of accumulate, clip and update', async () => {
      const rng = new Rng(3);
      const loraA = tf.variable(tf.tensor(values(rng, 12), [3, 4]), true, 'lora_A');
      const loraB = tf.variable(tf.tensor(values(rng, 6), [2, 3]), true, 'lora_B');
      const params = [loraA, loraB];
      const x = tf.tensor(values(rng, 20), [5, 4]);
      const y = tf.tensor(values(rng, 10), [5, 2]);
      const opt = new AdamW(params, { weightDecay: 0.01 });
      const acc = new GradAccumulator();
      const counts: number[] = [];
      const bytes: number[] = [];
      for (let step = 0; step < 5; step++) {
        for (let micro = 0; micro < 2; micro++) {
          const { value, grads } = tf.variableGrads(() =>
            tf.mean(tf.square(tf.sub(tf.matMul(tf.matMul(x, loraA, false, true), loraB, false, true), y))) as tf.Scalar, params);
          acc.add(alignGradients(params, grads));
          tf.dispose([value, ...Object.values(grads)]);
        }
        const mean = acc.mean();
        const clipped = await clipByGlobalNorm(mean, 0.5);
        tf.dispose(mean);
        opt.step(clipped.grads, 1e-2);
        tf.dispose(clipped.grads);
        counts.push(tf.memory().numTensors);
        bytes.push(tf.memory().numBytes);
      }
      assert.deepEqual(counts, Array(5).fill(counts[0]));
      assert.deepEqual(bytes, Array(5).fill(bytes[0]));
      opt.dispose();
      acc.dispose();
      tf.dispose([...params, x, y]);
    });

    test('accumulation gives the mean of the micro-batch gradients', () => {
      const rng = new Rng(4);
      const micro = [0, 1, 2].map(() => sizes.map((n) => values(rng, n)));
      const acc = new GradAccumulator();
      for (const g of micro) {
        const t = g.map((x, i) => tf.tensor(x, shapes[i]));
        acc.add(t);
        tf.dispose(t);
      }
      assert.equal(acc.microBatches, 3);
      const mean = acc.mean();
      assert.equal(acc.microBatches, 0);
      mean.forEach((m, i) => {
        const expected = micro[0][i].map((_, j) => (micro[0][i][j] + micro[1][i][j] + micro[2][i][j]) / 3);
        const err = maxRelErr(m.dataSync(), expected);
        assert.ok(err < 1e-6, `tensor ${i}: largest relative error ${err}`);
      });
      tf.dispose(mean);
      assert.throws(() => acc.mean(), /no gradients/);
    });

    test('clipping returns the float64 global norm before clipping and scales as clip_grad_norm_', async () => {
      const rng = new Rng(5);
      const raw = sizes.map((n) => values(rng, n));
      const grads = raw.map((x, i) => tf.tensor(x, shapes[i]));
      const norm64 = Math.sqrt(raw.flat().reduce((s, g) => s + g * g, 0));
      const clipped = await clipByGlobalNorm(grads, 1);
      assert.ok(Math.abs(clipped.norm - norm64) / norm64 < 1e-6, `${clipped.norm} vs ${norm64}`);
      const coef = 1 / (norm64 + 1e-6);
      clipped.grads.forEach((g, i) => {
        const err = maxRelErr(g.dataSync(), raw[i].map((x) => x * coef));
        assert.ok(err < 1e-6, `tensor ${i}: largest relative error ${err}`);
      });
      for (const maxNorm of [norm64 * 2, 0, Infinity]) {
        const same = await clipByGlobalNorm(grads, maxNorm);
        same.grads.forEach((g, i) => assert.deepEqual([...g.dataSync()], raw[i]));
        tf.dispose(same.grads);
      }
      const exact = [tf.tensor([3, 4]), tf.tensor([12])];
      const r = await clipByGlobalNorm(exact, 1);
      assert.equal(r.norm, 13);
      // Tiny gradients show the 1e-6 in the coefficient: 1e-6 / (5e-6 + 1e-6), not 1/5.
      const tiny = [tf.tensor([3e-6, 4e-6])];
      const t = await clipByGlobalNorm(tiny, 1e-6);
      const expectedTiny = [3e-6 / 6, 4e-6 / 6];
      assert.ok(maxRelErr(t.grads[0].dataSync(), expectedTiny) < 1e-6, `${t.grads[0].dataSync()} vs ${expectedTiny}`);
      tf.dispose([...tiny, ...t.grads]);
      tf.dispose([...grads, ...clipped.grads, ...exact, ...r.grads]);
    });
  });
}
