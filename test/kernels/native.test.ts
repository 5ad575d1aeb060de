// The native CPU provider (server/engine/kernels/native): it starts and passes its
// self-test where onnxruntime-node is installed, the backend report names it, a missing
// package is a reason and not a crash, QLORA_NATIVE=0 keeps the wasm kernels, and the
// matrix products it runs (with every transpose and batch broadcast autograd asks for)
// equal the wasm kernels' and give gradients equal to float64 central differences.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { tf } from '../../server/engine/tf';
import { initBackend } from '../../server/engine/backend';
import { startOrtProvider } from '../../server/engine/kernels/native/ortProvider';
import { activeNativeProvider, setNativeKernels } from '../../server/engine/kernels/nativeBatchMatMul';
import { Rng } from '../../server/engine/rng';

const root = join(__dirname, '..', '..');

function ortLoads(): boolean {
  try { require.resolve('onnxruntime-node'); return true; } catch { return false; }
}

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0, n = 0;
  for (let i = 0; i < b.length; i++) { d += (a[i] - b[i]) ** 2; n += b[i] ** 2; }
  return Math.sqrt(d) / Math.max(Math.sqrt(n), 1e-30);
}

test('the provider starts, passes its self-test, and the wasm backend report names it', async (t) => {
  if (!ortLoads()) { t.skip('onnxruntime-node is not installed here (optional dependency)'); return; }
  if (process.env.QLORA_NATIVE === '0') { t.skip('QLORA_NATIVE=0 in this run'); return; }
  const started = startOrtProvider({ threads: 1 });
  assert.ok(started.ok, started.ok ? '' : started.why);
  assert.equal(started.provider.label, 'ORT MLAS, 1 thread');
  const info = await initBackend('wasm');
  assert.match(info.device, /^wasm.* \+ native GEMM \(ORT MLAS, \d+ threads?\)$/);
  assert.ok(activeNativeProvider());
});

test('a provider whose package cannot load reports why instead of throwing', () => {
  const r = startOrtProvider({ packageName: 'onnxruntime-node-not-installed' });
  assert.equal(r.ok, false);
  assert.match(r.ok ? '' : r.why, /onnxruntime-node did not load \(Cannot find module 'onnxruntime-node-not-installed'/);
});

test('QLORA_NATIVE=0 keeps the wasm kernels, says so in the backend report, and products still run', () => {
  const script = `(async () => {
    const { initBackend } = require(${JSON.stringify(join(root, 'server/engine/backend.ts'))});
    const { tf } = require(${JSON.stringify(join(root, 'server/engine/tf.ts'))});
    const { activeNativeProvider } = require(${JSON.stringify(join(root, 'server/engine/kernels/nativeBatchMatMul.ts'))});
    const info = await initBackend('wasm');
    const y = tf.matMul(tf.tensor2d([1, 2, 3, 4], [2, 2]), tf.tensor2d([5, 6, 7, 8], [2, 2]), false, true).dataSync();
    console.log(JSON.stringify({ device: info.device, native: activeNativeProvider() !== undefined, y: Array.from(y) }));
  })();`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', script],
    { cwd: root, encoding: 'utf8', env: { ...process.env, QLORA_NATIVE: '0' } });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.equal(out.device, 'wasm, SIMD, 1 thread (native GEMM off: QLORA_NATIVE=0)');
  assert.equal(out.native, false);
  assert.deepEqual(out.y, [17, 23, 39, 53]);
});

/** Shapes autograd and attention produce: transposes, batches, a broadcast batch of one, rank 4. */
const CASES: { a: number[]; b: number[]; tA: boolean; tB: boolean }[] = [
  { a: [7, 5], b: [5, 3], tA: false, tB: false },
  { a: [5, 7], b: [5, 3], tA: true, tB: false },
  { a: [7, 5], b: [3, 5], tA: false, tB: true },
  { a: [5, 7], b: [3, 5], tA: true, tB: true },
  { a: [2, 3, 6, 4], b: [2, 3, 6, 4], tA: false, tB: true },
  { a: [3, 6, 4], b: [4, 5], tA: false, tB: false },
  { a: [1, 6, 4], b: [3, 4, 5], tA: false, tB: false },
];

