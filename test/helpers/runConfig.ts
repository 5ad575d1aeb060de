import { configText } from '../../server/config/write';

// A .qlora text for short test runs on a small model, with the few knobs tests turn.
export interface RunConfigOptions {
  maxSteps: number;
  saveEvery: number;
  evalEvery: number;
  backend?: string;
  gradAccum?: number;
  microBatch?: number;
  maxSeqLen?: number;
  r?: number;
  alpha?: number;
  dropout?: number;
  learningRate?: number;
}

export function runConfig(base: string, o: RunConfigOptions): string {
  return configText({
    model: { base, quantization: 'nf4' },
    lora: { r: o.r ?? 4, alpha: o.alpha ?? 8, dropout: o.dropout ?? 0.1, target_modules: 'all-linear' },
    data: { train: './train.jsonl', format: 'text', validation_split: 0.1, max_seq_len: o.maxSeqLen ?? 32 },
    training: {
      max_steps: o.maxSteps, micro_batch_size: o.microBatch ?? 2, gradient_accumulation_steps: o.gradAccum ?? 1,
      learning_rate: o.learningRate ?? 5e-3, warmup_steps: 2, eval_every: o.evalEvery, save_every: o.saveEvery,
      backend: o.backend ?? 'wasm',
    },
    output: { dir: './runs/r' },
  });
}
