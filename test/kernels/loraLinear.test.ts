// The fused frozen projection + LoRA adapter (server/engine/model/loraLinear.ts, one
// native call each way): its value and gradients (x, A, B) against the two ops it stands
// for (frozenLinear + LoraLayer.delta on plain wasm kernels), and against float64
// central differences of a plain loop (relative error < 1e-3), for 4-bit weights (NF4 with
// double quantization and FP4, whose forward runs MatMulBnb4 on the packed codes; W of
// whole blocks, with rows of whole blocks or not, whose backward dequantizes in the SIMD
// loop; one with an odd number of values, which dequantizes first instead) and a dense
// one (kept as W^T). Odd sizes on purpose.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../server/engine/tf';
import { initBackend } from '../../server/engine/backend';
import { activeNativeProvider, setNativeKernels } from '../../server/engine/kernels/nativeBatchMatMul';
import { setFusedOps } from '../../server/engine/ops';
import { DenseWeight, frozenLinear, type FrozenWeight } from '../../server/engine/model/frozenLinear';
import { loraLinear, loraLinearRuns } from '../../server/engine/model/loraLinear';
import { LoraLayer } from '../../server/engine/lora/loraLayer';
import { QuantizedWeight } from '../../server/engine/quant/quantizedWeight';
import { Rng } from '../../server/engine/rng';
import { dropoutMask } from '../../server/engine/ops/dropout';

const N = 9, R = 3, SCALING = 1.75;
let IN = 24, OUT = 13;

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0, n = 0;
  for (let i = 0; i < b.length; i++) { d += (a[i] - b[i]) ** 2; n += b[i] ** 2; }
  return Math.sqrt(d) / Math.max(Math.sqrt(n), 1e-30);
}

/** L = sum((x W^T + s (x A^T) B^T) * Rm) in float64. */
function loss64(x: Float64Array, W: Float64Array, A: Float64Array, B: Float64Array, Rm: Float64Array): number {
  let L = 0;
  for (let n = 0; n < N; n++) {
    const h = new Float64Array(R);
    for (let r = 0; r < R; r++) for (let i = 0; i < IN; i++) h[r] += x[n * IN + i] * A[r * IN + i];
    for (let o = 0; o < OUT; o++) {
      let y = 0;
      for (let i = 0; i < IN; i++) y += x[n * IN + i] * W[o * IN + i];
      for (let r = 0; r < R; r++) y += SCALING * h[r] * B[o * R + r];
      L += y * Rm[n * OUT + o];
    }
  }
  return L;
}

function fd(L: () => number, v: Float64Array): Float64Array {
  return Float64Array.from(v, (x0, i) => {
    v[i] = x0 + 1e-4; const up = L();
    v[i] = x0 - 1e-4; const dn = L();
    v[i] = x0;
    return (up - dn) / 2e-4;
  });
}

/** The fused loss equals the float64 loss within 1e-5, and each gradient its central differences within 1e-3. */
function assertFloat64(fused: { L: number } & Record<'dx' | 'dA' | 'dB', ArrayLike<number>>, L: () => number, inputs: Record<'dx' | 'dA' | 'dB', Float64Array>): void {
  assert.ok(Math.abs(fused.L - L()) / Math.abs(L()) < 1e-5, `loss ${fused.L} vs ${L()}`);
  for (const k of ['dx', 'dA', 'dB'] as const) {
    const e = relErr(fused[k], fd(L, inputs[k]));
    assert.ok(e < 1e-3, `${k} vs central differences: ${e}`);
  }
}

const weights: [string, [number, number], (w: Float32Array) => FrozenWeight][] = [
  ['nf4 + double quant', [13, 24], (w) => QuantizedWeight.fromHost({ shape: [OUT, IN], data: w }, { quantType: 'nf4', blockSize: 32, doubleQuant: true })],
  ['fp4', [13, 24], (w) => QuantizedWeight.fromHost({ shape: [OUT, IN], data: w }, { quantType: 'fp4', blockSize: 64, doubleQuant: false })],
  ['nf4 + double quant, whole blocks per row', [13, 64], (w) => QuantizedWeight.fromHost({ shape: [OUT, IN], data: w }, { quantType: 'nf4', blockSize: 32, doubleQuant: true })],
  ['nf4, whole blocks across rows', [16, 40], (w) => QuantizedWeight.fromHost({ shape: [OUT, IN], data: w }, { quantType: 'nf4', blockSize: 64, doubleQuant: false })],
  ['fp4, whole blocks per row', [13, 64], (w) => QuantizedWeight.fromHost({ shape: [OUT, IN], data: w }, { quantType: 'fp4', blockSize: 64, doubleQuant: false })],
  ['nf4, an odd number of values', [13, 23], (w) => QuantizedWeight.fromHost({ shape: [OUT, IN], data: w }, { quantType: 'nf4', blockSize: 32, doubleQuant: false })],
  ['dense', [13, 24], (w) => new DenseWeight([OUT, IN], w)],
];

