// config.json's `rope_scaling` -> RopeScaling (model/config.ts), as transformers reads it:
// the kind under `rope_type` (or the older `type`), `linear` with a factor, `llama3` with
// factor, low_freq_factor, high_freq_factor and original_max_position_embeddings. Kinds
// the engine does not compute (dynamic NTK above factor 1, yarn, longrope, su, ...) are
// refused with the field, the kind and the model named.
import type { RopeScaling } from '../model/config';
import { ModelFormatError } from './types';

/** undefined for plain rotary embeddings (null, "default", or a factor of 1). */
export function parseRopeScaling(v: unknown, file: string, modelType: string): RopeScaling | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) {
    throw new ModelFormatError(file, `"rope_scaling" must be an object or null, got ${JSON.stringify(v)}`);
  }
  const s = v as Record<string, unknown>;
  const kind = s.rope_type ?? s.type;
  const num = (key: string, ok: (x: number) => boolean, want: string): number => {
    const x = s[key];
    if (typeof x !== 'number' || !Number.isFinite(x) || !ok(x)) {
      throw new ModelFormatError(file, `"rope_scaling.${key}" must be ${want} for rope_type ${JSON.stringify(kind)}, got ${JSON.stringify(x)}`);
    }
    return x;
  };
  if (kind === 'default') return undefined;
  if ((kind === 'linear' || kind === 'dynamic') && s.factor === 1) return undefined;
  if (kind === 'linear') return { type: 'linear', factor: num('factor', (x) => x > 0, 'a positive number') };
  if (kind === 'llama3') {
    const r: RopeScaling = {
      type: 'llama3',
      factor: num('factor', (x) => x > 0, 'a positive number'),
      lowFreqFactor: num('low_freq_factor', (x) => x > 0, 'a positive number'),
      highFreqFactor: num('high_freq_factor', (x) => x > 0, 'a positive number'),
      originalMaxPositionEmbeddings: num('original_max_position_embeddings', (x) => Number.isSafeInteger(x) && x > 0, 'a positive integer'),
    };
    if (!(r.highFreqFactor > r.lowFreqFactor)) {
      throw new ModelFormatError(file, `"rope_scaling.high_freq_factor" (${r.highFreqFactor}) must be larger than low_freq_factor (${r.lowFreqFactor})`);
    }
    return r;
  }
  throw new ModelFormatError(file, `"rope_scaling" with rope_type ${JSON.stringify(kind)} (model_type ${modelType}) is not supported; ` +
    'supported: none, "default", "linear", "llama3" (and "dynamic" with factor 1)');
}

/** The config.json form of a RopeScaling, as transformers writes it. */
export function ropeScalingJson(r: RopeScaling | undefined): Record<string, unknown> | null {
  if (!r) return null;
  if (r.type === 'linear') return { rope_type: 'linear', factor: r.factor };
  return {
    rope_type: 'llama3', factor: r.factor, low_freq_factor: r.lowFreqFactor, high_freq_factor: r.highFreqFactor,
    original_max_position_embeddings: r.originalMaxPositionEmbeddings,
  };
}
