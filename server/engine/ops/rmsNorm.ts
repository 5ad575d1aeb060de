// RMSNorm (Zhang & Sennrich 2019) as one fused kernel each way:
//   y = x * r * w,  r = 1 / sqrt(mean(x^2) + eps) per row,
//   dx = r * g - x * (r^3 / C) * sum(g * x),  g = dy * w;   dw = sum over rows of dy * x * r.
// On the wasm heap the loops run as SIMD (../kernels/wasmRmsNorm.ts); the JavaScript ones
// here serve the cpu backend and odd row lengths. The composite form (five tfjs kernels
// forward, about fifteen backward) stays for backends without the host kernel.
import { tf } from '../tf';
import { customGrad, fusedHere, registerHostKernel, runFused } from './hostKernel';
import { rmsNormGradSimd, rmsNormSimd } from '../kernels/wasmRmsNorm';

export const RMS_NORM = 'QloraRmsNorm';
export const RMS_NORM_GRAD = 'QloraRmsNormGrad';

registerHostKernel({
  name: RMS_NORM,
  inputs: ['x', 'weight'],
  outputShapes: (s) => [s[0]],
  wasmSimd: ([x, w], [shape], { eps }, [y]) => rmsNormSimd(x, w, y, shape[shape.length - 1], eps),
  compute: ([x, w], [shape], { eps }, [y]) => {
    const C = shape[shape.length - 1], rows = x.length / C;
    for (let r = 0; r < rows; r++) {
      const o = r * C;
      let ss = 0;
      for (let j = 0; j < C; j++) ss += x[o + j] * x[o + j];
      const inv = 1 / Math.sqrt(ss / C + eps);
      for (let j = 0; j < C; j++) y[o + j] = x[o + j] * inv * w[j];
    }
  },
});

registerHostKernel({
  name: RMS_NORM_GRAD,
  inputs: ['dy', 'x', 'weight'],
  outputShapes: (s) => [s[1], s[2]],
  wasmSimd: ([dy, x, w], [, shape], { eps }, [dx, dw]) => rmsNormGradSimd(dy, x, w, dx, dw, shape[shape.length - 1], eps),
  compute: ([dy, x, w], [, shape], { eps }, [dx, dw]) => {
    const C = shape[shape.length - 1], rows = x.length / C;
    const acc = new Float64Array(C);
    for (let r = 0; r < rows; r++) {
      const o = r * C;
      let ss = 0, gx = 0;
      for (let j = 0; j < C; j++) { ss += x[o + j] * x[o + j]; gx += dy[o + j] * w[j] * x[o + j]; }
      const inv = 1 / Math.sqrt(ss / C + eps);
      const k = (inv * inv * inv * gx) / C;
      for (let j = 0; j < C; j++) {
        dx[o + j] = inv * dy[o + j] * w[j] - k * x[o + j];
        acc[j] += dy[o + j] * x[o + j] * inv;
      }
    }
    for (let j = 0; j < C; j++) dw[j] = acc[j];
  },
});

/** The same math in tfjs ops (for backends without the kernel, and as the tests' reference). */
export function rmsNormComposite(x: tf.Tensor2D, weight: tf.Tensor1D, eps: number): tf.Tensor2D {
  const ms = tf.mean(tf.square(x), -1, true); // (N, 1)
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(ms, eps))), weight);
}

/** RMSNorm over the last axis: x (N, C), weight (C). Differentiable in both. */
export function rmsNorm(x: tf.Tensor2D, weight: tf.Tensor1D, eps: number): tf.Tensor2D {
  if (!fusedHere(RMS_NORM)) return rmsNormComposite(x, weight, eps);
  const op = customGrad<tf.Tensor2D>((xIn: tf.Tensor, wIn: tf.Tensor, save: (t: tf.Tensor[]) => void) => {
    save([xIn, wIn]);
    return {
      value: runFused<tf.Tensor2D>(RMS_NORM, { x: xIn, weight: wIn }, { eps }),
      gradFunc: (dy, [xs, ws]) => runFused<tf.Tensor[]>(RMS_NORM_GRAD, { dy, x: xs, weight: ws }, { eps }),
    };
  });
  return op(x, weight);
}
