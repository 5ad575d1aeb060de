// Adapters trained by Axolotl record no quantized base of their own: Axolotl saves a PEFT
// adapter with `model.save_pretrained` and writes a model card (README.md) that embeds
// the run's YAML. When that YAML says `adapter: qlora` (load_in_4bit), the adapter trained
// against a bitsandbytes 4-bit base: NF4 unless bnb_4bit_quant_type says fp4, double
// quantization unless turned off, and always blocks of 64. Merge, eval and generate then
// quantize the base the same way, as they do for adapters this project trained.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { Quantization } from '../quant/spec';

export interface AxolotlBase {
  quantization: Quantization;
  block_size: number;
  double_quant: boolean;
}

/** Model cards are small; anything larger is not Axolotl's and is not read whole. */
const MAX_README_BYTES = 1 << 20;

/** The 4-bit base an Axolotl QLoRA run trained against, from the adapter folder's README.md; undefined when none is recorded. */
export function axolotlBaseQuantization(dir: string): AxolotlBase | undefined {
  const readme = join(dir, 'README.md');
  if (!existsSync(readme) || statSync(readme).size > MAX_README_BYTES) return undefined;
  const text = readFileSync(readme, 'utf8');
  if (!/axolotl/i.test(text)) return undefined;
  for (const block of text.matchAll(/```ya?ml\n([\s\S]*?)```/g)) {
    let cfg: Record<string, unknown>;
    try {
      cfg = parse(block[1], { version: '1.1' }) as Record<string, unknown>;
    } catch {
      continue;
    }
    if (!cfg || typeof cfg !== 'object' || !('adapter' in cfg)) continue;
    const fourBit = cfg.adapter === 'qlora' || cfg.load_in_4bit === true;
    if (!fourBit) return { quantization: 'none', block_size: 64, double_quant: false };
    const bnb = (cfg.bnb_config_kwargs ?? {}) as Record<string, unknown>;
    const quantization: Quantization = bnb.bnb_4bit_quant_type === 'fp4' ? 'fp4' : 'nf4';
    return { quantization, block_size: 64, double_quant: bnb.bnb_4bit_use_double_quant !== false };
  }
  return undefined;
}
