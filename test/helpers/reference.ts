// A plain float64 Llama forward pass, written loop by loop from the paper and Hugging
// Face's modeling_llama.py, to check the TensorFlow.js model against. Slow and obvious
// on purpose: no shared code with the engine beyond the config and weight names.
import type { LlamaConfig } from '../../server/engine/model/config';
import type { WeightMap } from '../../server/engine/formats/types';

type Mat = Float64Array<ArrayBuffer>;

function w(weights: WeightMap, name: string): Mat {
  const t = weights.get(name);
  if (!t) throw new Error(`reference: missing ${name}`);
  return Float64Array.from(t.data);
}

/** y[n, o] = sum_i x[n, i] W[o, i] (+ b[o]) */
function linear(x: Mat, N: number, W: Mat, out: number, inp: number, b?: Mat): Mat {
  const y = new Float64Array(N * out);
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < out; o++) {
      let s = b ? b[o] : 0;
      for (let i = 0; i < inp; i++) s += x[n * inp + i] * W[o * inp + i];
      y[n * out + o] = s;
    }
  }
  return y;
}

function rmsnorm(x: Mat, N: number, C: number, g: Mat, eps: number): Mat {
  const y = new Float64Array(N * C);
  for (let n = 0; n < N; n++) {
    let ss = 0;
    for (let i = 0; i < C; i++) ss += x[n * C + i] ** 2;
    const r = 1 / Math.sqrt(ss / C + eps);
    for (let i = 0; i < C; i++) y[n * C + i] = x[n * C + i] * r * g[i];
  }
  return y;
}

/**
 * The rotary frequency of pair i, with transformers' rope_scaling written out plainly:
 * linear divides by the factor; llama3 divides frequencies whose wavelength is above
 * original_max / low_freq_factor, keeps those below original_max / high_freq_factor, and
 * blends the two linearly in 1 / wavelength between.
 */
function ropeFrequency(c: LlamaConfig, i: number): number {
  const f = 1 / Math.pow(c.ropeTheta, (2 * i) / c.headDim);
  const s = c.ropeScaling;
  if (!s) return f;
  if (s.type === 'linear') return f / s.factor;
  const wavelen = 2 * Math.PI / f;
  if (wavelen < s.originalMaxPositionEmbeddings / s.highFreqFactor) return f;
  if (wavelen > s.originalMaxPositionEmbeddings / s.lowFreqFactor) return f / s.factor;
  const t = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
  return f / s.factor + t * (f - f / s.factor);
}

/** rotate_half rotary embedding in place on (T, h*hs) rows of one sequence. */
function rope(x: Mat, T: number, h: number, hs: number, cfg: LlamaConfig): void {
  const half = hs / 2;
  for (let t = 0; t < T; t++) {
    for (let head = 0; head < h; head++) {
      const base = t * h * hs + head * hs;
      for (let i = 0; i < half; i++) {
        const a = t * ropeFrequency(cfg, i);
        const c = Math.cos(a), s = Math.sin(a);
        const x1 = x[base + i], x2 = x[base + i + half];
        x[base + i] = x1 * c - x2 * s;
        x[base + i + half] = x2 * c + x1 * s;
      }
    }
  }
}

/** Logits (T, V) in float64 for one sequence of token ids. */
export function referenceLogits(c: LlamaConfig, weights: WeightMap, ids: number[]): Mat {
  const T = ids.length, C = c.hiddenSize, hs = c.headDim, nh = c.numHeads, nkv = c.numKvHeads;
  const emb = w(weights, 'model.embed_tokens.weight');
  let x = new Float64Array(T * C);
  for (let t = 0; t < T; t++) for (let i = 0; i < C; i++) x[t * C + i] = emb[ids[t] * C + i];
  for (let l = 0; l < c.numLayers; l++) {
    const p = (n: string) => w(weights, `model.layers.${l}.${n}`);
    const bias = (n: string) => (c.attentionBias ? p(`self_attn.${n}.bias`) : undefined);
    const xn = rmsnorm(x, T, C, p('input_layernorm.weight'), c.rmsNormEps);
    const q = linear(xn, T, p('self_attn.q_proj.weight'), nh * hs, C, bias('q_proj'));
    const k = linear(xn, T, p('self_attn.k_proj.weight'), nkv * hs, C, bias('k_proj'));
    const v = linear(xn, T, p('self_attn.v_proj.weight'), nkv * hs, C, bias('v_proj'));
    rope(q, T, nh, hs, c);
    rope(k, T, nkv, hs, c);
    const att = new Float64Array(T * nh * hs);
    for (let head = 0; head < nh; head++) {
      const kvh = Math.floor(head / (nh / nkv));
      for (let t = 0; t < T; t++) {
        const scores = new Float64Array(t + 1);
        let max = -Infinity;
        for (let j = 0; j <= t; j++) {
          let s = 0;
          for (let i = 0; i < hs; i++) s += q[t * nh * hs + head * hs + i] * k[j * nkv * hs + kvh * hs + i];
          scores[j] = s / Math.sqrt(hs);
          max = Math.max(max, scores[j]);
        }
        let sum = 0;
        for (let j = 0; j <= t; j++) { scores[j] = Math.exp(scores[j] - max); sum += scores[j]; }
        for (let i = 0; i < hs; i++) {
          let s = 0;
          for (let j = 0; j <= t; j++) s += (scores[j] / sum) * v[j * nkv * hs + kvh * hs + i];
          att[t * nh * hs + head * hs + i] = s;
        }
      }
    }
    const o = linear(att, T, p('self_attn.o_proj.weight'), C, nh * hs);
    for (let i = 0; i < x.length; i++) x[i] += o[i];
    const xn2 = rmsnorm(x, T, C, p('post_attention_layernorm.weight'), c.rmsNormEps);
    const H = c.intermediateSize;
    const g = linear(xn2, T, p('mlp.gate_proj.weight'), H, C);
    const u = linear(xn2, T, p('mlp.up_proj.weight'), H, C);
    for (let i = 0; i < g.length; i++) g[i] = (g[i] / (1 + Math.exp(-g[i]))) * u[i];
    const d = linear(g, T, p('mlp.down_proj.weight'), C, H);
    for (let i = 0; i < x.length; i++) x[i] += d[i];
  }
  x = rmsnorm(x, T, C, w(weights, 'model.norm.weight'), c.rmsNormEps);
  const head = c.tieWordEmbeddings ? emb : w(weights, 'lm_head.weight');
  return linear(x, T, head, c.vocabSize, C);
}

