// The attention softmax, p = softmax(scores * scale + mask) over the last axis, as one
// kernel instead of mul, add, and softmax's max, sub, exp, sum, div; its gradient
//   dscores = scale * p * (dp - sum(dp * p))
// is one kernel too, reading only p (saved) and dp. The mask is additive (0 or -1e9),
// shaped (T, T) or (B, 1, T, T) as layers.attentionMask builds it, and not differentiated.
import { tf } from '../tf';
import { customGrad, fusedHere, registerHostKernel, runFused } from './hostKernel';
import { fastExp } from './fastExp';
import { FLOAT } from '../kernels/native/onnxGraph';

export const MASKED_SOFTMAX = 'QloraMaskedSoftmax';
export const SOFTMAX_GRAD = 'QloraSoftmaxGrad';

registerHostKernel({
  name: MASKED_SOFTMAX,
  inputs: ['scores', 'mask'],
  outputShapes: (s) => [s[0]],
  compute: ([s, mask], [shape, maskShape], { scale }, [p]) => {
    const [B, H, Tq, Tk] = shape;
    const perBatch = maskShape.length === 4 ? maskShape[0] === B : false;
    if (maskShape[maskShape.length - 1] !== Tk || maskShape[maskShape.length - 2] !== Tq || (maskShape.length === 4 && maskShape[1] !== 1)) {
      throw new Error(`${MASKED_SOFTMAX}: mask [${maskShape}] does not fit scores [${shape}]`);
    }
    for (let b = 0; b < B; b++) {
      const mBase = perBatch ? b * Tq * Tk : 0;
      for (let h = 0; h < H; h++) {
        for (let q = 0; q < Tq; q++) {
          const o = ((b * H + h) * Tq + q) * Tk, m = mBase + q * Tk;
          let max = -Infinity;
          for (let k = 0; k < Tk; k++) { const v = s[o + k] * scale + mask[m + k]; p[o + k] = v; if (v > max) max = v; }
          let sum = 0;
          for (let k = 0; k < Tk; k++) { const e = fastExp(p[o + k] - max); p[o + k] = e; sum += e; }
          const inv = 1 / sum;
          for (let k = 0; k < Tk; k++) p[o + k] *= inv;
        }
      }
    }
  },
  native: (prov, [s, mask], [shape, maskShape], { scale }, [p]) => {
    const r = maskShape.length;
    prov.runGraph(`maskedSoftmax${r}`, () => ({
      nodes: [
        { opType: 'Mul', inputs: ['s', 'scale'], outputs: ['t'] },
        { opType: 'Add', inputs: ['t', 'mask'], outputs: ['u'] },
        { opType: 'Softmax', inputs: ['u'], outputs: ['p'], attrs: [{ name: 'axis', i: 3 }] },
      ],
      inputs: [dims4('s'), { name: 'mask', elemType: FLOAT, dims: r === 2 ? ['q', 'k'] : ['mb', 'one', 'q', 'k'] }, scalar('scale')],
      outputs: [dims4('p')],
    }), { s: [s, shape], mask: [mask, maskShape], scale: [new Float32Array([scale]), []] }, { p: [p, shape] });
  },
});

const dims4 = (name: string) => ({ name, elemType: FLOAT, dims: ['b', 'h', 'q', 'k'] });
const scalar = (name: string) => ({ name, elemType: FLOAT, dims: [] as string[] });

registerHostKernel({
  name: SOFTMAX_GRAD,
  inputs: ['dp', 'p'],
  outputShapes: (s) => [s[1]],
  compute: ([dp, p], [, shape], { scale }, [ds]) => {
    const Tk = shape[shape.length - 1], rows = p.length / Tk;
    for (let r = 0; r < rows; r++) {
      const o = r * Tk;
      let dot = 0;
      for (let k = 0; k < Tk; k++) dot += dp[o + k] * p[o + k];
      for (let k = 0; k < Tk; k++) ds[o + k] = scale * p[o + k] * (dp[o + k] - dot);
    }
  },
  // sum over the last axis as ReduceMean (axes an attribute in opset 17) times its length.
  native: (prov, [dp, p], [, shape], { scale }, [ds]) => {
    const rank = shape.length;
    prov.runGraph(`softmaxGrad${rank}`, () => ({
      nodes: [
        { opType: 'Mul', inputs: ['dp', 'p'], outputs: ['t'] },
        { opType: 'ReduceMean', inputs: ['t'], outputs: ['m'], attrs: [{ name: 'axes', ints: [rank - 1] }, { name: 'keepdims', i: 1 }] },
        { opType: 'Mul', inputs: ['m', 'len'], outputs: ['dot'] },
        { opType: 'Sub', inputs: ['dp', 'dot'], outputs: ['d'] },
        { opType: 'Mul', inputs: ['p', 'd'], outputs: ['e'] },
        { opType: 'Mul', inputs: ['e', 'scale'], outputs: ['ds'] },
      ],
      inputs: [{ name: 'dp', elemType: FLOAT, dims: shape.map((_, i) => `d${i}`) }, { name: 'p', elemType: FLOAT, dims: shape.map((_, i) => `d${i}`) },
        scalar('len'), scalar('scale')],
      outputs: [{ name: 'ds', elemType: FLOAT, dims: shape.map((_, i) => `d${i}`) }],
    }), { dp: [dp, shape], p: [p, shape], len: [new Float32Array([shape[rank - 1]]), []], scale: [new Float32Array([scale]), []] },
    { ds: [ds, shape] });
  },
});

/** The same math in tfjs ops. */
export function maskedSoftmaxComposite(scores: tf.Tensor4D, mask: tf.Tensor, scale: number): tf.Tensor4D {
  return tf.softmax(tf.add(tf.mul(scores, scale), mask)) as tf.Tensor4D;
}

/** softmax(scores * scale + mask), scores (B, h, Tq, Tk). Differentiable in scores. */
export function maskedSoftmax(scores: tf.Tensor4D, mask: tf.Tensor, scale: number): tf.Tensor4D {
  if (!fusedHere(MASKED_SOFTMAX) || (mask.rank !== 2 && mask.rank !== 4)) return maskedSoftmaxComposite(scores, mask, scale);
  const op = customGrad<tf.Tensor4D>((s: tf.Tensor, save: (t: tf.Tensor[]) => void) => {
    const p = runFused<tf.Tensor4D>(MASKED_SOFTMAX, { scores: s, mask }, { scale });
    save([p]);
    return {
      value: p,
      gradFunc: (dp, [ps]) => runFused<tf.Tensor4D>(SOFTMAX_GRAD, { dp, p: ps }, { scale }),
    };
  });
  return op(scores);
}
