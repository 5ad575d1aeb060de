// The SwiGLU gate of the Llama MLP (Shazeer 2020), y = silu(g) * u with
// silu(g) = g * sigmoid(g), as one kernel each way instead of sigmoid, mul, mul and a
// backward of about eight kernels:
//   du = dy * silu(g),  dg = dy * u * s * (1 + g * (1 - s)),  s = sigmoid(g).
// On the wasm heap the backward runs as a SIMD loop (../kernels/wasmSwiglu.ts), and the
// forward too where the native provider does not; else the provider's graphs, else the
// JavaScript loops.
import { tf } from '../tf';
import { customGrad, fusedHere, registerHostKernel, runFused } from './hostKernel';
import { fastExp } from './fastExp';
import { FLOAT } from '../kernels/native/onnxGraph';
import { swigluGradSimd, swigluSimd } from '../kernels/wasmSwiglu';
import { activeNativeProvider } from '../kernels/nativeBatchMatMul';

export const SWIGLU = 'QloraSwiGlu';
export const SWIGLU_GRAD = 'QloraSwiGluGrad';

registerHostKernel({
  name: SWIGLU,
  inputs: ['gate', 'up'],
  outputShapes: (s) => [s[0]],
  // Where the native provider runs, its QuickGelu graph is quicker than this loop (0.25-0.33
  // against 0.43-0.49 ms at 256 x 1376); the backward's SIMD loop is the quicker one.
  wasmSimd: ([g, u], shapes, _a, [y]) => { sameShape(shapes); return !activeNativeProvider() && swigluSimd(g, u, y); },
  compute: ([g, u], shapes, _a, [y]) => {
    sameShape(shapes);
    for (let i = 0; i < g.length; i++) y[i] = (g[i] / (1 + fastExp(-g[i]))) * u[i];
  },
  native: (p, [g, u], shapes, _a, [y]) => {
    sameShape(shapes);
    const n = [g.length];
    p.runGraph('swiglu', () => ({
      nodes: [silu, { opType: 'Mul', inputs: ['silu', 'u'], outputs: ['y'] }],
      inputs: [flat('g'), flat('u')],
      outputs: [flat('y')],
    }), { g: [g, n], u: [u, n] }, { y: [y, n] }, { singleThread: true });
  },
});

const flat = (name: string) => ({ name, elemType: FLOAT, dims: ['n'] });
// silu(g) = g sigmoid(g) as one vectorized node (com.microsoft QuickGelu, x sigmoid(alpha x)):
// Sigmoid then Mul, two passes and an intermediate, took several times as long.
const silu = { opType: 'QuickGelu', domain: 'com.microsoft', inputs: ['g'], outputs: ['silu'], attrs: [{ name: 'alpha', f: 1 }] };
const ONE = new Float32Array([1]);

registerHostKernel({
  name: SWIGLU_GRAD,
  inputs: ['dy', 'gate', 'up'],
  outputShapes: (s) => [s[1], s[2]],
  wasmSimd: ([dy, g, u], _s, _a, [dg, du]) => swigluGradSimd(dy, g, u, dg, du),
  compute: ([dy, g, u], _s, _a, [dg, du]) => {
    for (let i = 0; i < g.length; i++) {
      const s = 1 / (1 + fastExp(-g[i]));
      du[i] = dy[i] * g[i] * s;
      dg[i] = dy[i] * u[i] * s * (1 + g[i] * (1 - s));
    }
  },
  // 1 + g (1 - s) written as 1 + g - silu.
  native: (p, [dy, g, u], _s, _a, [dg, du]) => {
    const n = [g.length];
    p.runGraph('swigluGrad', () => ({
      nodes: [
        { opType: 'Sigmoid', inputs: ['g'], outputs: ['s'] },
        silu,
        { opType: 'Mul', inputs: ['dy', 'silu'], outputs: ['du'] },
        { opType: 'Sub', inputs: ['g', 'silu'], outputs: ['t1'] },
        { opType: 'Add', inputs: ['t1', 'one'], outputs: ['t2'] },
        { opType: 'Mul', inputs: ['s', 't2'], outputs: ['t3'] },
        { opType: 'Mul', inputs: ['dy', 'u'], outputs: ['t4'] },
        { opType: 'Mul', inputs: ['t4', 't3'], outputs: ['dg'] },
      ],
      inputs: [flat('dy'), flat('g'), flat('u'), { name: 'one', elemType: FLOAT, dims: [] }],
      outputs: [flat('dg'), flat('du')],
    }), { dy: [dy, n], g: [g, n], u: [u, n], one: [ONE, []] }, { dg: [dg, n], du: [du, n] }, { singleThread: true });
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
