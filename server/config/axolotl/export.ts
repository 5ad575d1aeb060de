// A resolved `.qlora` run as an Axolotl config (the same run on PEFT + bitsandbytes +
// accelerate, with DeepSpeed ZeRO or FSDP across GPUs), written as YAML that PyYAML (YAML
// 1.1) reads back with the intended types. Values that cannot map are refused with the
// field named; settings Axolotl lacks are reported as warnings.
import { dirname, relative, resolve, sep } from 'node:path';
import type { ResolvedConfig } from '../schema';
import { LINEAR_MODULES } from '../../engine/model/config';

export type MultiGpu = 'deepspeed' | 'fsdp';
export const MULTI_GPU: readonly MultiGpu[] = ['deepspeed', 'fsdp'];

export interface AxolotlExportOptions {
  /** The folder the YAML is written to: data and output paths are written relative to it. */
  yamlDir: string;
  /** A Hugging Face hub id (or a path on the cluster) for base_model; default: the .qlora's model.base. */
  baseModel?: string;
  gpus?: number;
  multiGpu?: MultiGpu;
  /** True when model.base is a llama2.c checkpoint, which Axolotl cannot load. */
  baseIsLlama2c?: boolean;
  /** The decoder layer's class for FSDP's wrap policy (from config.json's architectures), default LlamaDecoderLayer. */
  decoderLayerClass?: string;
  /** Keys the file set explicitly (`section.key`), to warn only about those without an equivalent. */
  explicitKeys?: ReadonlySet<string>;
}

export class AxolotlExportError extends Error {
  constructor(readonly field: string, message: string) {
    super(`${field}: ${message}`);
    this.name = 'AxolotlExportError';
  }
}

export interface AxolotlExport {
  /** The Axolotl config, key order as written. */
  config: Record<string, unknown>;
  warnings: string[];
}

/** bitsandbytes' block size: the only one Axolotl's QLoRA uses. */
const BNB_BLOCK_SIZE = 64;

export function toAxolotl(c: ResolvedConfig, o: AxolotlExportOptions): AxolotlExport {
  const warnings: string[] = [];
  const rel = (p: string) => {
    const r = relative(resolve(o.yamlDir), p).split(sep).join('/');
    return r.startsWith('.') || r.startsWith('/') ? r : `./${r}`;
  };
  if (o.baseIsLlama2c && !o.baseModel) {
    throw new AxolotlExportError('model.base', `${c.model.base} is a llama2.c checkpoint, which Axolotl cannot load: ` +
      'convert it (qlora convert) or name a Hugging Face model with --base-model HUB_ID');
  }
  if (!Number.isInteger(c.lora.alpha)) {
    throw new AxolotlExportError('lora.alpha', `Axolotl's lora_alpha is an integer, and ${c.lora.alpha} is not: round it in the .qlora file`);
  }
  const out: Record<string, unknown> = { base_model: o.baseModel ?? c.model.base };

  // Quantization: QLoRA (4-bit bitsandbytes), or plain LoRA on a 16-bit base.
  if (c.model.quantization === 'none') {
    out.adapter = 'lora';
  } else {
    out.adapter = 'qlora';
    out.load_in_4bit = true;
    const bnb: Record<string, unknown> = {};
    if (c.model.quantization !== 'nf4') bnb.bnb_4bit_quant_type = c.model.quantization;
    if (!c.model.double_quant) bnb.bnb_4bit_use_double_quant = false;
    if (Object.keys(bnb).length) out.bnb_config_kwargs = bnb;
    if (c.model.block_size !== BNB_BLOCK_SIZE) {
      warnings.push(`model.block_size ${c.model.block_size}: bitsandbytes always quantizes in blocks of ${BNB_BLOCK_SIZE}; the Axolotl run uses ${BNB_BLOCK_SIZE}`);
    }
  }

  out.lora_r = c.lora.r;
  out.lora_alpha = c.lora.alpha;
  out.lora_dropout = c.lora.dropout;
  const all = LINEAR_MODULES.every((m) => c.lora.target_modules.includes(m));
  if (all) out.lora_target_linear = true;
  else out.lora_target_modules = [...c.lora.target_modules];
  if (c.lora.rslora) out.peft_use_rslora = true;

  const dataset = (path: string) => {
    const d: Record<string, unknown> = { path: rel(path), ds_type: 'json' };
    if (c.data.format === 'text') Object.assign(d, { type: 'completion', field: 'text' });
    else if (c.data.format === 'alpaca') d.type = 'alpaca';
    else Object.assign(d, { type: 'chat_template', field_messages: 'messages', roles_to_train: ['assistant'] });
    return d;
  };
  out.datasets = [dataset(c.data.train)];
  // Axolotl refuses a non-zero val_set_size together with test_datasets.
  if (c.data.validation) out.test_datasets = [{ ...dataset(c.data.validation), split: 'train' }];
  else out.val_set_size = c.data.validation_split;
  out.sequence_len = c.data.max_seq_len;
  out.excess_length_strategy = 'truncate'; // Axolotl drops long rows by default; we truncate
  out.train_on_inputs = c.data.train_on_prompt;

  const t = c.training;
  if (t.max_steps !== undefined) out.max_steps = t.max_steps;
  else out.num_epochs = t.epochs;
  out.micro_batch_size = t.micro_batch_size;
  out.gradient_accumulation_steps = t.gradient_accumulation_steps;
  out.learning_rate = t.learning_rate;
  out.lr_scheduler = t.lr_scheduler === 'constant' ? (t.warmup_steps > 0 ? 'constant_with_warmup' : 'constant') : t.lr_scheduler;
  out.warmup_steps = t.warmup_steps;
  out.weight_decay = t.weight_decay;
  out.max_grad_norm = t.max_grad_norm; // always: Axolotl's default (1.0) is not ours
  out.optimizer = 'adamw_torch';
  out.seed = t.seed;
  if (t.eval_every > 0) out.eval_steps = t.eval_every;
  else out.eval_strategy = 'no';
  if (t.save_every > 0) out.save_steps = t.save_every;
  out.gradient_checkpointing = t.gradient_checkpointing;
  out.logging_steps = 1; // one log line per optimizer step: the event converter counts on it
  out.bf16 = 'auto';
  if (o.explicitKeys?.has('training.backend')) warnings.push(`training.backend ${t.backend}: Axolotl runs PyTorch on CUDA; the key is left out`);

  out.output_dir = rel(c.output.dir);

  const gpus = o.gpus ?? 1;
  if (!Number.isInteger(gpus) || gpus < 1) throw new AxolotlExportError('--gpus', `must be a whole number of at least 1 (got ${o.gpus})`);
  if (gpus > 1 || o.multiGpu) {
    const how = o.multiGpu ?? 'deepspeed';
    if (how === 'deepspeed') out.deepspeed = 'deepspeed_configs/zero2.json';
    else {
      out.fsdp_version = 2;
      out.fsdp_config = { offload_params: false, auto_wrap_policy: 'TRANSFORMER_BASED_WRAP', transformer_layer_cls_to_wrap: o.decoderLayerClass ?? 'LlamaDecoderLayer', state_dict_type: 'SHARDED_STATE_DICT', reshard_after_forward: true };
    }
  }
  return { config: out, warnings };
}

/** The folder the YAML goes to, for toAxolotl's yamlDir. */
export const yamlDirOf = (yamlFile: string) => dirname(resolve(yamlFile));
