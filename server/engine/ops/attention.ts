// Scaled dot-product attention, softmax(q k^T / sqrt(hs) + mask) v, with its own gradient
// as one native call each way where the native provider runs on wasm
// (kernels/nativeAttention.ts); elsewhere two products around the fused masked softmax.
// Shapes: q, k, v (B, nh, T, hs); the additive mask (T, T) or (B, 1, T, T).
import { tf } from '../tf';
import { transposesAreFree } from '../kernels/nativeBatchMatMul';
import { ATTENTION, ATTENTION_GRAD } from '../kernels/nativeAttention';
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

/** q, k, v of one shape and a (T, T) or (B, 1, T, T) float mask: a training pass, not one decoding step against a KV cache. */
function selfAttentionShapes(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask: tf.Tensor): boolean {
  const [B, , T] = q.shape, m = mask.shape;
  const same = (t: tf.Tensor4D) => t.shape.every((d, i) => d === q.shape[i]);
  const maskFits = m.length === 2 ? m[0] === T && m[1] === T : m.length === 4 && m[0] === B && m[1] === 1 && m[2] === T && m[3] === T;
  return same(k) && same(v) && maskFits && mask.dtype === 'float32';
}

/** (B, nh, T, hs); differentiable in q, k and v (the mask is a constant). */
export function attention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask: tf.Tensor): tf.Tensor4D {
  if (!attentionRunsNative() || !selfAttentionShapes(q, k, v, mask)) return attentionComposite(q, k, v, mask);
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
