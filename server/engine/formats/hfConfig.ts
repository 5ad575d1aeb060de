// Hugging Face `config.json` <-> LlamaConfig for the LlamaForCausalLM family
// (transformers' LlamaConfig, MistralConfig, Qwen2Config). Defaults are transformers' own
// defaults for each model_type, so a config.json that transformers loads loads here too;
// what the engine cannot run exactly (other rope scalings, other activations, o_proj/MLP biases)
// is refused with the reason rather than silently run differently.
import type { LlamaConfig, ModelFamily } from '../model/config';
import { parseRopeScaling, ropeScalingJson } from './ropeScaling';
import { ModelFormatError } from './types';

const ARCHITECTURES: Record<ModelFamily, string> = {
  llama: 'LlamaForCausalLM',
  mistral: 'MistralForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
};
const FAMILY_OF_ARCHITECTURE = new Map(Object.entries(ARCHITECTURES).map(([f, a]) => [a, f as ModelFamily]));

/** transformers' defaults per model_type for the keys a config.json may leave out. */
const DEFAULTS: Record<ModelFamily, { maxPositionEmbeddings: number; rmsNormEps: number; ropeTheta: number }> = {
  llama: { maxPositionEmbeddings: 2048, rmsNormEps: 1e-6, ropeTheta: 10000 },
  mistral: { maxPositionEmbeddings: 4096 * 32, rmsNormEps: 1e-6, ropeTheta: 10000 },
  qwen2: { maxPositionEmbeddings: 32768, rmsNormEps: 1e-6, ropeTheta: 10000 },
};

const supportedList = () =>
  `supported: model_type ${Object.keys(ARCHITECTURES).join(', ')} (architectures ${Object.values(ARCHITECTURES).join(', ')})`;

function familyOf(json: Record<string, unknown>, file: string): ModelFamily {
  const modelType = json.model_type;
  const architectures = json.architectures;
  if (modelType !== undefined) {
    if (typeof modelType !== 'string' || !(modelType in ARCHITECTURES)) {
      throw new ModelFormatError(file, `unsupported model_type ${JSON.stringify(modelType)}; ${supportedList()}`);
    }
  }
  if (architectures !== undefined && architectures !== null) {
    if (!Array.isArray(architectures) || !architectures.some((a) => FAMILY_OF_ARCHITECTURE.has(a))) {
      throw new ModelFormatError(file, `unsupported architectures ${JSON.stringify(architectures)}; ${supportedList()}`);
    }
  }
  if (typeof modelType === 'string') return modelType as ModelFamily;
  if (Array.isArray(architectures)) return FAMILY_OF_ARCHITECTURE.get(architectures.find((a) => FAMILY_OF_ARCHITECTURE.has(a)))!;
  throw new ModelFormatError(file, `missing key "model_type" (and no "architectures"); ${supportedList()}`);
}

