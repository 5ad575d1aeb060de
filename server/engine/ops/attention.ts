// Scaled dot-product attention, softmax(q k^T / sqrt(hs) + mask) v, with its own gradient
// as one native call each way where the native provider runs on wasm
// (kernels/nativeAttention.ts); elsewhere two products around the fused masked softmax.
// Shapes: q, k, v (B, nh, T, hs); the additive mask (T, T) or (B, 1, T, T).
import { tf } from '../tf';
import { transposesAreFree } from '../kernels/nativeBatchMatMul';
import { ATTENTION, ATTENTION_GRAD, selfAttentionShapesFit } from '../kernels/nativeAttention';
import { customGrad, fusedHere, runFused } from './hostKernel';
import { maskedSoftmax } from './maskedSoftmax';

/** The same math as the separate ops: two products around the (fused where it runs) masked softmax. */
export function attentionComposite(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask: tf.Tensor): tf.Tensor4D {
  const p = maskedSoftmax(tf.matMul(q, k, false, true), mask, 1 / Math.sqrt(q.shape[3])); // (B, nh, T, T)
  return tf.matMul(p, v) as tf.Tensor4D;
}

/** Whether attention runs as one native call each way here. */
export function attentionRunsNative(): boolean {
  return transposesAreFree() && fusedHere(ATTENTION);
}

/** (B, nh, T, hs); differentiable in q, k and v (the mask is a constant). */
export function attention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask: tf.Tensor): tf.Tensor4D {
  if (!attentionRunsNative() || mask.dtype !== 'float32' || !selfAttentionShapesFit({ q: q.shape, k: k.shape, v: v.shape, mask: mask.shape })) {
    return attentionComposite(q, k, v, mask);
  }
  const scale = 1 / Math.sqrt(q.shape[3]);
  const op = customGrad<tf.Tensor4D>((qi: tf.Tensor, ki: tf.Tensor, vi: tf.Tensor, save: (t: tf.Tensor[]) => void) => {
    // Nothing (B, nh, T, T) is kept: the backward call recomputes the probabilities. The
    // mask is saved too, as the forward pass's tidy frees a mask built for one batch.
    save([qi, ki, vi, mask]);
    return {
      value: runFused<tf.Tensor4D>(ATTENTION, { q: qi, k: ki, v: vi, mask }, { scale }),
      gradFunc: (dy, [qs, ks, vs, ms]) => runFused<tf.Tensor[]>(ATTENTION_GRAD, { dy, q: qs, k: ks, v: vs, mask: ms }, { scale }),
    };
  });
  return op(q, k, v);
}
