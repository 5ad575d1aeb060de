// Rotary position embedding (Su et al. 2021) in the rotate_half convention of Hugging
// Face's Llama, as one fused kernel instead of slice, slice, neg, concat, mul, mul, add:
//   y_i = x_i cos_i - x_{i+h} sin_i          (i < h = hs/2)
//   y_i = x_i cos_i + x_{i-h} sin_i          (i >= h)
// The map is a rotation per position, so its gradient is the same kernel with the angle
// negated (`inverse`): dx = R^T dy. cos and sin are tables, not differentiated. On the wasm
// heap the loop runs as SIMD (../kernels/wasmRope.ts); this one serves the cpu backend and
// odd head sizes.
import { tf } from '../tf';
import { customGrad, fusedHere, registerHostKernel, runFused } from './hostKernel';
import { ropeSimd } from '../kernels/wasmRope';

export const ROPE = 'QloraRope';

registerHostKernel({
  name: ROPE,
  inputs: ['x', 'cos', 'sin'],
  outputShapes: (s) => [s[0]],
  wasmSimd: ([x, cos, sin], [shape, tableShape], { inverse }, [y]) =>
    tableShape[0] === shape[2] && tableShape[1] === shape[3] && ropeSimd(x, cos, sin, y, shape[2], shape[3], inverse ? -1 : 1),
  compute: ([x, cos, sin], [shape, tableShape], { inverse }, [y]) => {
    const hs = shape[3], T = shape[2], half = hs >> 1;
    if (tableShape[0] !== T || tableShape[1] !== hs) throw new Error(`${ROPE}: tables are [${tableShape}], x needs [${T},${hs}]`);
    const sign = inverse ? -1 : 1;
    const rows = x.length / hs;
    for (let r = 0; r < rows; r++) {
      const o = r * hs, t = (r % T) * hs;
      for (let i = 0; i < half; i++) {
        const a = x[o + i], b = x[o + i + half];
        y[o + i] = a * cos[t + i] - sign * b * sin[t + i];
        y[o + i + half] = b * cos[t + i + half] + sign * a * sin[t + i + half];
      }
    }
  },
});

/** The same math in tfjs ops. */
export function ropeComposite(x: tf.Tensor4D, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor4D {
  const half = x.shape[3] / 2;
  const x1 = tf.slice(x, [0, 0, 0, 0], [-1, -1, -1, half]);
  const x2 = tf.slice(x, [0, 0, 0, half], [-1, -1, -1, half]);
  const rotated = tf.concat([tf.neg(x2), x1], 3);
  return tf.add(tf.mul(x, cos), tf.mul(rotated, sin));
}

/** x (B, h, T, hs), cos/sin (T, hs). Differentiable in x. */
export function applyRope(x: tf.Tensor4D, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor4D {
  if (x.shape[3] % 2 !== 0) throw new Error(`rotary embedding needs an even head size, got ${x.shape[3]}`);
  if (!fusedHere(ROPE)) return ropeComposite(x, cos, sin);
  // The tables are saved, not captured: tfjs disposes the forward pass's intermediates
  // (the per-call slices of the tables among them) before the gradients run.
  const op = customGrad<tf.Tensor4D>((xIn: tf.Tensor, save: (t: tf.Tensor[]) => void) => {
    save([cos, sin]);
    return {
      value: runFused<tf.Tensor4D>(ROPE, { x: xIn, cos, sin }, { inverse: 0 }),
      gradFunc: (dy, [c, s]) => runFused<tf.Tensor4D>(ROPE, { x: dy, cos: c, sin: s }, { inverse: 1 }),
    };
  });
  return op(x);
}
