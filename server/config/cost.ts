// What a run will cost before it starts: trainable parameters, resident bytes per base
// parameter, and the engine's memory plan (server/engine/memory/plan.ts) for the run: the
// same function the trainer's pre-flight checks, so the lens and the refusal agree.
import { countParameters, loraParameterCount, type LlamaConfig } from '../engine/model/config';
import { bytesPerBaseParameter as planBytesPerBaseParameter, planMemory, type MemoryPlan } from '../engine/memory/plan';
import type { ResolvedConfig } from './schema';
import { planInputOf } from '../engine/train/preflight';
import { bytesPerParameter } from '../engine/quant/spec';

export interface QuantizationChoice {
  quantization: ResolvedConfig['model']['quantization'];
  double_quant: boolean;
  block_size: number;
}

/** Resident bytes per quantized base parameter: the quantization spec's figure (engine/quant/spec.ts). */
export function bytesPerBaseParameter(q: QuantizationChoice): number {
  return bytesPerParameter({ quantization: q.quantization, blockSize: q.block_size, doubleQuant: q.double_quant });
}

export interface MemoryEstimate {
  /** The engine's plan: parts, heap and RSS peaks, the wasm heap flag. */
  plan: MemoryPlan;
  /** What the lens headlines: the peak process RSS of the run. */
  total: number;
}

export interface CostEstimate {
  totalParameters: number;
  trainableParameters: number;
  /** trainable / total base parameters, in percent. */
  trainablePercent: number;
  bytesPerBaseParameter: number;
  memory: MemoryEstimate;
}

type CostConfig = Pick<ResolvedConfig, 'model' | 'lora' | 'data' | 'training'>;

/** The plan's input for a resolved config: T = max_seq_len (capped at the context), B = micro_batch_size. */
export function planFor(model: LlamaConfig, config: CostConfig): MemoryPlan {
  return planMemory(planInputOf(model, config, config.training.backend));
}

export function estimateCost(model: LlamaConfig, config: CostConfig): CostEstimate {
  const params = countParameters(model);
  const trainable = loraParameterCount(model, config.lora.r, config.lora.target_modules);
  const plan = planFor(model, config);
  return {
    totalParameters: params.total,
    trainableParameters: trainable,
    trainablePercent: (100 * trainable) / params.total,
    bytesPerBaseParameter: bytesPerBaseParameter(config.model),
    memory: { plan, total: plan.rssPeak },
  };
}

/** 1234 -> "1.23K", 7241728 -> "7.24M": three significant digits. */
export function formatCount(n: number): string {
  const units: [number, string][] = [[1e12, 'T'], [1e9, 'B'], [1e6, 'M'], [1e3, 'K']];
  for (const [size, suffix] of units) if (n >= size) return `${Number((n / size).toPrecision(3))}${suffix}`;
  return String(n);
}

/** Binary units, three significant digits: "1.41 GiB". */
export function formatBytes(n: number): string {
  const units: [number, string][] = [[2 ** 40, 'TiB'], [2 ** 30, 'GiB'], [2 ** 20, 'MiB'], [2 ** 10, 'KiB']];
  for (const [size, suffix] of units) if (n >= size) return `${Number((n / size).toPrecision(3))} ${suffix}`;
  return `${Math.round(n)} B`;
}
