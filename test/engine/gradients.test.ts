// LoRA gradients through frozen NF4 linear layers against central finite differences
// in float64: y1 = x W1q^T + s x A1^T B1^T, h = tanh(y1), y2 = h W2q^T + s h A2^T B2^T,
// L = sum(y2 * R). The gradient for A1/B1 must flow back through the frozen NF4 W2.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../server/engine/tf';
import { initBackend } from '../../server/engine/backend';
import { frozenLinear } from '../../server/engine/model/frozenLinear';
import { LoraLayer } from '../../server/engine/lora/loraLayer';
import { QuantizedWeight } from '../../server/engine/quant/quantizedWeight';
import { Rng } from '../../server/engine/rng';

const N = 5, IN = 64, MID = 48, OUT = 32, R = 4, SCALING = 2;

function randn(rng: Rng, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * scale;
  return a;
}

/** The same two-layer function on the host in float64, for finite differences. */
function hostLoss(x: Float64Array, w1: Float64Array, a1: Float64Array, b1: Float64Array,
  w2: Float64Array, a2: Float64Array, b2: Float64Array, r: Float64Array): number {
  const lin = (inp: Float64Array, n: number, i: number, o: number, w: Float64Array, a: Float64Array, b: Float64Array) => {
    const y = new Float64Array(n * o);
    for (let row = 0; row < n; row++) {
      const h = new Float64Array(R);
      for (let k = 0; k < R; k++) { let s = 0; for (let j = 0; j < i; j++) s += inp[row * i + j] * a[k * i + j]; h[k] = s; }
      for (let oo = 0; oo < o; oo++) {
        let s = 0;
        for (let j = 0; j < i; j++) s += inp[row * i + j] * w[oo * i + j];
        let l = 0;
        for (let k = 0; k < R; k++) l += h[k] * b[oo * R + k];
        y[row * o + oo] = s + SCALING * l;
      }
    }
    return y;
  };
  const y1 = lin(x, N, IN, MID, w1, a1, b1).map(Math.tanh);
  const y2 = lin(y1, N, MID, OUT, w2, a2, b2);
  let L = 0;
  for (let i = 0; i < y2.length; i++) L += y2[i] * r[i];
  return L;
}

for (const backend of ['wasm', 'cpu'] as const) {
  test(`${backend}: LoRA gradients through NF4 layers match float64 central differences (rel < 1e-3)`, async () => {
    await initBackend(backend);
    const rng = new Rng(123);
    const opts = { quantType: 'nf4' as const, blockSize: 64, doubleQuant: true };
    const W1 = QuantizedWeight.fromHost({ shape: [MID, IN], data: randn(rng, MID * IN) }, opts);
    const W2 = QuantizedWeight.fromHost({ shape: [OUT, MID], data: randn(rng, OUT * MID) }, opts);
    const l1 = new LoraLayer('l1', IN, MID, R, SCALING, 0, { A: randn(rng, R * IN, 0.1), B: randn(rng, MID * R, 0.1) });
    const l2 = new LoraLayer('l2', MID, OUT, R, SCALING, 0, { A: randn(rng, R * MID, 0.1), B: randn(rng, OUT * R, 0.1) });
    const xData = randn(rng, N * IN), rData = randn(rng, N * OUT);
    const x = tf.tensor2d(xData, [N, IN]), Rt = tf.tensor2d(rData, [N, OUT]);
    const vars = [l1.A, l1.B, l2.A, l2.B];
    const { grads } = tf.variableGrads(() => {
      const h = tf.tanh(tf.add(frozenLinear(x, W1), l1.delta(x))) as tf.Tensor2D;
      const y = tf.add(frozenLinear(h, W2), l2.delta(h)) as tf.Tensor2D;
      return tf.sum(tf.mul(y, Rt)) as tf.Scalar;
    }, vars);

    // Finite differences use the dequantized NF4 weights: the same function the layer computes.
    const f64 = (a: ArrayLike<number>) => Float64Array.from(a);
    const host = {
      x: f64(xData), w1: f64(W1.dequantizeToHost()), w2: f64(W2.dequantizeToHost()), r: f64(rData),
      a1: f64(l1.A.dataSync()), b1: f64(l1.B.dataSync()), a2: f64(l2.A.dataSync()), b2: f64(l2.B.dataSync()),
    };
    const L = () => hostLoss(host.x, host.w1, host.a1, host.b1, host.w2, host.a2, host.b2, host.r);
    const eps = 1e-6;
    const check = (label: string, param: Float64Array, g: Float32Array) => {
      let num = 0, den = 0;
      for (let i = 0; i < param.length; i++) {
        const keep = param[i];
        param[i] = keep + eps; const up = L();
        param[i] = keep - eps; const down = L();
        param[i] = keep;
        const fd = (up - down) / (2 * eps);
        num += (g[i] - fd) ** 2;
        den += fd ** 2;
      }
      const rel = Math.sqrt(num / den);
      console.log(`# ${backend}: ${label} relative error ${rel.toExponential(2)} over ${param.length} entries`);
      assert.ok(rel < 1e-3, `${label}: relative error ${rel}`);
    };
    check('dL/dA1', host.a1, grads[l1.A.name].dataSync() as Float32Array);
    check('dL/dB1', host.b1, grads[l1.B.name].dataSync() as Float32Array);
    check('dL/dA2', host.a2, grads[l2.A.name].dataSync() as Float32Array);
    check('dL/dB2', host.b2, grads[l2.B.name].dataSync() as Float32Array);
    tf.dispose([x, Rt, ...Object.values(grads)]);
    [W1, W2, l1, l2].forEach((t) => t.dispose());
  });
}