export function parseHfConfig(json: unknown, file: string): LlamaConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ModelFormatError(file, 'is not a JSON object');
  const j = json as Record<string, unknown>;
  const family = familyOf(j, file);
  const defaults = DEFAULTS[family];

  const count = (key: string, fallback?: number): number => {
    const v = j[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      throw new ModelFormatError(file, `missing required key "${key}"`);
    }
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
      throw new ModelFormatError(file, `"${key}" must be a positive integer, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const positive = (key: string, fallback: number): number => {
    const v = j[key] ?? fallback;
    if (typeof v !== 'number' || !(v > 0)) throw new ModelFormatError(file, `"${key}" must be a positive number, got ${JSON.stringify(v)}`);
    return v;
  };
  const flag = (key: string, fallback: boolean): boolean => {
    const v = j[key] ?? fallback;
    if (typeof v !== 'boolean') throw new ModelFormatError(file, `"${key}" must be true or false, got ${JSON.stringify(v)}`);
    return v;
  };
  const tokenId = (key: string): number | undefined => {
    // Llama 3 lists several end-of-sequence ids; the first is the one generation stops on by default.
    const v = Array.isArray(j[key]) ? (j[key] as unknown[])[0] : j[key];
    return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined;
  };

  const hiddenSize = count('hidden_size');
  const numHeads = count('num_attention_heads');
  const numKvHeads = count('num_key_value_heads', numHeads);
  if (j.head_dim == null && hiddenSize % numHeads !== 0) {
    throw new ModelFormatError(file, `hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numHeads} (and no head_dim is given)`);
  }
  const headDim = count('head_dim', hiddenSize / numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw new ModelFormatError(file, `num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`);
  }
  if (headDim % 2 !== 0) throw new ModelFormatError(file, `head_dim ${headDim} must be even for rotary embeddings`);

  const activation = j.hidden_act ?? 'silu';
  if (activation !== 'silu') throw new ModelFormatError(file, `hidden_act ${JSON.stringify(activation)} is not supported (only "silu", the SwiGLU of Llama)`);
  const ropeScaling = parseRopeScaling(j.rope_scaling, file, family);
  // Qwen2 always has q/k/v biases. Llama's attention_bias also adds one to o_proj, and
  // mlp_bias to the MLP: the engine has neither.
  if (family !== 'qwen2' && flag('attention_bias', false)) {
    throw new ModelFormatError(file, '"attention_bias": true (biases on q/k/v/o projections) is not supported for llama/mistral models');
  }
  if (flag('mlp_bias', false)) throw new ModelFormatError(file, '"mlp_bias": true is not supported');

  let maxPositionEmbeddings = count('max_position_embeddings', defaults.maxPositionEmbeddings);
  // The engine attends over the whole context; with a sliding window that is exact up to the
  // window's length, so the window becomes the usable context.
  const slidingWindow = j.sliding_window;
  const windowApplies = family === 'mistral' || (family === 'qwen2' && j.use_sliding_window === true);
  if (windowApplies && typeof slidingWindow === 'number' && slidingWindow > 0) {
    maxPositionEmbeddings = Math.min(maxPositionEmbeddings, slidingWindow);
  }

  return {
    family,
    vocabSize: count('vocab_size'),
    hiddenSize,
    intermediateSize: count('intermediate_size'),
    numLayers: count('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    maxPositionEmbeddings,
    rmsNormEps: positive('rms_norm_eps', defaults.rmsNormEps),
    ropeTheta: positive('rope_theta', defaults.ropeTheta),
    ...(ropeScaling ? { ropeScaling } : {}),
    tieWordEmbeddings: flag('tie_word_embeddings', false),
    attentionBias: family === 'qwen2',
    bosTokenId: tokenId('bos_token_id'),
    eosTokenId: tokenId('eos_token_id'),
  };
}

export type TorchDtype = 'float32' | 'float16' | 'bfloat16';

/** The config.json transformers needs to load these weights as `<Family>ForCausalLM`. */
export function toHfConfigJson(c: LlamaConfig, torchDtype: TorchDtype = 'float32'): Record<string, unknown> {
  const json: Record<string, unknown> = {
    architectures: [ARCHITECTURES[c.family]],
    model_type: c.family,
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads,
    num_key_value_heads: c.numKvHeads,
    head_dim: c.headDim,
    max_position_embeddings: c.maxPositionEmbeddings,
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    rope_scaling: ropeScalingJson(c.ropeScaling),
    hidden_act: 'silu',
    tie_word_embeddings: c.tieWordEmbeddings,
    initializer_range: 0.02,
    use_cache: true,
    torch_dtype: torchDtype,
  };
  if (c.family === 'llama') Object.assign(json, { attention_bias: false, mlp_bias: false });
  if (c.family !== 'llama') json.sliding_window = null;
  if (c.family === 'qwen2') json.use_sliding_window = false;
  if (c.bosTokenId !== undefined) json.bos_token_id = c.bosTokenId;
  if (c.eosTokenId !== undefined) json.eos_token_id = c.eosTokenId;
  return json;
}
