// Inverted dropout with a counter-based mask: element i of a mask drawn for `seed` is kept
// iff a 32-bit hash of (seed, i) is at or above rate * 2^32, and kept values are scaled by
// 1 / (1 - rate), so the expectation is x. The same (seed, shape) always gives the same
// mask, on every backend, which a checkpointed block's recompute relies on; and the
// gradient is the same op on dy (dy * mask).
//
// Why not tf.dropout: it draws through tf.randomUniform, which runs seedrandom's generator
// in JavaScript, one call per value; on SmolLM2-135M's real shape (LoRA dropout on all
// seven projections' inputs, 30 blocks, forward and recompute) that took about 0.65 s a
// step of 4.3. On cpu and wasm this is one host kernel, a loop of integer multiplies that
// writes the output in place (no mask tensor, no copy); elsewhere a host mask times x.
import { tf } from '../tf';
import { customGrad, fusedHere, registerHostKernel, runFused } from './hostKernel';

export const DROPOUT = 'QloraDropout';

/** lowbias32 (C. Wellons' integer hash): every input bit affects every output bit. */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

/** The draw for (seed, rate): keep value i iff hash(i) >= threshold, scaled by `keep`. */
function draw(rate: number, seed: number): { s: number; threshold: number; keep: number } {
  if (!(rate >= 0 && rate < 1)) throw new Error(`dropout: rate must be in [0, 1), got ${rate}`);
  // P(kept) = 1 - threshold / 2^32 = 1 - rate (to 2^-32).
  return { s: mix(seed >>> 0), threshold: Math.floor(rate * 4294967296), keep: Math.fround(1 / (1 - rate)) };
}

const hashAt = (i: number, s: number) => mix((i ^ s) + Math.imul(i, 0x9e3779b9));

/** The mask's values, 0 or 1 / (1 - rate), for `n` elements. */
export function dropoutMask(n: number, rate: number, seed: number): Float32Array {
  const { s, threshold, keep } = draw(rate, seed);
  const mask = new Float32Array(n);
  for (let i = 0; i < n; i++) if (hashAt(i, s) >= threshold) mask[i] = keep;
  return mask;
}

registerHostKernel({
  name: DROPOUT,
  inputs: ['x'],
  outputShapes: (s) => [s[0]],
  compute: ([x], _s, { rate, seed }, [y]) => {
    const { s, threshold, keep } = draw(rate, seed);
    // x * 0, not 0: the same values as x * mask, signed zeros included.
    for (let i = 0; i < x.length; i++) y[i] = x[i] * (hashAt(i, s) >= threshold ? keep : 0);
  },
});

/** x * mask: differentiable in x (the gradient is dy * mask, the same op on dy). */
export function dropout<T extends tf.Tensor>(x: T, rate: number, seed: number): T {
  if (rate === 0) return x;
  const attrs = { rate, seed };
  if (!fusedHere(DROPOUT)) return tf.tidy(() => tf.mul(x, tf.tensor(dropoutMask(x.size, rate, seed), x.shape, 'float32'))) as T;
  const op = customGrad<T>((xIn: tf.Tensor) => ({
    value: runFused<T>(DROPOUT, { x: xIn }, attrs),
    gradFunc: (dy) => runFused<tf.Tensor>(DROPOUT, { x: dy }, attrs),
  }));
  return op(x);
}
