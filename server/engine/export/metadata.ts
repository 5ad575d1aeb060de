// The model keys of a GGUF file (llama.cpp's LLM_KV names) from the engine's LlamaConfig.
// Missing required keys make llama.cpp refuse the file, and two of them
// (context_length, attention.head_count) abort it, so every one is always written.
import type { LlamaConfig } from '../model/config';
import { GGML, type ExportType } from './ggmlTypes';
import type { GgufValue } from './ggufWriter';
import { GGUF_ALIGNMENT } from './ggufWriter';

/** llama.cpp's architecture name: Mistral is LLAMA there; Qwen2 has its own (biases, NEOX rope). */
export function ggufArchitecture(c: LlamaConfig): 'llama' | 'qwen2' {
  return c.family === 'qwen2' ? 'qwen2' : 'llama';
}

export function modelKeys(c: LlamaConfig, opts: { name: string; type: ExportType }): Map<string, GgufValue> {
  const arch = ggufArchitecture(c);
  const kv = new Map<string, GgufValue>([
    ['general.architecture', { type: 'string', value: arch }],
    ['general.type', { type: 'string', value: 'model' }],
    ['general.name', { type: 'string', value: opts.name }],
    ['general.file_type', { type: 'u32', value: GGML[opts.type].fileType }],
    ['general.quantization_version', { type: 'u32', value: 2 }],
    ['general.alignment', { type: 'u32', value: GGUF_ALIGNMENT }],
    [`${arch}.vocab_size`, { type: 'u32', value: c.vocabSize }],
    [`${arch}.context_length`, { type: 'u32', value: c.maxPositionEmbeddings }],
    [`${arch}.embedding_length`, { type: 'u32', value: c.hiddenSize }],
    [`${arch}.block_count`, { type: 'u32', value: c.numLayers }],
    [`${arch}.feed_forward_length`, { type: 'u32', value: c.intermediateSize }],
    [`${arch}.attention.head_count`, { type: 'u32', value: c.numHeads }],
    [`${arch}.attention.head_count_kv`, { type: 'u32', value: c.numKvHeads }],
    [`${arch}.attention.layer_norm_rms_epsilon`, { type: 'f32', value: c.rmsNormEps }],
    [`${arch}.attention.key_length`, { type: 'u32', value: c.headDim }],
    [`${arch}.attention.value_length`, { type: 'u32', value: c.headDim }],
    [`${arch}.rope.freq_base`, { type: 'f32', value: c.ropeTheta }],
    [`${arch}.rope.dimension_count`, { type: 'u32', value: c.headDim }],
  ]);
  return kv;
}

/**
 * The keys of a llama.cpp LoRA adapter file. llama.cpp scales B A by alpha / r with r read
 * from the tensors' shapes; rsLoRA's alpha / sqrt(r) is therefore written as alpha * sqrt(r).
 */
export function adapterKeys(c: LlamaConfig, opts: { name: string; alpha: number; r: number; rslora: boolean }): Map<string, GgufValue> {
  return new Map<string, GgufValue>([
    ['general.architecture', { type: 'string', value: ggufArchitecture(c) }],
    ['general.type', { type: 'string', value: 'adapter' }],
    ['general.name', { type: 'string', value: opts.name }],
    ['general.alignment', { type: 'u32', value: GGUF_ALIGNMENT }],
    ['adapter.type', { type: 'string', value: 'lora' }],
    ['adapter.lora.alpha', { type: 'f32', value: opts.rslora ? opts.alpha * Math.sqrt(opts.r) : opts.alpha }],
  ]);
}
