// Adapters on disk in Hugging Face PEFT's layout: adapter_config.json and
// adapter_model.safetensors, so that `PeftModel.from_pretrained` loads what we write and
// we load what PEFT writes.
import { axolotlBaseQuantization } from './axolotlBase';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import type { Quantization } from '../quant/spec';
import { LINEAR_MODULES, type LinearModule } from '../model/config';
import { readSafetensors, writeSafetensors } from '../formats/safetensors';
import type { WeightMap } from '../formats/types';
import type { LoraAdapter, LoraConfig } from './adapter';
import { PEFT_PREFIX } from './names';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';
/** Ours, beside PEFT's files: how the base was quantized while the adapter trained. */
export const BASE_QUANTIZATION = 'qlora_base_quantization.json';
/**
 * Ours, beside PEFT's files: the local folder of the base model. adapter_config.json's
 * base_model_name_or_path holds a name a user can load elsewhere (transformers, PEFT), which
 * a local absolute path (or a llama2.c folder) is not.
 */
export const BASE_MODEL_SIDECAR = 'qlora_base_model.json';

/** The error every load path (generate, eval, merge, resume, export) gives for an adapter it cannot use as written. */
export class AdapterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AdapterError';
  }
}

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
  writeFileSync(join(tmp, ADAPTER_CONFIG), JSON.stringify(peftConfig(adapter.config, targets, loadableBaseName(baseModel)), null, 2) + '\n');
  writeFileSync(join(tmp, BASE_MODEL_SIDECAR), JSON.stringify({ path: resolve(baseModel) }, null, 2) + '\n');
  writeSafetensors(join(tmp, ADAPTER_WEIGHTS), await adapter.toPeftTensors(), { dtype: 'F32', metadata: { format: 'pt' } });
  if (base) writeFileSync(join(tmp, BASE_QUANTIZATION), JSON.stringify(base, null, 2) + '\n');
  const old = `${tmp}.old`;
  if (existsSync(dir)) renameSync(dir, old);
  renameSync(tmp, dir);
  rmSync(old, { recursive: true, force: true });
}

/**
 * base_model_name_or_path for a base at local `path`: the model's own `_name_or_path` from
 * config.json when it is a hub-style name (not a local path), else the folder's name.
 */
export function loadableBaseName(path: string): string {
  const folder = resolve(path);
  try {
    const dir = existsSync(folder) && statSync(folder).isFile() ? dirname(folder) : folder;
    const own = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'))._name_or_path;
    if (typeof own === 'string' && own && !isAbsolute(own) && !own.startsWith('.') && !existsSync(resolve(dir, own))) return own;
    return basename(dir);
  } catch {
    return basename(existsSync(folder) && statSync(folder).isFile() ? dirname(folder) : folder);
  }
}

export interface ReadAdapter {
  dir: string;
  config: LoraConfig;
  /** base_model_name_or_path as written (a name, or for older adapters a path relative to the adapter). */
  baseModel: string;
  /** The base's local folder, from the sidecar this project writes; absent for adapters made elsewhere. */
  basePath?: string;
  tensors: WeightMap;
  /** Present when this project trained the adapter. */
  baseQuantization?: BaseQuantization;
}

const nonEmpty = (v: unknown) => v !== undefined && v !== null && v !== false && !(typeof v === 'object' && Object.keys(v as object).length === 0);

/**
 * The one check of a PEFT adapter_config.json that every load path runs: each PEFT option is
 * supported as PEFT means it, or refused with the reason, never silently ignored.
 */
export function checkPeftOptions(raw: Record<string, unknown>, cfgFile: string): void {
  const refuse = (why: string) => { throw new AdapterError(`${cfgFile}: ${why}`); };
  if (raw.peft_type !== 'LORA') refuse(`peft_type is ${JSON.stringify(raw.peft_type)}, only "LORA" is supported`);
  if (raw.task_type !== undefined && raw.task_type !== null && raw.task_type !== 'CAUSAL_LM') refuse(`task_type is ${JSON.stringify(raw.task_type)}; only CAUSAL_LM adapters fit a causal language model`);
  if (raw.use_dora === true) refuse('use_dora is true: DoRA adapters rescale each weight by a learned magnitude, which this project does not apply; merge it with PEFT (merge_and_unload) first');
  if (raw.fan_in_fan_out === true) refuse('fan_in_fan_out is true (GPT-2 style Conv1D weights); Llama-family projections are nn.Linear, so the adapter belongs to another model');
  if (raw.bias !== undefined && raw.bias !== null && raw.bias !== 'none') refuse(`bias is "${String(raw.bias)}": the adapter trains base biases, which this project cannot load; only "none" is supported`);
  if (raw.lora_bias === true) refuse('lora_bias is true: the adapter has a bias on its B matrix, which this project does not apply');
  if (raw.use_qalora === true) refuse('use_qalora is true: QA-LoRA pools inputs before A, which this project does not apply');
  for (const key of ['alpha_pattern', 'rank_pattern']) {
    if (nonEmpty(raw[key])) refuse(`${key} ${JSON.stringify(raw[key])} is not supported: it gives some layers their own ${key === 'alpha_pattern' ? 'lora_alpha' : 'r'}, and this project uses one r and one lora_alpha for every adapted layer`);
  }
  if (nonEmpty(raw.modules_to_save)) refuse(`modules_to_save ${JSON.stringify(raw.modules_to_save)} is not supported: the adapter carries fully trained copies of those modules, which this project does not load`);
  for (const key of ['layers_to_transform', 'layers_pattern', 'exclude_modules', 'layer_replication', 'target_parameters', 'trainable_token_indices', 'megatron_config', 'loftq_config']) {
    if (nonEmpty(raw[key])) refuse(`${key} ${JSON.stringify(raw[key])} is not supported (every layer of the target modules is adapted, on the unchanged base)`);
  }
}

