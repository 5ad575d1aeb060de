// What a merge takes, what it reports while it runs, and how it fails. One definition for
// the CLI (`qlora merge --json` prints the events, one per line), the extension's merge
// command and the training server.
import type { QuantizationOptions } from '../model/llama';

/** Output weight dtypes, in PyTorch's names (config.json torch_dtype). */
export const MERGE_DTYPES = ['float32', 'float16', 'bfloat16'] as const;
export type MergeDtype = (typeof MERGE_DTYPES)[number];

/**
 * What the adapter's delta is added to: `dequantized`, the 4-bit base as training saw it
 * (quantized and dequantized again); `original`, the full-precision base weights.
 */
export const MERGE_TARGETS = ['dequantized', 'original'] as const;
export type MergeInto = (typeof MERGE_TARGETS)[number];

export interface MergeOptions {
  /** The adapter folder (adapter_config.json + adapter_model.safetensors), or its adapter_config.json. */
  adapter: string;
  /** The folder to create: a standalone Hugging Face model. */
  out: string;
  /** Base model folder; default: the adapter's base_model_name_or_path, resolved against the adapter folder. */
  base?: string;
  /** Default: the dtype the base stores its weights in (float32 for llama2.c and float64). */
  dtype?: MergeDtype;
  /** Default: `dequantized` when the adapter was trained on a 4-bit base, else `original`. */
  into?: MergeInto;
  /** How the base was quantized in training; default: as recorded beside the adapter (qlora_base_quantization.json). */
  quantization?: QuantizationOptions;
  /** Replace an existing non-empty output folder. */
  force?: boolean;
  /** Largest safetensors shard; default 5 GB, as transformers' save_pretrained. */
  maxShardBytes?: number;
  /** Cancels the merge between two tensors; nothing is left behind. */
  signal?: AbortSignal;
}

/** Everything decided and checked before a byte is written. */
export interface MergeSummary {
  adapter: string;
  base: string;
  baseFormat: 'huggingface' | 'llama2c';
  out: string;
  into: MergeInto;
  dtype: MergeDtype;
  /** The 4-bit round trip applied to every block projection with `into: dequantized`; null with `original`. */
  quantization: QuantizationOptions | null;
  r: number;
  alpha: number;
  rslora: boolean;
  /** alpha / r, or alpha / sqrt(r) with rsLoRA. */
  scaling: number;
  targetModules: string[];
  /** Projections that receive a LoRA delta (layers x target modules). */
  mergedModules: number;
  /** Tensors written, and their bytes in the output dtype. */
  tensors: number;
  totalBytes: number;
  /** float32 bytes of the largest tensor and of the largest block: the working set of a merge. */
  largestTensorBytes: number;
  largestLayerBytes: number;
}

export interface MergeStartEvent extends MergeSummary { type: 'start' }
export interface MergeLogEvent { type: 'log'; level: 'info' | 'warning'; message: string }
export interface MergeProgressEvent {
  type: 'progress';
  tensor: string;
  /** The block the tensor belongs to; null for embeddings, final norm and head. */
  layer: number | null;
  layers: number;
  /** Whether a LoRA delta was added to this tensor. */
  merged: boolean;
  done: number;
  total: number;
  bytesWritten: number;
  totalBytes: number;
}
export interface MergeDoneEvent { type: 'done'; out: string; files: string[]; bytes: number; mergedModules: number; elapsedMs: number }

export type MergeEvent = MergeStartEvent | MergeLogEvent | MergeProgressEvent | MergeDoneEvent;

export interface MergeResult { out: string; files: string[]; summary: MergeSummary }

/** A merge refused by a check before anything was written: the message says what to change. */
export class MergeRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MergeRefusedError';
  }
}

/** The merge was cancelled through its AbortSignal; its temporary folder is gone. */
export class MergeCancelledError extends Error {
  constructor() {
    super('merge cancelled');
    this.name = 'MergeCancelledError';
  }
}
