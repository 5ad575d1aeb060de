// Autoregressive sampling: greedy at temperature 0, otherwise temperature + nucleus
// (top-p) sampling from a seeded RNG, so the same seed gives the same text. With the KV
// cache (the default) the prompt runs once and each new token runs one position; without
// it every token re-runs the whole window (kept as the reference the cache must equal).
import { tf } from './tf';
import type { LlamaModel } from './model/llama';
import { KvCache } from './model/kvCache';
import { Rng } from './rng';

export interface GenerateOptions {
  maxTokens: number;
  temperature: number;
  topP: number;
  seed: number;
  /** Stop at any of these ids: the tokenizer's whole EOS list (Llama 3.x has three), and BOS as llama2.c does. */
  stopIds: readonly number[];
  /** Keep past keys and values (default true). */
  kvCache?: boolean;
  /** Checked before each token: when aborted, generation throws the signal's reason. */
  signal?: AbortSignal;
  /** Each new id as it is chosen, with all chosen so far (for streaming). */
  onToken?: (id: number, ids: readonly number[]) => void;
}

/** The ids that follow `prompt` (prompt not included). */
export async function generateIds(model: LlamaModel, prompt: number[], opts: GenerateOptions): Promise<number[]> {
  if (prompt.length === 0) throw new Error('generate needs at least one prompt token (a BOS id where the model has one)');
  const rng = new Rng(opts.seed);
  const ctx = model.config.maxPositionEmbeddings;
  const seq = [...prompt];
  const out: number[] = [];
  const cache = opts.kvCache === false ? undefined : new KvCache(model);
  // Logits of the next position. Past the context the window slides, which moves every
  // position: the cache is rebuilt from the window, as the uncached path runs it.
  const nextLogits = (fresh: number[]): tf.Tensor2D => {
    const window = seq.slice(Math.max(0, seq.length - ctx));
    if (!cache) {
      return tf.tidy(() => {
        const logits = model.forward(tf.tensor2d(window, [1, window.length], 'int32'));
        return tf.slice(logits, [window.length - 1, 0], [1, -1]);
      });
    }
    if (cache.length > 0 && fresh.length <= cache.room) return cache.step(fresh);
    cache.reset();
    return cache.step(window);
  };
  try {
    let fresh = seq;
    for (let n = 0; n < opts.maxTokens; n++) {
      opts.signal?.throwIfAborted();
      const last = nextLogits(fresh);
      const logits = (await last.data()) as Float32Array; // async: webgpu cannot read synchronously in Node
      last.dispose();
      const next = opts.temperature === 0 ? argmax(logits) : sampleTopP(logits, opts.temperature, opts.topP, rng);
      if (opts.stopIds.includes(next)) break;
      seq.push(next);
      out.push(next);
      opts.onToken?.(next, out);
      fresh = [next];
    }
  } finally {
    cache?.dispose();
  }
  return out;
}

function argmax(a: Float32Array): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}

function sampleTopP(logits: Float32Array, temperature: number, topP: number, rng: Rng): number {
  let max = -Infinity;
  for (const l of logits) max = Math.max(max, l);
  const p = Array.from(logits, (l) => Math.exp((l - max) / temperature));
  const sum = p.reduce((a, b) => a + b, 0);
  const order = p.map((_, i) => i).sort((a, b) => p[b] - p[a]);
  let mass = 0, cut = order.length;
  for (let k = 0; k < order.length; k++) {
    mass += p[order[k]] / sum;
    if (mass >= topP) { cut = k + 1; break; }
  }
  const kept = order.slice(0, cut);
  const keptMass = kept.reduce((a, i) => a + p[i], 0);
  let u = rng.next() * keptMass;
  for (const i of kept) {
    u -= p[i];
    if (u <= 0) return i;
  }
  return kept[kept.length - 1];
}
