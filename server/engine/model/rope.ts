// Rotary embedding frequencies, with the position scalings of transformers'
// modeling_rope_utils.py: `linear` (positions / factor) and `llama3` (Llama 3.1/3.2:
// wavelengths longer than original_max_position_embeddings / low_freq_factor are slowed by
// `factor`, those shorter than original / high_freq_factor are kept, and the band between
// is interpolated). Both leave the attention scale at 1.
import type { LlamaConfig } from './config';

/** inv_freq[i] = 1 / theta^(2i / headDim), scaled as config.ropeScaling says; headDim / 2 values. */
export function ropeInvFreq(c: Pick<LlamaConfig, 'headDim' | 'ropeTheta' | 'ropeScaling'>): Float64Array {
  const half = c.headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.pow(c.ropeTheta, (2 * i) / c.headDim);
  const s = c.ropeScaling;
  if (!s) return inv;
  if (s.type === 'linear') return inv.map((f) => f / s.factor);
  const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
  const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
  return inv.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highWavelen) return f; // high frequencies: unchanged
    if (wavelen > lowWavelen) return f / s.factor; // low frequencies: slowed by factor
    const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    return (1 - smooth) * (f / s.factor) + smooth * f;
  });
}

/** cos/sin tables for positions 0..T-1 in the rotate_half layout: (T, headDim) each. */
export function ropeTables(T: number, headDim: number, invFreq: Float64Array): { cos: Float32Array; sin: Float32Array } {
  const half = headDim / 2;
  const cos = new Float32Array(T * headDim);
  const sin = new Float32Array(T * headDim);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < half; i++) {
      const a = t * invFreq[i];
      cos[t * headDim + i] = cos[t * headDim + i + half] = Math.cos(a);
      sin[t * headDim + i] = sin[t * headDim + i + half] = Math.sin(a);
    }
  }
  return { cos, sin };
}
