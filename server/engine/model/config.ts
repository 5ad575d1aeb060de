// The architecture of a Llama-family causal language model, in the engine's own names.
// Filled from a Hugging Face config.json (formats/hfConfig.ts) or a llama2.c header
// (formats/llama2c.ts); everything downstream reads only this.

export type ModelFamily = 'llama' | 'mistral' | 'qwen2';

/**
 * Rotary position scaling, as transformers' rope_scaling (rope.ts computes the frequencies):
 * `linear` divides positions by `factor`; `llama3` (Llama 3.1/3.2) divides the low
 * frequencies by `factor`, keeps the high ones, and interpolates between the two bands.
 */
export type RopeScaling =
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number };

export interface LlamaConfig {
  family: ModelFamily;
  vocabSize: number;
  hiddenSize: number; // C
  intermediateSize: number; // the SwiGLU hidden width
  numLayers: number;
  numHeads: number; // nh
  numKvHeads: number; // nkv (grouped-query attention when < nh)
  headDim: number; // hs, usually hiddenSize / numHeads
  maxPositionEmbeddings: number; // the context length
  rmsNormEps: number;
  ropeTheta: number;
  /** Absent: plain rotary embeddings. */
  ropeScaling?: RopeScaling;
  tieWordEmbeddings: boolean; // lm_head shares model.embed_tokens.weight
  attentionBias: boolean; // q/k/v projections carry biases (Qwen2)
  bosTokenId?: number;
  eosTokenId?: number;
}

/** The seven linear projections of every block, in PEFT's names. */
export const LINEAR_MODULES = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
export type LinearModule = (typeof LINEAR_MODULES)[number];

/** [out, in] of one block's projection. */
export function linearShape(c: LlamaConfig, m: LinearModule): [number, number] {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  switch (m) {
    case 'q_proj': return [q, c.hiddenSize];
    case 'k_proj': return [kv, c.hiddenSize];
    case 'v_proj': return [kv, c.hiddenSize];
    case 'o_proj': return [c.hiddenSize, q];
    case 'gate_proj': return [c.intermediateSize, c.hiddenSize];
    case 'up_proj': return [c.intermediateSize, c.hiddenSize];
    case 'down_proj': return [c.hiddenSize, c.intermediateSize];
  }
}

/** Hugging Face parameter name of a block's projection, e.g. model.layers.0.self_attn.q_proj. */
export function linearName(layer: number, m: LinearModule): string {
  const group = m === 'gate_proj' || m === 'up_proj' || m === 'down_proj' ? 'mlp' : 'self_attn';
  return `model.layers.${layer}.${group}.${m}`;
}

export interface ParameterCount {
  total: number;
  /** Parameters in the seven projections of all blocks (what QLoRA quantizes). */
  linear: number;
  /** Embeddings, norms, biases and an untied head: kept in full precision. */
  other: number;
}

export function countParameters(c: LlamaConfig): ParameterCount {
  let linear = 0;
  for (const m of LINEAR_MODULES) {
    const [o, i] = linearShape(c, m);
    linear += o * i;
  }
  linear *= c.numLayers;
  const bias = c.attentionBias ? c.numLayers * (c.numHeads + 2 * c.numKvHeads) * c.headDim : 0;
  const norms = c.numLayers * 2 * c.hiddenSize + c.hiddenSize;
  const embed = c.vocabSize * c.hiddenSize * (c.tieWordEmbeddings ? 1 : 2);
  const other = bias + norms + embed;
  return { total: linear + other, linear, other };
}

/** LoRA parameters added by rank r on the given modules: r * (in + out) per module per layer. */
export function loraParameterCount(c: LlamaConfig, r: number, modules: readonly LinearModule[]): number {
  let n = 0;
  for (const m of modules) {
    const [o, i] = linearShape(c, m);
    n += r * (o + i);
  }
  return n * c.numLayers;
}
