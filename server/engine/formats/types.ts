import type { LlamaConfig } from '../model/config';
import type { Tokenizer } from '../tokenizer/types';

/** A tensor on the host: row-major float32 data and its shape. */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

/** Weights under Hugging Face LlamaForCausalLM names, e.g. model.layers.0.self_attn.q_proj.weight. */
export type WeightMap = Map<string, HostTensor>;

export interface LoadedModel {
  /** Absolute path of the folder the model came from. */
  dir: string;
  format: 'huggingface' | 'llama2c';
  config: LlamaConfig;
  weights: WeightMap;
  tokenizer: Tokenizer;
}

/** Every failure to read a model file is one of these: the file and what is wrong with it. */
export class ModelFormatError extends Error {
  constructor(readonly file: string, readonly problem: string) {
    super(`${file}: ${problem}`);
    this.name = 'ModelFormatError';
  }
}