test('wasm: native products equal the wasm kernels\' for every transpose and batch shape', async (t) => {
  await initBackend('wasm');
  if (!activeNativeProvider()) { t.skip('the native provider is not running here (absent or QLORA_NATIVE=0)'); return; }
  const rng = new Rng(7);
  for (const c of CASES) {
    const a = tf.tensor(Float32Array.from({ length: c.a.reduce((p, d) => p * d) }, () => rng.normal()), c.a);
    const b = tf.tensor(Float32Array.from({ length: c.b.reduce((p, d) => p * d) }, () => rng.normal()), c.b);
    const native = tf.matMul(a, b, c.tA, c.tB);
    setNativeKernels(false);
    const wasm = tf.matMul(a, b, c.tA, c.tB);
    setNativeKernels(true);
    assert.deepEqual(native.shape, wasm.shape);
    assert.ok(relErr(native.dataSync(), wasm.dataSync()) < 1e-6, JSON.stringify(c));
    tf.dispose([a, b, native, wasm]);
  }
});

test('wasm: gradients through native products equal float64 central differences (rel < 1e-3)', async (t) => {
  await initBackend('wasm');
  if (!activeNativeProvider()) { t.skip('the native provider is not running here (absent or QLORA_NATIVE=0)'); return; }
  const rng = new Rng(8);
  // tfjs's BatchMatMul gradient does not sum over broadcast batch dimensions (any backend),
  // so the broadcast cases are checked forward only, above.
  for (const c of CASES.filter((k) => k.a.length === k.b.length && k.a.slice(0, -2).every((d, i) => d === k.b[i]))) {
    const na = c.a.reduce((p, d) => p * d), nb = c.b.reduce((p, d) => p * d);
    const A = Float64Array.from({ length: na }, () => rng.normal()), Bm = Float64Array.from({ length: nb }, () => rng.normal());
    const a = tf.tensor(Float32Array.from(A), c.a), b = tf.tensor(Float32Array.from(Bm), c.b);
    const yShape = tf.matMul(a, b, c.tA, c.tB).shape;
    const R = Float64Array.from({ length: yShape.reduce((p, d) => p * d) }, () => rng.normal());
    const Rt = tf.tensor(Float32Array.from(R), yShape);
    const [ga, gb] = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(tf.matMul(x, y, c.tA, c.tB), Rt)))([a, b]);
    // L = sum(matMul(A, B) * R) in float64 through the same tfjs op on exact-enough inputs would
    // reuse what is tested, so the loss is a plain loop over the broadcast batch.
    const L = (av: Float64Array, bv: Float64Array) => hostLoss(av, c.a, bv, c.b, c.tA, c.tB, R, yShape);
    const fd = (which: 0 | 1) => {
      const x = which === 0 ? A : Bm;
      return Float64Array.from(x, (v, i) => {
        x[i] = v + 1e-4; const up = L(A, Bm);
        x[i] = v - 1e-4; const dn = L(A, Bm);
        x[i] = v;
        return (up - dn) / 2e-4;
      });
    };
    assert.ok(relErr(ga.dataSync(), fd(0)) < 1e-3, `dA ${JSON.stringify(c)}`);
    assert.ok(relErr(gb.dataSync(), fd(1)) < 1e-3, `dB ${JSON.stringify(c)}`);
    tf.dispose([a, b, Rt, ga, gb]);
  }
});

function hostLoss(A: Float64Array, aShape: number[], Bm: Float64Array, bShape: number[], tA: boolean, tB: boolean,
  R: Float64Array, yShape: number[]): number {
  const ra = aShape.length, rb = bShape.length, ry = yShape.length;
  const M = yShape[ry - 2], N = yShape[ry - 1], K = tA ? aShape[ra - 2] : aShape[ra - 1];
  const batch = yShape.slice(0, -2).reduce((p, d) => p * d, 1);
  const batchA = aShape.slice(0, -2).reduce((p, d) => p * d, 1), batchB = bShape.slice(0, -2).reduce((p, d) => p * d, 1);
  let L = 0;
  for (let q = 0; q < batch; q++) {
    const oa = (batchA === 1 ? 0 : q) * M * K, ob = (batchB === 1 ? 0 : q) * K * N;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += A[oa + (tA ? k * M + m : m * K + k)] * Bm[ob + (tB ? n * K + k : k * N + n)];
        L += s * R[(q * M + m) * N + n];
      }
    }
  }
  return L;
}
