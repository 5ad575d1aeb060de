// PEFT's names and LoRA's scaling rule, free of TensorFlow.js so that host-only code
// (merge, the language server) can use them without loading a backend.
import { LINEAR_MODULES, type LinearModule } from '../model/config';

/** PEFT stores `base_model.model.<module>.lora_A.weight`. */
export const PEFT_PREFIX = 'base_model.model.';

/** alpha / r, or alpha / sqrt(r) with rsLoRA (Kalajdzievski 2023). */
export function loraScaling(alpha: number, r: number, rslora: boolean): number {
  return rslora ? alpha / Math.sqrt(r) : alpha / r;
}

/** The projections a target_modules value names; 'all-linear' is all seven. */
export function resolveTargets(t: readonly LinearModule[] | 'all-linear'): LinearModule[] {
  if (t === 'all-linear') return [...LINEAR_MODULES];
  for (const m of t) {
    if (!(LINEAR_MODULES as readonly string[]).includes(m)) {
      throw new Error(`target_modules: '${m}' is not a projection of this model (expected one of ${LINEAR_MODULES.join(', ')})`);
    }
  }
  return [...t];
}
