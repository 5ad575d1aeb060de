// Incremental decoding with a key/value cache: each block's rotated keys and its values
// for the positions seen so far are kept, so a new token runs one position through the
// model (its projections, and attention over the cached keys) instead of the whole
// window. Built from the model's own pieces (LlamaModel.decoderPieces), so the weights,
// adapters, biases and rotary tables are exactly those of forward(). Batch size 1.
import { tf } from '../tf';
import { applyRope, attention, mergeHeads, repeatKv, splitHeads } from './layers';
import type { DecoderPieces, LlamaModel } from './llama';

export class KvCache {
  private readonly pieces: DecoderPieces;
  /** Per block: (1, nkv, length, hs) rotated keys and values; undefined while empty. */
  private keys: Array<tf.Tensor4D | undefined>;
  private values: Array<tf.Tensor4D | undefined>;
  /** Positions held (the next token's position). */
  length = 0;

  constructor(private readonly model: LlamaModel) {
    this.pieces = model.decoderPieces();
    this.keys = new Array(model.config.numLayers).fill(undefined);
    this.values = new Array(model.config.numLayers).fill(undefined);
  }

  /** Positions the cache can still take before it reaches the model's context. */
  get room(): number {
    return this.model.config.maxPositionEmbeddings - this.length;
  }

  /**
   * Runs `ids` at positions length..length+T-1 attending to everything cached, appends
   * their keys and values, and returns the logits of the last of them: (1, V).
   */
  step(ids: number[]): tf.Tensor2D {
    const c = this.model.config;
    const T = ids.length;
    if (T === 0) throw new Error('KvCache.step needs at least one token');
    if (T > this.room) {
      throw new Error(`${this.length} cached positions + ${T} new ones exceed the model's context of ${c.maxPositionEmbeddings}`);
    }
    const past = this.length;
    const p = this.pieces;
    const nRep = c.numHeads / c.numKvHeads;
    const logits = tf.tidy(() => {
      const [cos, sin] = p.rope(past, T);
      const mask = offsetCausalMask(T, past);
      let x = p.embed(tf.tensor1d(ids, 'int32')); // (T, C)
      for (let l = 0; l < c.numLayers; l++) {
        const h = p.inputNorm(l, x);
        const q = applyRope(splitHeads(p.linear(l, 'q_proj', h), 1, T, c.numHeads, c.headDim), cos, sin);
        const k = applyRope(splitHeads(p.linear(l, 'k_proj', h), 1, T, c.numKvHeads, c.headDim), cos, sin);
        const v = splitHeads(p.linear(l, 'v_proj', h), 1, T, c.numKvHeads, c.headDim);
        const keys = this.append(this.keys, l, k);
        const values = this.append(this.values, l, v);
        const y = attention(q, repeatKv(keys, nRep), repeatKv(values, nRep), mask); // (1, nh, T, hs)
        x = tf.add(x, p.linear(l, 'o_proj', mergeHeads(y)));
        x = tf.add(x, p.mlp(l, p.postNorm(l, x)));
      }
      // Only the last position is sampled from: the head runs on one row, not T (a prompt
      // of T tokens at a 152K vocabulary would otherwise cost T x V floats).
      return p.logits(tf.slice(x, [T - 1, 0], [1, -1]));
    });
    this.length += T;
    return logits;
  }

  /** Cached tensor of block l extended by `fresh` (kept beyond the step's tidy); the old one is freed. */
  private append(store: Array<tf.Tensor4D | undefined>, l: number, fresh: tf.Tensor4D): tf.Tensor4D {
    const old = store[l];
    const next = old ? tf.concat([old, fresh], 2) : fresh;
    tf.keep(next);
    old?.dispose();
    store[l] = next;
    return next;
  }

  /** Forgets every position (the tensors are freed). */
  reset(): void {
    for (const t of [...this.keys, ...this.values]) t?.dispose();
    this.keys.fill(undefined);
    this.values.fill(undefined);
    this.length = 0;
  }

  dispose(): void {
    this.reset();
  }
}

/**
 * Additive mask (T, past + T) for T new queries at positions past..past+T-1 over all keys:
 * query i sees keys 0..past+i. A single new token sees everything: a zero scalar.
 */
function offsetCausalMask(T: number, past: number): tf.Tensor {
  if (T === 1) return tf.scalar(0);
  const S = past + T;
  const m = new Float32Array(T * S);
  for (let i = 0; i < T; i++) for (let j = past + i + 1; j < S; j++) m[i * S + j] = -1e9;
  return tf.tensor2d(m, [T, S]);
}
