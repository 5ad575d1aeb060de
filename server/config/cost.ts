// What a run will cost before it starts: trainable parameters, resident bytes per base
// parameter, and an estimate of peak training memory. The code lens shows these; the
// engine measures the real figures separately, so these formulas are the documentation.
import { countParameters, linearShape, LINEAR_MODULES, loraParameterCount, type LlamaConfig } from '../engine/model/config';
import type { ResolvedConfig } from './schema';
import { bytesPerParameter } from '../engine/quant/spec';

export interface QuantizationChoice {
  quantization: ResolvedConfig['model']['quantization'];
  double_quant: boolean;
  block_size: number;
}

/** Resident bytes per quantized base parameter: the quantization spec's figure (engine/quant/spec.ts). */
export function bytesPerBaseParameter(q: QuantizationChoice): number {
  return bytesPerParameter({ quantization: q.quantization, blockSize: q.block_size, doubleQuant: q.double_quant });
}

/**
 * Floats autograd keeps per token and layer for the backward pass, as multiples of the
 * hidden size C: the block input, two norm outputs, q, k, v (counted as C each), rotated
 * q and k, the attention output before and after merging heads, o_proj's output, two
 * residual sums and down_proj's output — twelve in all.
 */
export const ACTIVATION_HIDDEN_FACTOR = 12;
/** ...and as multiples of the MLP width I: gate, up, silu(gate) and silu(gate) * up. */
export const ACTIVATION_INTERMEDIATE_FACTOR = 4;
/** ...and per head and key position: the attention scores and the softmax probabilities. */
export const ACTIVATION_ATTENTION_FACTOR = 2;
/** The logits, their log-softmax and its gradient, per token and vocabulary entry. */
export const LOGIT_FACTOR = 3;
/** LoRA weights, their gradients and AdamW's two moments, all float32. */
export const BYTES_PER_TRAINABLE_PARAMETER = 16;

export interface MemoryEstimate {
  /** The linear projections at bytesPerBaseParameter. */
  baseWeights: number;
  /** Embeddings, norms, biases and an untied head, kept in float32. */
  fullPrecisionWeights: number;
  /** Adapter weights, gradients and AdamW moments. */
  adapterAndOptimizer: number;
  /** What the backward pass needs, summed over layers. */
  activations: number;
  logits: number;
  /** One projection dequantized to float32 at a time. */
  dequantizeWorkspace: number;
  total: number;
}

export interface CostEstimate {
  totalParameters: number;
  trainableParameters: number;
  /** trainable / total base parameters, in percent. */
  trainablePercent: number;
  bytesPerBaseParameter: number;
  memory: MemoryEstimate;
}

/**
 * Peak training memory in bytes, all float32 except the quantized projections:
 *   linear params x bytesPerBaseParameter + other params x 4
 *   + LoRA params x 16
 *   + layers x B x T x (12 C + 4 I + 2 nh T) x 4            (activations)
 *   + B x T x vocab x 3 x 4                                  (logits)
 *   + max(out x in) x 4                                      (dequantized projection)
 * with B = micro_batch_size, T = max_seq_len (capped at the model's context).
 */
export function estimateCost(model: LlamaConfig, config: Pick<ResolvedConfig, 'model' | 'lora' | 'data' | 'training'>): CostEstimate {
  const params = countParameters(model);
  const trainable = loraParameterCount(model, config.lora.r, config.lora.target_modules);
  const perParam = bytesPerBaseParameter(config.model);
  const B = config.training.micro_batch_size;
  const T = Math.min(config.data.max_seq_len, model.maxPositionEmbeddings);
  const C = model.hiddenSize;
  const I = model.intermediateSize;
  const floatsPerTokenLayer =
    ACTIVATION_HIDDEN_FACTOR * C + ACTIVATION_INTERMEDIATE_FACTOR * I + ACTIVATION_ATTENTION_FACTOR * model.numHeads * T;
  const largestProjection = Math.max(...LINEAR_MODULES.map((m) => linearShape(model, m)[0] * linearShape(model, m)[1]));
  const memory: Omit<MemoryEstimate, 'total'> = {
    baseWeights: params.linear * perParam,
    fullPrecisionWeights: params.other * 4,
    adapterAndOptimizer: trainable * BYTES_PER_TRAINABLE_PARAMETER,
    activations: model.numLayers * B * T * floatsPerTokenLayer * 4,
    logits: B * T * model.vocabSize * LOGIT_FACTOR * 4,
    dequantizeWorkspace: config.model.quantization === 'none' ? 0 : largestProjection * 4,
  };
  const total = Object.values(memory).reduce((a, b) => a + b, 0);
  return {
    totalParameters: params.total,
    trainableParameters: trainable,
    trainablePercent: (100 * trainable) / params.total,
    bytesPerBaseParameter: perParam,
    memory: { ...memory, total },
  };
}

/** 1234 -> "1.23K", 7241728 -> "7.24M": three significant digits. */
export function formatCount(n: number): string {
  const units: [number, string][] = [[1e12, 'T'], [1e9, 'B'], [1e6, 'M'], [1e3, 'K']];
  for (const [size, suffix] of units) if (n >= size) return `${Number((n / size).toPrecision(3))}${suffix}`;
  return String(n);
}

/** Binary units, three significant digits: "1.41 GiB". */
export function formatBytes(n: number): string {
  const units: [number, string][] = [[2 ** 40, 'TiB'], [2 ** 30, 'GiB'], [2 ** 20, 'MiB'], [2 ** 10, 'KiB']];
  for (const [size, suffix] of units) if (n >= size) return `${Number((n / size).toPrecision(3))} ${suffix}`;
  return `${Math.round(n)} B`;
}