for (const [kind, shape, make] of weights) {
  test(`wasm: loraLinear (${kind}) equals frozenLinear + delta on plain wasm, and its gradients equal float64 central differences`, async (t) => {
    [OUT, IN] = shape;
    await initBackend('wasm');
    if (!activeNativeProvider()) { t.skip('the native provider is not running here (absent or QLORA_NATIVE=0)'); return; }
    const rng = new Rng(13);
    const rand = (n: number, s = 1) => Float32Array.from({ length: n }, () => rng.normal() * s);
    const w = make(rand(OUT * IN, 0.5));
    const adapter = new LoraLayer('t', IN, OUT, R, SCALING, 0, { A: rand(R * IN), B: rand(OUT * R) });
    const x = tf.tensor2d(rand(N * IN), [N, IN]);
    const Rm = tf.tensor2d(rand(N * OUT), [N, OUT]);
    const vars = [adapter.A, adapter.B];
    const run = (f: (x: tf.Tensor2D) => tf.Tensor2D) => {
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(f(x), Rm)) as tf.Scalar, vars);
      const dx = tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(f(xi as tf.Tensor2D), Rm)))(x);
      const y = f(x);
      const out = { y: y.dataSync().slice(), L: value.dataSync()[0], dx: dx.dataSync().slice(),
        dA: grads[adapter.A.name].dataSync().slice(), dB: grads[adapter.B.name].dataSync().slice() };
      tf.dispose([value, dx, y, ...Object.values(grads)]);
      return out;
    };
    try {
      assert.ok(loraLinearRuns(), 'the fused op runs here');
      const before = tf.memory().numTensors;
      const fused = run((xi) => loraLinear(xi, w, adapter));
      assert.equal(tf.memory().numTensors, before, 'tensors leak');
      setNativeKernels(false);
      setFusedOps(false);
      assert.equal(loraLinearRuns(), false);
      const plain = run((xi) => tf.add(frozenLinear(xi, w), adapter.delta(xi)));
      setNativeKernels(true);
      setFusedOps(true);
      for (const k of ['y', 'dx', 'dA', 'dB'] as const) assert.ok(relErr(fused[k], plain[k]) < 1e-5, `${k} vs plain wasm: ${relErr(fused[k], plain[k])}`);

      const wd = w.dequantize();
      const W = Float64Array.from(wd.dataSync());
      wd.dispose();
      const X = Float64Array.from(x.dataSync()), A = Float64Array.from(adapter.A.dataSync()), B = Float64Array.from(adapter.B.dataSync());
      const Rv = Float64Array.from(Rm.dataSync());
      const L = () => loss64(X, W, A, B, Rv);
      assertFloat64(fused, L, { dx: X, dA: A, dB: B });
    } finally {
      setNativeKernels(true);
      setFusedOps(true);
      tf.dispose([x, Rm]);
      adapter.dispose();
      w.dispose();
    }
  });
}

