// The fused ops (server/engine/ops): forward against plain float64 loops, gradients
// against float64 central differences of those loops (relative error < 1e-3), on the
// wasm and cpu backends where the host kernels run, and the composite form (the path
// other backends take) against the same references.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../server/engine/tf';
import { initBackend } from '../../server/engine/backend';
import { applyRope, maskedSoftmax, rmsNorm, setFusedOps, swiglu } from '../../server/engine/ops';
import { Rng } from '../../server/engine/rng';

type F64 = Float64Array;

function randn(rng: Rng, n: number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => rng.normal() * scale);
}

/** Norm-wise relative error |a - b| / |b|. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0, n = 0;
  for (let i = 0; i < b.length; i++) { d += (a[i] - b[i]) ** 2; n += b[i] ** 2; }
  return Math.sqrt(d) / Math.max(Math.sqrt(n), 1e-30);
}

/** d/dx_i of L(x) = sum(f(x) * R), central differences in float64. */
function fdGrad(L: (xs: F64[]) => number, xs: F64[], which: number, h = 1e-5): Float64Array {
  const x = xs[which];
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    x[i] = v + h; const up = L(xs);
    x[i] = v - h; const dn = L(xs);
    x[i] = v;
    g[i] = (up - dn) / (2 * h);
  }
  return g;
}

const dot = (y: F64, r: F64) => y.reduce((s, v, i) => s + v * r[i], 0);

// ---- float64 references, loop by loop ----
function rms64(x: F64, w: F64, N: number, C: number, eps: number): F64 {
  const y = new Float64Array(N * C);
  for (let n = 0; n < N; n++) {
    let ss = 0;
    for (let j = 0; j < C; j++) ss += x[n * C + j] ** 2;
    const r = 1 / Math.sqrt(ss / C + eps);
    for (let j = 0; j < C; j++) y[n * C + j] = x[n * C + j] * r * w[j];
  }
  return y;
}
function rope64(x: F64, cos: F64, sin: F64, rows: number, T: number, hs: number): F64 {
  const y = new Float64Array(x.length), half = hs / 2;
  for (let r = 0; r < rows; r++) {
    const t = r % T;
    for (let i = 0; i < hs; i++) {
      const rot = i < half ? -x[r * hs + i + half] : x[r * hs + i - half];
      y[r * hs + i] = x[r * hs + i] * cos[t * hs + i] + rot * sin[t * hs + i];
    }
  }
  return y;
}
function swiglu64(g: F64, u: F64): F64 {
  return g.map((v, i) => (v / (1 + Math.exp(-v))) * u[i]);
}
function softmax64(s: F64, mask: F64, rows: number, Tq: number, Tk: number, scale: number): F64 {
  const p = new Float64Array(s.length);
  for (let r = 0; r < rows; r++) {
    const q = r % Tq;
    let max = -Infinity;
    for (let k = 0; k < Tk; k++) max = Math.max(max, s[r * Tk + k] * scale + mask[q * Tk + k]);
    let sum = 0;
    for (let k = 0; k < Tk; k++) { p[r * Tk + k] = Math.exp(s[r * Tk + k] * scale + mask[q * Tk + k] - max); sum += p[r * Tk + k]; }
    for (let k = 0; k < Tk; k++) p[r * Tk + k] /= sum;
  }
  return p;
}

/** Runs op on tf tensors made from xs; returns its value and the gradient of sum(op * R) for each input. */
function tfValueAndGrads(op: (...t: tf.Tensor[]) => tf.Tensor, xs: Float32Array[], shapes: number[][], r: Float32Array) {
  return tf.tidy(() => {
    const ts = xs.map((x, i) => tf.tensor(x, shapes[i]));
    const R = tf.tensor(r, op(...ts).shape);
    const y = op(...ts).dataSync().slice();
    const gs = tf.grads((...a: tf.Tensor[]) => tf.sum(tf.mul(op(...a), R)))(ts).map((g) => g.dataSync().slice());
    return { y, gs };
  });
}

const f64 = (a: Float32Array) => Float64Array.from(a);