/** Mean NLL (nats) of predicting ids[t+1] from ids[..t], from float64 logits. */
export function referenceLoss(c: LlamaConfig, weights: WeightMap, ids: number[]): { loss: number; tokens: number } {
  const logits = referenceLogits(c, weights, ids);
  const V = c.vocabSize;
  let total = 0;
  for (let t = 0; t + 1 < ids.length; t++) {
    let max = -Infinity;
    for (let j = 0; j < V; j++) max = Math.max(max, logits[t * V + j]);
    let s = 0;
    for (let j = 0; j < V; j++) s += Math.exp(logits[t * V + j] - max);
    total += Math.log(s) + max - logits[t * V + ids[t + 1]];
  }
  return { loss: total / (ids.length - 1), tokens: ids.length - 1 };
}

/** A small random Llama config and weights (deterministic from `seed`), for tests. */
export function randomLlama(seed: number, over: Partial<LlamaConfig> = {}): { config: LlamaConfig; weights: WeightMap } {
  const config: LlamaConfig = {
    family: 'llama', vocabSize: 64, hiddenSize: 32, intermediateSize: 48, numLayers: 2, numHeads: 4, numKvHeads: 2,
    headDim: 8, maxPositionEmbeddings: 64, rmsNormEps: 1e-5, ropeTheta: 10000, tieWordEmbeddings: true,
    attentionBias: false, bosTokenId: 1, eosTokenId: 2, ...over,
  };
  let s = seed >>> 0;
  const rand = () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 4294967296 - 0.5; };
  const weights: WeightMap = new Map();
  const put = (name: string, shape: number[], scale: number, offset = 0) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = offset + scale * rand();
    weights.set(name, { shape, data });
  };
  const C = config.hiddenSize, hs = config.headDim;
  put('model.embed_tokens.weight', [config.vocabSize, C], 1);
  if (!config.tieWordEmbeddings) put('lm_head.weight', [config.vocabSize, C], 0.5);
  put('model.norm.weight', [C], 0.2, 1);
  for (let l = 0; l < config.numLayers; l++) {
    const p = `model.layers.${l}.`;
    put(`${p}input_layernorm.weight`, [C], 0.2, 1);
    put(`${p}post_attention_layernorm.weight`, [C], 0.2, 1);
    put(`${p}self_attn.q_proj.weight`, [config.numHeads * hs, C], 0.6);
    put(`${p}self_attn.k_proj.weight`, [config.numKvHeads * hs, C], 0.6);
    put(`${p}self_attn.v_proj.weight`, [config.numKvHeads * hs, C], 0.6);
    put(`${p}self_attn.o_proj.weight`, [C, config.numHeads * hs], 0.6);
    put(`${p}mlp.gate_proj.weight`, [config.intermediateSize, C], 0.6);
    put(`${p}mlp.up_proj.weight`, [config.intermediateSize, C], 0.6);
    put(`${p}mlp.down_proj.weight`, [C, config.intermediateSize], 0.5);
    if (config.attentionBias) {
      put(`${p}self_attn.q_proj.bias`, [config.numHeads * hs], 0.2);
      put(`${p}self_attn.k_proj.bias`, [config.numKvHeads * hs], 0.2);
      put(`${p}self_attn.v_proj.bias`, [config.numKvHeads * hs], 0.2);
    }
  }
  return { config, weights };
}
