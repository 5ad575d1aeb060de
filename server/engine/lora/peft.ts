// Adapters on disk in Hugging Face PEFT's layout: adapter_config.json and
// adapter_model.safetensors, so that `PeftModel.from_pretrained` loads what we write and
// we load what PEFT writes.
import type { Quantization } from '../quant/spec';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { LINEAR_MODULES, type LinearModule } from '../model/config';
import { readSafetensors, writeSafetensors } from '../formats/safetensors';
import type { WeightMap } from '../formats/types';
import type { LoraAdapter, LoraConfig } from './adapter';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';
/** Ours, beside PEFT's files: how the base was quantized while the adapter trained. */
export const BASE_QUANTIZATION = 'qlora_base_quantization.json';

export interface BaseQuantization {
  quantization: Quantization;
  block_size: number;
  double_quant: boolean;
}

export interface PeftAdapterConfig {
  peft_type: 'LORA';
  task_type: 'CAUSAL_LM';
  base_model_name_or_path: string;
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  target_modules: string[];
  use_rslora: boolean;
  bias: 'none';
  fan_in_fan_out: boolean;
  inference_mode: boolean;
  modules_to_save: null;
}

export function peftConfig(lora: LoraConfig, targets: readonly LinearModule[], baseModel: string): PeftAdapterConfig {
  return {
    peft_type: 'LORA', task_type: 'CAUSAL_LM', base_model_name_or_path: baseModel,
    r: lora.r, lora_alpha: lora.alpha, lora_dropout: lora.dropout, target_modules: [...targets],
    use_rslora: lora.rslora, bias: 'none', fan_in_fan_out: false, inference_mode: true, modules_to_save: null,
  };
}

/** Writes the adapter into `dir` via a temporary sibling folder renamed at the end. */
export async function writeAdapter(dir: string, adapter: LoraAdapter, baseModel: string, base?: BaseQuantization): Promise<void> {
  const targets = LINEAR_MODULES.filter((m) => [...adapter.layers.keys()].some((k) => k.endsWith(`.${m}`)));
  const tmp = join(dirname(dir), `.${basename(dir)}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  writeFileSync(join(tmp, ADAPTER_CONFIG), JSON.stringify(peftConfig(adapter.config, targets, baseModel), null, 2) + '\n');
  writeSafetensors(join(tmp, ADAPTER_WEIGHTS), await adapter.toPeftTensors(), { dtype: 'F32', metadata: { format: 'pt' } });
  if (base) writeFileSync(join(tmp, BASE_QUANTIZATION), JSON.stringify(base, null, 2) + '\n');
  const old = `${tmp}.old`;
  if (existsSync(dir)) renameSync(dir, old);
  renameSync(tmp, dir);
  rmSync(old, { recursive: true, force: true });
}

export interface ReadAdapter {
  dir: string;
  config: LoraConfig;
  baseModel: string;
  tensors: WeightMap;
  /** Present when this project trained the adapter. */
  baseQuantization?: BaseQuantization;
}

/** Reads a PEFT LoRA adapter folder; any problem is an error naming the file. */
export function readAdapter(dir: string): ReadAdapter {
  const cfgFile = join(dir, ADAPTER_CONFIG);
  if (!existsSync(cfgFile)) throw new Error(`${dir}: not a PEFT adapter folder (no ${ADAPTER_CONFIG})`);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(cfgFile, 'utf8'));
  } catch (e) {
    throw new Error(`${cfgFile}: invalid JSON (${(e as Error).message})`);
  }
  if (raw.peft_type !== 'LORA') throw new Error(`${cfgFile}: peft_type is ${JSON.stringify(raw.peft_type)}, only "LORA" is supported`);
  const num = (k: string, dflt?: number): number => {
    const v = raw[k] ?? dflt;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${cfgFile}: '${k}' must be a number`);
    return v;
  };
  let targets = raw.target_modules;
  if (typeof targets === 'string') targets = targets === 'all-linear' ? [...LINEAR_MODULES] : [targets];
  if (!Array.isArray(targets) || targets.some((t) => !(LINEAR_MODULES as readonly string[]).includes(t))) {
    throw new Error(`${cfgFile}: target_modules ${JSON.stringify(raw.target_modules)} must name projections among ${LINEAR_MODULES.join(', ')}`);
  }
  const weightsFile = join(dir, ADAPTER_WEIGHTS);
  if (!existsSync(weightsFile)) throw new Error(`${dir}: no ${ADAPTER_WEIGHTS}`);
  return {
    dir,
    config: {
      r: num('r'), alpha: num('lora_alpha'), dropout: num('lora_dropout', 0),
      targetModules: targets as LinearModule[], rslora: raw.use_rslora === true,
    },
    baseModel: typeof raw.base_model_name_or_path === 'string' ? raw.base_model_name_or_path : '',
    tensors: readSafetensors(weightsFile).tensors,
    baseQuantization: existsSync(join(dir, BASE_QUANTIZATION))
      ? JSON.parse(readFileSync(join(dir, BASE_QUANTIZATION), 'utf8')) as BaseQuantization : undefined,
  };
}