for (const backend of ['wasm', 'cpu'] as const) {
  for (const fused of [true, false]) {
    const label = `${backend}, ${fused ? 'fused kernel' : 'composite ops'}`;

    test(`${label}: RMSNorm forward = float64 loops, d/dx and d/dweight = float64 central differences`, async () => {
      await initBackend(backend);
      setFusedOps(fused);
      const rng = new Rng(1), N = 3, C = 16, eps = 1e-5;
      const x = randn(rng, N * C), w = randn(rng, C), r = randn(rng, N * C);
      const got = tfValueAndGrads((a, b) => rmsNorm(a as tf.Tensor2D, b as tf.Tensor1D, eps), [x, w], [[N, C], [C]], r);
      const L = (xs: F64[]) => dot(rms64(xs[0], xs[1], N, C, eps), f64(r));
      assert.ok(relErr(got.y, rms64(f64(x), f64(w), N, C, eps)) < 1e-6);
      for (const k of [0, 1]) assert.ok(relErr(got.gs[k], fdGrad(L, [f64(x), f64(w)], k)) < 1e-3, `input ${k}`);
      setFusedOps(true);
    });

    test(`${label}: rotary embedding forward = float64 loops, d/dx = float64 central differences`, async () => {
      await initBackend(backend);
      setFusedOps(fused);
      const rng = new Rng(2), B = 2, H = 2, T = 3, hs = 8;
      const x = randn(rng, B * H * T * hs), r = randn(rng, B * H * T * hs);
      const ang = Float32Array.from({ length: T * hs }, (_, i) => Math.floor(i / hs) * (1 + (i % (hs / 2))) * 0.3);
      const cosA = ang.map(Math.cos), sinA = ang.map(Math.sin);
      const cos = tf.tensor2d(cosA, [T, hs]), sin = tf.tensor2d(sinA, [T, hs]);
      const got = tfValueAndGrads((a) => applyRope(a as tf.Tensor4D, cos, sin), [x], [[B, H, T, hs]], r);
      const ref = (xx: F64) => rope64(xx, f64(cosA), f64(sinA), B * H * T, T, hs);
      assert.ok(relErr(got.y, ref(f64(x))) < 1e-6);
      assert.ok(relErr(got.gs[0], fdGrad((xs) => dot(ref(xs[0]), f64(r)), [f64(x)], 0)) < 1e-3);
      tf.dispose([cos, sin]);
      setFusedOps(true);
    });

    test(`${label}: SwiGLU forward = float64 loops, d/dgate and d/dup = float64 central differences`, async () => {
      await initBackend(backend);
      setFusedOps(fused);
      const rng = new Rng(3), N = 4, Hd = 12;
      const g = randn(rng, N * Hd, 2), u = randn(rng, N * Hd), r = randn(rng, N * Hd);
      const got = tfValueAndGrads((a, b) => swiglu(a as tf.Tensor2D, b as tf.Tensor2D), [g, u], [[N, Hd], [N, Hd]], r);
      assert.ok(relErr(got.y, swiglu64(f64(g), f64(u))) < 1e-6);
      const L = (xs: F64[]) => dot(swiglu64(xs[0], xs[1]), f64(r));
      for (const k of [0, 1]) assert.ok(relErr(got.gs[k], fdGrad(L, [f64(g), f64(u)], k)) < 1e-3, `input ${k}`);
      setFusedOps(true);
    });

    test(`${label}: masked attention softmax forward = float64 loops, d/dscores = float64 central differences`, async () => {
      await initBackend(backend);
      setFusedOps(fused);
      const rng = new Rng(4), B = 1, H = 2, T = 5, scale = 0.35;
      const s = randn(rng, B * H * T * T, 3), r = randn(rng, B * H * T * T);
      const maskA = Float32Array.from({ length: T * T }, (_, i) => (i % T > Math.floor(i / T) ? -1e9 : 0));
      const mask = tf.tensor2d(maskA, [T, T]);
      const got = tfValueAndGrads((a) => maskedSoftmax(a as tf.Tensor4D, mask, scale), [s], [[B, H, T, T]], r);
      const ref = (xx: F64) => softmax64(xx, f64(maskA), B * H * T, T, T, scale);
      assert.ok(relErr(got.y, ref(f64(s))) < 1e-6);
      assert.ok(relErr(got.gs[0], fdGrad((xs) => dot(ref(xs[0]), f64(r)), [f64(s)], 0)) < 1e-3);
      mask.dispose();
      setFusedOps(true);
    });
  }
}

test('wasm: a masked softmax with a (B, 1, T, T) key-padding mask matches the composite form', async () => {
  await initBackend('wasm');
  const rng = new Rng(5), B = 2, H = 2, T = 4;
  const s = tf.tensor4d(randn(rng, B * H * T * T), [B, H, T, T]);
  const mask = tf.tensor4d(Float32Array.from({ length: B * T * T }, (_, i) => ((i * 7) % 5 === 0 ? -1e9 : 0)), [B, 1, T, T]);
  const fused = maskedSoftmax(s, mask, 0.5).dataSync();
  setFusedOps(false);
  const plain = maskedSoftmax(s, mask, 0.5).dataSync();
  setFusedOps(true);
  assert.ok(relErr(fused, plain) < 1e-6);
  tf.dispose([s, mask]);
});

test('wasm: fused ops leave no tensors behind across steps', async () => {
  await initBackend('wasm');
  const rng = new Rng(6);
  const x = tf.tensor2d(randn(rng, 4 * 8), [4, 8]), w = tf.tensor1d(randn(rng, 8));
  const step = () => tf.tidy(() => tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(swiglu(rmsNorm(a as tf.Tensor2D, b as tf.Tensor1D, 1e-5), a as tf.Tensor2D)))([x, w]).forEach((g) => g.dataSync()));
  step();
  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) step();
  assert.equal(tf.memory().numTensors, before);
  tf.dispose([x, w]);
});
