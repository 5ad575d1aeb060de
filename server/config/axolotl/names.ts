// What each `.qlora` key is called in Axolotl's config (axolotl-ai-cloud/axolotl 0.18,
// src/axolotl/utils/schemas/*.py), for the hover docs and the export. null: Axolotl has
// no such setting (the export warns or leaves it out). Keyed by `section.key`; a test
// checks that every schema key is listed here.
export const AXOLOTL_VERSION = '0.18.0';

export const AXOLOTL_NAMES: Readonly<Record<string, readonly string[] | null>> = {
  'model.base': ['base_model'],
  'model.quantization': ['adapter', 'load_in_4bit', 'bnb_config_kwargs.bnb_4bit_quant_type'],
  'model.double_quant': ['bnb_config_kwargs.bnb_4bit_use_double_quant'],
  'model.block_size': null, // bitsandbytes always uses blocks of 64
  'lora.r': ['lora_r'],
  'lora.alpha': ['lora_alpha'],
  'lora.dropout': ['lora_dropout'],
  'lora.target_modules': ['lora_target_linear', 'lora_target_modules'],
  'lora.rslora': ['peft_use_rslora'],
  'data.train': ['datasets'],
  'data.format': ['datasets[].type'],
  'data.validation': ['test_datasets'],
  'data.validation_split': ['val_set_size'],
  'data.max_seq_len': ['sequence_len', 'excess_length_strategy'],
  'data.train_on_prompt': ['train_on_inputs'],
  'training.epochs': ['num_epochs'],
  'training.max_steps': ['max_steps'],
  'training.micro_batch_size': ['micro_batch_size'],
  'training.gradient_accumulation_steps': ['gradient_accumulation_steps'],
  'training.learning_rate': ['learning_rate'],
  'training.lr_scheduler': ['lr_scheduler'],
  'training.warmup_steps': ['warmup_steps'],
  'training.weight_decay': ['weight_decay'],
  'training.max_grad_norm': ['max_grad_norm'],
  'training.seed': ['seed'],
  'training.eval_every': ['eval_steps', 'eval_strategy'],
  'training.save_every': ['save_steps'],
  'training.backend': null, // Axolotl runs PyTorch on CUDA
  'training.gradient_checkpointing': ['gradient_checkpointing'],
  'output.dir': ['output_dir'],
};