/** Tensor names PEFT's save_pretrained writes; anything else is refused with what it looks like. */
function checkTensorNames(names: Iterable<string>, file: string): void {
  for (const name of names) {
    if (/\.lora_[AB]\.[^.]+\.weight$/.test(name)) {
      throw new AdapterError(`${file}: tensor "${name}" carries an adapter name (".default"): it is a live PeftModel's state_dict, not save_pretrained output; save it with model.save_pretrained(dir)`);
    }
    if (/\.lora_[ab](\.weight)?$/.test(name) || (!name.startsWith(PEFT_PREFIX) && /lora/i.test(name))) {
      throw new AdapterError(`${file}: tensor "${name}" is in MLX-LM's layout (lowercase lora_a/lora_b, transposed, no base_model.model. prefix), not PEFT's: fuse it in MLX (mlx_lm.fuse) or convert it to PEFT first`);
    }
  }
}

/** Reads a PEFT LoRA adapter folder; any problem is an AdapterError naming the file. */
export function readAdapter(dir: string): ReadAdapter {
  const cfgFile = join(dir, ADAPTER_CONFIG);
  if (!existsSync(cfgFile)) {
    if (existsSync(join(dir, 'adapters.safetensors'))) throw new AdapterError(`${dir}: holds adapters.safetensors, an MLX-LM adapter, not a PEFT one (no ${ADAPTER_CONFIG}): fuse it in MLX (mlx_lm.fuse) or convert it to PEFT first`);
    throw new AdapterError(`${dir}: not a PEFT adapter folder (no ${ADAPTER_CONFIG})`);
  }
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(cfgFile, 'utf8'));
  } catch (e) {
    throw new AdapterError(`${cfgFile}: invalid JSON (${(e as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new AdapterError(`${cfgFile}: not a JSON object`);
  checkPeftOptions(raw, cfgFile);
  const num = (k: string, dflt?: number): number => {
    const v = raw[k] ?? dflt;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new AdapterError(`${cfgFile}: '${k}' must be a number`);
    return v;
  };
  let targets = raw.target_modules;
  if (typeof targets === 'string') targets = targets === 'all-linear' ? [...LINEAR_MODULES] : [targets];
  if (!Array.isArray(targets) || targets.some((t) => !(LINEAR_MODULES as readonly string[]).includes(t))) {
    throw new AdapterError(`${cfgFile}: target_modules ${JSON.stringify(raw.target_modules)} must name projections among ${LINEAR_MODULES.join(', ')}`);
  }
  const weightsFile = join(dir, ADAPTER_WEIGHTS);
  if (!existsSync(weightsFile)) {
    if (existsSync(join(dir, 'adapter_model.bin'))) throw new AdapterError(`${dir}: holds adapter_model.bin (a PyTorch pickle), which this project does not read: re-save it with safe_serialization=True`);
    throw new AdapterError(`${dir}: no ${ADAPTER_WEIGHTS}`);
  }
  let tensors: WeightMap;
  try {
    tensors = readSafetensors(weightsFile).tensors;
  } catch (e) {
    throw new AdapterError((e as Error).message);
  }
  checkTensorNames(tensors.keys(), weightsFile);
  let basePath: string | undefined;
  const sidecar = join(dir, BASE_MODEL_SIDECAR);
  if (existsSync(sidecar)) {
    try {
      const p = JSON.parse(readFileSync(sidecar, 'utf8')).path;
      if (typeof p === 'string' && p) basePath = resolve(dir, p);
    } catch (e) {
      throw new AdapterError(`${sidecar}: invalid JSON (${(e as Error).message})`);
    }
  }
  return {
    dir,
    config: {
      r: num('r'), alpha: num('lora_alpha'), dropout: num('lora_dropout', 0),
      targetModules: targets as LinearModule[], rslora: raw.use_rslora === true,
    },
    baseModel: typeof raw.base_model_name_or_path === 'string' ? raw.base_model_name_or_path : '',
    basePath,
    tensors,
    baseQuantization: existsSync(join(dir, BASE_QUANTIZATION))
      ? JSON.parse(readFileSync(join(dir, BASE_QUANTIZATION), 'utf8')) as BaseQuantization : axolotlBaseQuantization(dir),
  };
}
