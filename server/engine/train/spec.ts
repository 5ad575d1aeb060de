// What a training run is given: the engine's own description of a run, so that the
// trainer imports nothing above the engine. The keys keep the `.qlora` file's names, so
// server/config/trainSpec.ts maps a parsed file onto it one to one (and the compiler
// checks that every parsed config is a TrainSpec).
import type { BackendChoice } from '../backend';
import type { LinearModule } from '../model/config';
import type { Quantization } from '../quant/spec';
import type { LrScheduler } from './schedule';
import type { DataFormat } from './types';

export interface TrainSpec {
  model: { base: string; quantization: Quantization; double_quant: boolean; block_size: number };
  lora: { r: number; alpha: number; dropout: number; target_modules: LinearModule[]; rslora: boolean };
  data: {
    train: string;
    format: DataFormat;
    validation?: string;
    validation_split: number;
    max_seq_len: number;
    train_on_prompt: boolean;
  };
  training: {
    epochs: number;
    max_steps?: number;
    micro_batch_size: number;
    gradient_accumulation_steps: number;
    learning_rate: number;
    lr_scheduler: LrScheduler;
    warmup_steps: number;
    weight_decay: number;
    max_grad_norm: number;
    seed: number;
    eval_every: number;
    save_every: number;
    backend: BackendChoice;
    /** Recompute each decoder block in the backward pass instead of keeping its activations. */
    gradient_checkpointing: boolean;
  };
  output: { dir: string };
}
