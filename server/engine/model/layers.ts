// The pieces of a Llama block, each a few lines, as in the paper and in Hugging Face's
// modeling_llama.py. Shape legend: B batch, T time, C hidden size, nh query heads,
// nkv key/value heads, hs head size, N = B*T rows.
import { tf } from '../tf';
import { applyRope as fusedRope, attention as fusedAttention, rmsNorm as fusedRmsNorm } from '../ops';

/** RMSNorm: x / sqrt(mean(x^2) + eps) * weight, over the last axis. */
export function rmsNorm(x: tf.Tensor2D, weight: tf.Tensor1D, eps: number): tf.Tensor2D {
  return fusedRmsNorm(x, weight, eps); // one kernel each way where fused (ops/rmsNorm.ts)
}

/** x * cos + rotate_half(x) * sin, with rotate_half(x) = [-x2, x1]. x: (B, h, T, hs). */
export function applyRope(x: tf.Tensor4D, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor4D {
  return fusedRope(x, cos, sin); // one kernel each way where fused (ops/rope.ts)
}

/** (B*T, h*hs) -> (B, h, T, hs) */
export function splitHeads(x: tf.Tensor2D, B: number, T: number, h: number, hs: number): tf.Tensor4D {
  return tf.transpose(tf.reshape(x, [B, T, h, hs]), [0, 2, 1, 3]);
}

/** (B, h, T, hs) -> (B*T, h*hs) */
export function mergeHeads(x: tf.Tensor4D): tf.Tensor2D {
  const [B, h, T, hs] = x.shape;
  return tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [B * T, h * hs]);
}

/** Grouped-query attention: repeat each of nkv heads nh/nkv times, as HF's repeat_kv. */
export function repeatKv(x: tf.Tensor4D, nRep: number): tf.Tensor4D {
  if (nRep === 1) return x;
  const [B, nkv, T, hs] = x.shape;
  // nRep copies side by side, by concat, not tile: each copy is one contiguous (T * hs) run,
  // and wasm's Concat moves whole runs where its Tile indexes every element. Measured on
  // SmolLM2-135M's k and v (3 kv heads, 3 copies, T 256, hs 64): Tile 15.7 ms and 19.4 ms
  // with its gradient, Concat 0.73 and 1.6 ms; 1.5 s of a 5.9 s training step went to Tile.
  const one = tf.reshape(x, [B, nkv, 1, T * hs]);
  const repeated = tf.concat(Array.from({ length: nRep }, () => one), 2);
  return tf.reshape(repeated, [B, nkv * nRep, T, hs]);
}

/** Additive causal mask (T, T): 0 where key j <= query i, a large negative number above. */
export function causalMask(T: number): tf.Tensor2D {
  const m = new Float32Array(T * T);
  for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) m[i * T + j] = -1e9;
  return tf.tensor2d(m, [T, T]);
}

/**
 * The additive attention mask for a batch: causal (T, T), plus -1e9 on padded keys when a
 * key mask (B, T) of 1 (attend) / 0 (padding) is given, then (B, 1, T, T). Built once per
 * forward pass and shared by every layer.
 */
export function attentionMask(T: number, keyMask?: tf.Tensor2D): tf.Tensor {
  const causal = causalMask(T);
  if (!keyMask) return causal;
  const B = keyMask.shape[0];
  return tf.add(causal, tf.mul(tf.sub(1, tf.reshape(keyMask, [B, 1, 1, T])), -1e9));
}

/** Scaled dot-product attention; q, k, v: (B, nh, T, hs), mask from attentionMask(). */
export function attention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask: tf.Tensor): tf.Tensor4D {
  return fusedAttention(q, k, v, mask); // (B, nh, T, hs); one native call each way where it runs (ops/attention.ts)
}

/** SiLU(x) = x * sigmoid(x), the gate of SwiGLU. */
export function silu(x: tf.Tensor2D): tf.Tensor2D {
  return tf.mul(x, tf.sigmoid(x));
}
