// What the `qlora` subcommands share: option parsing, loading a model (plus adapter)
// onto the chosen backend, and turning failures into one clear line.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { resolve } from 'node:path';
import { BACKENDS, initBackend, type BackendChoice, type BackendInfo } from '../engine/backend';
import { loadModel } from '../engine/formats/modelFolder';
import { LlamaModel } from '../engine/model/llama';
import { BLOCK_SIZE_RULE, DEFAULT_QUANTIZATION, isBlockSize, isQuantization, QUANTIZATIONS, type QuantizationOptions } from '../engine/quant/spec';
import { LoraAdapter } from '../engine/lora/adapter';
import { readAdapter, type BaseQuantization } from '../engine/lora/peft';
import type { Tokenizer } from '../engine/tokenizer/types';

/** A mistake in how the command was called: printed with the usage line, exit code 2. */
export class UsageError extends Error {}

export function parse<T extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: T, allowPositionals = false) {
  try {
    return parseArgs({ args, options, allowPositionals, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

export const quantOptions = {
  quantization: { type: 'string' },
  'no-double-quant': { type: 'boolean' },
  'block-size': { type: 'string' },
  backend: { type: 'string' },
} as const;

/**
 * Quantization from the flags; by default the base as the adapter saw it in training
 * (recorded beside the adapter), else full precision.
 */
export function quantFrom(v: { quantization?: string; 'no-double-quant'?: boolean; 'block-size'?: string },
  adapterBase?: BaseQuantization): QuantizationOptions {
  const q = v.quantization ?? adapterBase?.quantization ?? 'none';
  if (!isQuantization(q)) throw new UsageError(`--quantization must be ${QUANTIZATIONS.join(', ')} (got '${q}')`);
  const blockSize = v['block-size'] === undefined ? adapterBase?.block_size ?? DEFAULT_QUANTIZATION.blockSize : Number(v['block-size']);
  if (!isBlockSize(blockSize)) throw new UsageError(`--block-size must be ${BLOCK_SIZE_RULE} (got '${v['block-size']}')`);
  const dq = v['no-double-quant'] ? false : adapterBase?.double_quant ?? true;
  return { quantization: q, blockSize, doubleQuant: q !== 'none' && dq };
}

export async function backendFrom(v: { backend?: string }): Promise<BackendInfo> {
  const b = (v.backend ?? process.env.QLORA_BACKEND ?? 'auto') as BackendChoice;
  if (!(BACKENDS as readonly string[]).includes(b)) throw new UsageError(`--backend must be one of ${BACKENDS.join(', ')}`);
  return initBackend(b);
}

export interface Ready {
  model: LlamaModel;
  tokenizer: Tokenizer;
  backend: BackendInfo;
}

type QuantFlags = Parameters<typeof quantFrom>[0];

/** Loads MODEL (and an adapter) for inference, quantized as the flags or the adapter say. */
export async function loadForInference(modelDir: string | undefined, adapterDir: string | undefined,
  flags: QuantFlags, backend: BackendInfo): Promise<Ready> {
  if (!modelDir) throw new UsageError('--model MODEL is required');
  const adapter = adapterDir ? readAdapter(resolve(adapterDir)) : undefined;
  const loaded = await loadModel(resolve(modelDir));
  const model = LlamaModel.fromLoaded(loaded, quantFrom(flags, adapter?.baseQuantization));
  if (adapter) {
    model.lora = LoraAdapter.fromPeftTensors(loaded.config, adapter.config, adapter.tensors, `${adapter.dir}/adapter_model.safetensors`);
  }
  return { model, tokenizer: loaded.tokenizer, backend };
}

export function print(json: boolean, obj: object, human: string): void {
  process.stdout.write(json ? JSON.stringify(obj) + '\n' : human + '\n');
}
