// Inverted dropout with a counter-based mask: element i of a mask drawn for `seed` is kept
// iff a 32-bit hash of (seed, i) is at or above rate * 2^32, and kept values are scaled by
// 1 / (1 - rate), so the expectation is x. The same (seed, shape) always gives the same
// mask, on every backend, which a checkpointed block's recompute relies on.
//
// Why not tf.dropout: it draws through tf.randomUniform, which runs seedrandom's generator
// in JavaScript, one call per value; on SmolLM2-135M's real shape (LoRA dropout on all
// seven projections' inputs, 30 blocks, forward and recompute) that took about 0.65 s a
// step of 4.3. Here the mask is one typed-array loop of integer multiplies, then one mul.
import { tf } from '../tf';

/** lowbias32 (C. Wellons' integer hash): every input bit affects every output bit. */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

/** The mask's values, 0 or 1 / (1 - rate), for `n` elements. */
export function dropoutMask(n: number, rate: number, seed: number): Float32Array {
  if (!(rate >= 0 && rate < 1)) throw new Error(`dropout: rate must be in [0, 1), got ${rate}`);
  const mask = new Float32Array(n);
  const keep = Math.fround(1 / (1 - rate));
  // Kept iff hash >= threshold: P(kept) = 1 - threshold / 2^32 = 1 - rate (to 2^-32).
  const threshold = Math.floor(rate * 4294967296);
  const s = mix(seed >>> 0);
  for (let i = 0; i < n; i++) if (mix((i ^ s) + Math.imul(i, 0x9e3779b9)) >= threshold) mask[i] = keep;
  return mask;
}

/** x * mask: differentiable in x (the gradient is dy * mask). */
export function dropout<T extends tf.Tensor>(x: T, rate: number, seed: number): T {
  if (rate === 0) return x;
  return tf.tidy(() => tf.mul(x, tf.tensor(dropoutMask(x.size, rate, seed), x.shape, 'float32'))) as T;
}