test('wasm: the 4-bit forward (MatMulBnb4 on the packed codes) and backward (Dequantize4bit, then the fused gradient) see Dequantize4bit\'s values, bit for bit', async (t) => {
  await initBackend('wasm');
  if (!activeNativeProvider()) { t.skip('the native provider is not running here (absent or QLORA_NATIVE=0)'); return; }
  const rng = new Rng(21);
  const [out, inp] = [40, 72]; // whole blocks of 64, which straddle rows
  for (const [quantType, doubleQuant] of [['nf4', true], ['fp4', false]] as const) {
    const w = QuantizedWeight.fromHost({ shape: [out, inp], data: Float32Array.from({ length: out * inp }, () => rng.normal()) },
      { quantType, blockSize: 64, doubleQuant });
    // B = 0 and x = I: y = I W^T + 0, every sum exact, so y is W^T as the native call dequantized it.
    const adapter = new LoraLayer('t', inp, out, 2, 1, 0, { A: new Float32Array(2 * inp).fill(0.5), B: new Float32Array(out * 2) });
    const eye = tf.eye(inp) as tf.Tensor2D;
    const prof = await tf.profile(() => loraLinear(eye, w, adapter));
    assert.ok(prof.kernelNames.includes('QloraLoraLinear4bit'), `${quantType}: the 4-bit kernel ran (${prof.kernelNames})`);
    const y = loraLinear(eye, w, adapter);
    const wd = w.dequantize({ transpose: true });
    const got = y.dataSync(), want = wd.dataSync();
    let differ = 0;
    for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) differ++;
    assert.equal(differ, 0, `${quantType}: ${differ} of ${want.length} values differ`);
    // dy = I (N = out rows): dx = I W + s (I B) A = W exactly, as the backward pass dequantized it.
    const x = tf.zeros([out, inp]) as tf.Tensor2D, eyeOut = tf.eye(out);
    const dxOf = () => tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(loraLinear(xi as tf.Tensor2D, w, adapter), eyeOut)))(x);
    const gprof = await tf.profile(() => dxOf());
    assert.ok(gprof.kernelNames.includes('QloraLoraLinearGrad') && gprof.kernelNames.includes('Dequantize4bit'), `${quantType}: the fused backward ran on W dequantized (${gprof.kernelNames})`);
    const dx = dxOf(), wn = w.dequantize();
    const gotDx = dx.dataSync(), wantW = wn.dataSync();
    let differDx = 0;
    for (let i = 0; i < wantW.length; i++) if (gotDx[i] !== wantW[i]) differDx++;
    assert.equal(differDx, 0, `${quantType} backward: ${differDx} of ${wantW.length} values differ`);
    tf.dispose([eye, y, wd, prof.result as tf.Tensor, x, eyeOut, gprof.result as tf.Tensor, dx, wn]);
    adapter.dispose();
    w.dispose();
  }
});

test('wasm: loraLinear with dropout on the adapter input equals frozenLinear + delta (same seed) on plain wasm, gradients = float64 central differences', async (t) => {
  await initBackend('wasm');
  if (!activeNativeProvider()) { t.skip('the native provider is not running here (absent or QLORA_NATIVE=0)'); return; }
  [OUT, IN] = [13, 64];
  const P = 0.25, SEED = 99;
  const rng = new Rng(17);
  const rand = (n: number, s = 1) => Float32Array.from({ length: n }, () => rng.normal() * s);
  // Whole blocks (the SIMD dequantize under dropout), and a dense weight (kept as W^T).
  for (const w of [QuantizedWeight.fromHost({ shape: [OUT, IN], data: rand(OUT * IN, 0.5) }, { quantType: 'nf4', blockSize: 32, doubleQuant: true }),
    new DenseWeight([OUT, IN], rand(OUT * IN, 0.5))]) {
    const adapter = new LoraLayer('t', IN, OUT, R, SCALING, P, { A: rand(R * IN), B: rand(OUT * R) });
    const x = tf.tensor2d(rand(N * IN), [N, IN]);
    const Rm = tf.tensor2d(rand(N * OUT), [N, OUT]);
    const run = (f: (x: tf.Tensor2D) => tf.Tensor2D) => {
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(f(x), Rm)) as tf.Scalar, [adapter.A, adapter.B]);
      const dx = tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(f(xi as tf.Tensor2D), Rm)))(x);
      const out = { L: value.dataSync()[0], dx: dx.dataSync().slice(), dA: grads[adapter.A.name].dataSync().slice(), dB: grads[adapter.B.name].dataSync().slice() };
      tf.dispose([value, dx, ...Object.values(grads)]);
      return out;
    };
    try {
      const before = tf.memory().numTensors;
      const fused = run((xi) => loraLinear(xi, w, adapter, SEED));
      assert.equal(tf.memory().numTensors, before, 'tensors leak');
      setNativeKernels(false);
      setFusedOps(false);
      const plain = run((xi) => tf.add(frozenLinear(xi, w), adapter.delta(xi, SEED)));
      setNativeKernels(true);
      setFusedOps(true);
      assert.ok(Math.abs(fused.L - plain.L) / Math.abs(plain.L) < 1e-5, `loss ${fused.L} vs ${plain.L}`);
      for (const k of ['dx', 'dA', 'dB'] as const) assert.ok(relErr(fused[k], plain[k]) < 1e-5, `${k} vs plain wasm: ${relErr(fused[k], plain[k])}`);
      // The mask drawn for this seed (ops/dropout.ts): 0 or 1 / (1 - P).
      const M = Float64Array.from(dropoutMask(N * IN, P, SEED));
      assert.ok(M.some((v) => v === 0) && M.some((v) => v > 1), 'the mask drops some inputs and scales the rest');
      const wd = w.dequantize();
      const W = Float64Array.from(wd.dataSync());
      wd.dispose();
      const X = Float64Array.from(x.dataSync()), A = Float64Array.from(adapter.A.dataSync()), B = Float64Array.from(adapter.B.dataSync());
      const Rv = Float64Array.from(Rm.dataSync());
      // L = sum((x W^T + s ((x * M) A^T) B^T) * R): the base reads x, the adapter x * M.
      const L = () => loss64(X, W, A, B, Rv) - loss64(X, new Float64Array(W.length), A, B, Rv) + loss64(X.map((v, i) => v * M[i]), new Float64Array(W.length), A, B, Rv);
      assertFloat64(fused, L, { dx: X, dA: A, dB: B });
    } finally {
      setNativeKernels(true);
      setFusedOps(true);
      tf.dispose([x, Rm]);
      adapter.dispose();
      w.dispose();
    }
  }
});

