// The output head and the cross-entropy fused into one op over vocabulary chunks, so the
// (N, V) fp32 logits never exist: with V = 128256 (Llama 3) or 151936 (Qwen2) they would
// be 0.5-0.6 MB per token, several times over on the tape. Legend: N rows (B*T), C hidden
// size, V vocabulary, v one chunk of it, W the head (V, C) in a FrozenTable.
//
//   z = h W^T,  lse_n = log sum_j exp(z_nj),  loss = sum_n w_n (lse_n - z_n,t_n) / max(sum w, 1)
//
// Forward: an online log-sum-exp over chunks (running max m and sum s per row), each chunk
// dequantized from the table, multiplied, folded in and freed. The target logit is h . W[t]
// from the gathered target rows. Backward (recomputed, nothing of the forward kept but h
// and lse): dh = sum_chunks coef * softmax_chunk W_chunk - coef * W[t], coef_n = dy w_n / den.
// Products are plain (W_chunk stays in its stored (v, C) layout): z^T = W_c h^T is (v, N),
// and the backward transposes the small (v, N) probabilities instead of the weights.
// Where the native provider runs, each chunk is one native call each way instead
// (kernels/nativeLogSumExp.ts: the transposes taken by the products, the exps threaded).
import { tf } from '../tf';
import { transposesAreFree } from '../kernels/nativeBatchMatMul';
import { LSE_CHUNK, LSE_CHUNK_GRAD } from '../kernels/nativeLogSumExp';
import { fusedHere, runFused } from '../ops/hostKernel';
import type { FrozenTable } from './frozenTable';

/** Whether each vocabulary chunk runs as one native call each way here. */
export function lseChunkRunsNative(): boolean {
  return transposesAreFree() && fusedHere(LSE_CHUNK);
}

/** Vocabulary rows per chunk: (N, v) fp32 scores plus a (v, C) dequantized head slice. */
export const DEFAULT_VOCAB_CHUNK = 4096;

/**
 * Mean weighted negative log-likelihood of `targets` under logits h W^T, never holding more
 * than one vocabulary chunk of logits. Differentiable in h only (the head is frozen).
 * h: (N, C); targets: N ids (host); weights: (N,) of 0/1 (or any non-negative weight).
 */
export function chunkedLinearCrossEntropy(h: tf.Tensor2D, head: FrozenTable, targets: Int32Array,
  weights: tf.Tensor1D, vocabChunk = DEFAULT_VOCAB_CHUNK): tf.Scalar {
  const [N, C] = h.shape;
  if (C !== head.cols) throw new Error(`chunkedLinearCrossEntropy: hidden size ${C} but the head has ${head.cols} columns`);
  if (targets.length !== N || weights.shape[0] !== N) {
    throw new Error(`chunkedLinearCrossEntropy: ${N} rows but ${targets.length} targets and ${weights.shape[0]} weights`);
  }
  const chunk = Math.max(1, Math.floor(vocabChunk));
  const V = head.rows;

  const op = tf.customGrad(((hIn: tf.Tensor2D, save: tf.GradSaveFunc) => {
    const lse = logSumExp(hIn, head, V, chunk); // (1, N)
    const loss = tf.tidy(() => {
      const picked = tf.sum(tf.mul(hIn, head.gather(targets)), 1); // (N,) target logits
      const nll = tf.sub(tf.reshape(lse, [N]), picked);
      return tf.div(tf.sum(tf.mul(nll, weights)), tf.maximum(tf.sum(weights), 1)) as tf.Scalar;
    });
    save([hIn, lse]);
    lse.dispose();
    return {
      value: loss,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [hS, lseS] = saved as [tf.Tensor2D, tf.Tensor2D];
        const coef = tf.tidy(() => tf.mul(tf.div(weights, tf.maximum(tf.sum(weights), 1)), dy)); // (N,)
        const coefRow = tf.reshape(coef, [1, N]);
        let dh = tf.tidy(() => tf.neg(tf.mul(head.gather(targets), tf.reshape(coef, [N, 1])))) as tf.Tensor2D;
        if (lseChunkRunsNative()) {
          for (let v0 = 0; v0 < V; v0 += chunk) {
            const next = tf.tidy(() => runFused<tf.Tensor2D>(LSE_CHUNK_GRAD,
              { h: hS, w: head.rows2d(v0, Math.min(V, v0 + chunk)), lse: lseS, coef: coefRow, dh }));
            dh.dispose();
            dh = next;
          }
          tf.dispose([coef, coefRow]);
          return dh;
        }
        const hT = tf.transpose(hS); // (C, N), once
        for (let v0 = 0; v0 < V; v0 += chunk) {
          const next = tf.tidy(() => {
            const wc = head.rows2d(v0, Math.min(V, v0 + chunk)); // (v, C)
            const pT = tf.mul(tf.exp(tf.sub(tf.matMul(wc, hT), lseS)), coefRow); // (v, N)
            return tf.add(dh, tf.matMul(tf.transpose(pT), wc)) as tf.Tensor2D; // (N, C)
          });
          dh.dispose();
          dh = next;
        }
        tf.dispose([coef, hT, coefRow]);
        return dh;
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(h) as tf.Scalar;
}

/** log sum_j exp(h W_j) per row as (1, N), one vocabulary chunk at a time. */
function logSumExp(h: tf.Tensor2D, head: FrozenTable, V: number, chunk: number): tf.Tensor2D {
  const N = h.shape[0];
  const native = lseChunkRunsNative();
  const hT = native ? undefined : tf.transpose(h); // (C, N)
  let m = tf.fill([1, N], -Infinity) as tf.Tensor2D;
  let s = tf.zeros([1, N]) as tf.Tensor2D;
  for (let v0 = 0; v0 < V; v0 += chunk) {
    const [m2, s2] = tf.tidy(() => {
      if (native) return runFused<tf.Tensor2D[]>(LSE_CHUNK, { h, w: head.rows2d(v0, Math.min(V, v0 + chunk)), m, s });
      const wc = head.rows2d(v0, Math.min(V, v0 + chunk));
      const zT = tf.matMul(wc, hT!); // (v, N)
      const mNew = tf.maximum(m, tf.max(zT, 0, true));
      const sNew = tf.add(tf.mul(s, tf.exp(tf.sub(m, mNew))), tf.sum(tf.exp(tf.sub(zT, mNew)), 0, true));
      return [mNew, sNew] as tf.Tensor2D[];
    });
    tf.dispose([m, s]);
    m = m2;
    s = s2;
  }
  const lse = tf.tidy(() => tf.add(m, tf.log(s))) as tf.Tensor2D;
  tf.dispose([m, s]);
  hT?.dispose();
  return lse;
}

/** Logits (N, V) by the same chunked products, for generation and tests (not the loss path). */
export function chunkedLogits(h: tf.Tensor2D, head: FrozenTable, vocabChunk = DEFAULT_VOCAB_CHUNK): tf.Tensor2D {
  return tf.tidy(() => {
    const hT = tf.transpose(h);
    const parts: tf.Tensor2D[] = [];
    for (let v0 = 0; v0 < head.rows; v0 += vocabChunk) {
      parts.push(tf.matMul(head.rows2d(v0, Math.min(head.rows, v0 + vocabChunk)), hT)); // (v, N)
    }
    return tf.transpose(parts.length === 1 ? parts[0] : tf.concat(parts, 0)) as tf.Tensor2D; // (N, V)
  });
}
