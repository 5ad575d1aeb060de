// The trainer's pre-flight: the run's memory plan against this machine's budget, from
// config.json alone, before the tokenizer, the data or any tensor is loaded. A run that
// will not fit is refused with a MemoryPlanError naming the largest parts and the
// max_seq_len / micro_batch_size that would fit.
import { readModelConfig } from '../formats/modelConfig';
import { checkMemoryPlan } from '../memory/preflight';
import type { MemoryPlan, MemoryPlanInput, PlanBackend } from '../memory/plan';
import type { LlamaConfig } from '../model/config';
import type { TrainSpec } from './spec';
import type { TrainEvent } from './events';

/** The memory plan's input for a run: T = max_seq_len, B = micro_batch_size (the code lens uses it too). */
export function planInputOf(model: LlamaConfig, config: Pick<TrainSpec, 'model' | 'lora' | 'data' | 'training'>, backend: PlanBackend): MemoryPlanInput {
  const t = config.training;
  return {
    model,
    quant: { quantization: config.model.quantization, blockSize: config.model.block_size, doubleQuant: config.model.double_quant },
    lora: { r: config.lora.r, targetModules: config.lora.target_modules },
    seqLen: config.data.max_seq_len,
    microBatch: t.micro_batch_size,
    gradientAccumulation: t.gradient_accumulation_steps,
    gradientCheckpointing: t.gradient_checkpointing,
    backend,
  };
}

export function preflightTraining(config: TrainSpec, backend: string, emit?: (e: TrainEvent) => void): MemoryPlan {
  const model = readModelConfig(config.model.base);
  const { plan, warning } = checkMemoryPlan(planInputOf(model, config, backend as PlanBackend), config.model.base);
  if (warning) emit?.({ type: 'log', level: 'warning', message: warning });
  return plan;
}