test('wasm: loraLinear with inputGrad false (x depends on no trainable weight) gives the same y, dA and dB, its backward one small native call with no dy W and no dequantize', async (t) => {
  await initBackend('wasm');
  if (!activeNativeProvider()) { t.skip('the native provider is not running here (absent or QLORA_NATIVE=0)'); return; }
  const rng = new Rng(31);
  const rand = (n: number, s = 1) => Float32Array.from({ length: n }, () => rng.normal() * s);
  const [out, inp] = [13, 64];
  const w = QuantizedWeight.fromHost({ shape: [out, inp], data: rand(out * inp, 0.5) }, { quantType: 'nf4', blockSize: 32, doubleQuant: true });
  for (const dropout of [0, 0.25]) {
    const adapter = new LoraLayer('t', inp, out, R, SCALING, dropout, { A: rand(R * inp), B: rand(out * R) });
    const x = tf.tensor2d(rand(N * inp), [N, inp]);
    const Rm = tf.tensor2d(rand(N * out), [N, out]);
    const vars = [adapter.A, adapter.B];
    const seed = dropout ? 7 : undefined;
    const run = (inputGrad: boolean) => {
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(loraLinear(x, w, adapter, seed, { inputGrad }), Rm)) as tf.Scalar, vars);
      const r = { L: value.dataSync()[0], dA: grads[adapter.A.name].dataSync().slice(), dB: grads[adapter.B.name].dataSync().slice() };
      tf.dispose([value, ...Object.values(grads)]);
      return r;
    };
    try {
      const before = tf.memory().numTensors;
      const full = run(true), adapterOnly = run(false);
      assert.equal(tf.memory().numTensors, before, 'tensors leak');
      assert.ok(Math.abs(adapterOnly.L - full.L) <= 1e-6 * Math.abs(full.L), `loss ${adapterOnly.L} vs ${full.L}`);
      for (const k of ['dA', 'dB'] as const) assert.ok(relErr(adapterOnly[k], full[k]) < 1e-6, `dropout ${dropout}: ${k}: ${relErr(adapterOnly[k], full[k])}`);
      const prof = await tf.profile(() => { const g = tf.variableGrads(() => tf.sum(tf.mul(loraLinear(x, w, adapter, seed, { inputGrad: false }), Rm)) as tf.Scalar, vars); tf.dispose([g.value, ...Object.values(g.grads)]); });
      const names = prof.kernelNames;
      assert.ok(names.includes('QloraLoraAdapterGrad'), `the adapter-only backward ran (${names})`);
      assert.ok(!names.includes('QloraLoraLinearGrad') && !names.includes('Dequantize4bit'), `no dy W product, no dequantize (${names})`);
    } finally {
      tf.dispose([x, Rm]);
      adapter.dispose();
    }
  }
  w.dispose();
});
