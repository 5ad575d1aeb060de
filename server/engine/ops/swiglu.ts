// The SwiGLU gate of the Llama MLP (Shazeer 2020), y = silu(g) * u with
// silu(g) = g * sigmoid(g), as one kernel each way instead of sigmoid, mul, mul and a
// backward of about eight kernels:
//   du = dy * silu(g),  dg = dy * u * s * (1 + g * (1 - s)),  s = sigmoid(g).
import { tf } from '../tf';
import { customGrad, fusedHere, registerHostKernel, runFused } from './hostKernel';

export const SWIGLU = 'QloraSwiGlu';
export const SWIGLU_GRAD = 'QloraSwiGluGrad';

registerHostKernel({
  name: SWIGLU,
  inputs: ['gate', 'up'],
  outputShapes: (s) => [s[0]],
  compute: ([g, u], shapes, _a, [y]) => {
    sameShape(shapes);
    for (let i = 0; i < g.length; i++) y[i] = (g[i] / (1 + Math.exp(-g[i]))) * u[i];
  },
});

registerHostKernel({
  name: SWIGLU_GRAD,
  inputs: ['dy', 'gate', 'up'],
  outputShapes: (s) => [s[1], s[2]],
  compute: ([dy, g, u], _s, _a, [dg, du]) => {
    for (let i = 0; i < g.length; i++) {
      const s = 1 / (1 + Math.exp(-g[i]));
      du[i] = dy[i] * g[i] * s;
      dg[i] = dy[i] * u[i] * s * (1 + g[i] * (1 - s));
    }
  },
});

function sameShape([a, b]: number[][]): void {
  if (a.length !== b.length || a.some((d, i) => d !== b[i])) throw new Error(`${SWIGLU}: gate [${a}] and up [${b}] differ in shape`);
}

/** The same math in tfjs ops. */
export function swigluComposite(gate: tf.Tensor2D, up: tf.Tensor2D): tf.Tensor2D {
  return tf.mul(tf.mul(gate, tf.sigmoid(gate)), up);
}

/** silu(gate) * up, both (N, H). Differentiable in both. */
export function swiglu(gate: tf.Tensor2D, up: tf.Tensor2D): tf.Tensor2D {
  if (!fusedHere(SWIGLU)) return swigluComposite(gate, up);
  const op = customGrad<tf.Tensor2D>((g: tf.Tensor, u: tf.Tensor, save: (t: tf.Tensor[]) => void) => {
    save([g, u]);
    return {
      value: runFused<tf.Tensor2D>(SWIGLU, { gate: g, up: u }),
      gradFunc: (dy, [gs, us]) => runFused<tf.Tensor[]>(SWIGLU_GRAD, { dy, gate: gs, up: us }),
    };
  });
  return op(gate, up);
}
