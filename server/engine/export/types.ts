// What a GGUF export takes, reports while it runs, and returns: one definition for the CLI
// (`qlora export gguf --json` prints the events), the extension and tests.
import type { QuantizationOptions } from '../model/llama';
import type { MergeInto } from '../merge/types';
import type { ExportType } from './ggmlTypes';
import type { QuantError } from './blockQuant';

/**
 * `merged`: the model (with an adapter merged in on the fly) as one GGUF;
 * `lora-only`: the adapter as a llama.cpp LoRA GGUF; `base-only`: the base as the adapter saw
 * it (NF4-dequantized when it trained on a 4-bit base), to load that adapter on.
 */
export type ExportMode = 'merged' | 'lora-only' | 'base-only';

export interface GgufExportOptions {
  out: string;
  /** A model folder to export as it is (no adapter). */
  model?: string;
  /** An adapter folder; its base is `base` or the one the adapter names. */
  adapter?: string;
  base?: string;
  /** Default f16 (llama.cpp's converter's default). LoRA tensors are always written f32. */
  type?: ExportType;
  /** With an adapter: what the delta is added to (default: dequantized for a 4-bit-trained adapter). */
  into?: MergeInto;
  /** The 4-bit base the adapter trained on (default: as recorded beside it); with `model`, round-trips its projections. */
  quantization?: QuantizationOptions;
  mode?: ExportMode;
  /** general.name; default: the model's or adapter's folder name. */
  name?: string;
  force?: boolean;
  signal?: AbortSignal;
}

export interface TensorReport extends QuantError {
  name: string;
  gguf: string;
  ggmlType: ExportType;
  count: number;
}

export interface GgufExportStart {
  type: 'start';
  mode: ExportMode;
  out: string;
  base: string;
  adapter: string | null;
  ggmlType: ExportType;
  /** The 4-bit round trip applied to the block projections; null when none. */
  quantization: QuantizationOptions | null;
  into: MergeInto | null;
  tensors: number;
  totalBytes: number;
}
export interface GgufExportTensor extends TensorReport { type: 'tensor'; done: number; total: number; bytesWritten: number }
export interface GgufExportDone { type: 'done'; out: string; bytes: number; elapsedMs: number; report: QuantizationReport }
export interface GgufExportLog { type: 'log'; message: string }
export type GgufExportEvent = GgufExportStart | GgufExportTensor | GgufExportDone | GgufExportLog;

/** The post-training quantization report: per tensor error of the chosen type, and totals. */
export interface QuantizationReport {
  ggmlType: ExportType;
  bytes: number;
  /** Values in the matrices written in a lossy type, and their relative RMSE over all of them. */
  quantizedValues: number;
  relativeRmse: number;
  tensors: TensorReport[];
}

export class ExportRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExportRefusedError';
  }
}
