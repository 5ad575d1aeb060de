// An adapter trained by Axolotl, as its output_dir holds it: PEFT's files (bf16 tensors,
// a hub id as base_model_name_or_path, PEFT's default keys) and the model card README.md
// that embeds the run's YAML with `adapter: qlora`. Merge, eval and generate use the NF4
// base it trained against (block 64, double quantization), as for our own adapters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { qlora, qloraJson } from '../helpers/cli';
import { writeTinyModel, TINY_MODEL } from '../../server/demo/tinyModel';
import { shipLogs } from '../../server/demo/corpus';
import { writeSafetensors } from '../../server/engine/formats/safetensors';
import type { WeightMap } from '../../server/engine/formats/types';
import { readModelConfig } from '../../server/engine/formats/modelFolder';
import { axolotlBaseQuantization } from '../../server/engine/lora/axolotlBase';
import { Rng } from '../../server/engine/rng';

const README = (yaml: string) => `---
library_name: peft
tags:
- axolotl
- generated_from_trainer
base_model: HuggingFaceTB/SmolLM2-135M
model-index:
- name: outputs/lora-out
  results: []
---

<!-- This model card has been generated automatically according to the information the Trainer had access to. You
should probably proofread and complete it, then remove this comment. -->

[<img src="https://raw.githubusercontent.com/axolotl-ai-cloud/axolotl/main/image/axolotl-badge-web.png" alt="Built with Axolotl" width="200" height="32"/>](https://github.com/axolotl-ai-cloud/axolotl)
<details><summary>See axolotl config</summary>

axolotl version: \`0.18.0\`
\`\`\`yaml
${yaml}
\`\`\`

</details><br>

# outputs/lora-out

This model is a fine-tuned version of [HuggingFaceTB/SmolLM2-135M](https://huggingface.co/HuggingFaceTB/SmolLM2-135M) on the None dataset.
`;

const QLORA_YAML = `base_model: HuggingFaceTB/SmolLM2-135M
load_in_4bit: true
adapter: qlora
lora_r: 4
lora_alpha: 8
lora_dropout: 0.05
lora_target_modules:
  - q_proj
  - v_proj
  - down_proj
sequence_len: 128
output_dir: ./outputs/lora-out`;

test('the 4-bit base of an Axolotl run is read from its model card', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qlora-axolotl-card-'));
  try {
    writeFileSync(join(dir, 'README.md'), README(QLORA_YAML));
    assert.deepEqual(axolotlBaseQuantization(dir), { quantization: 'nf4', block_size: 64, double_quant: true });
    writeFileSync(join(dir, 'README.md'), README(`${QLORA_YAML}\nbnb_config_kwargs:\n  bnb_4bit_quant_type: fp4\n  bnb_4bit_use_double_quant: false`));
    assert.deepEqual(axolotlBaseQuantization(dir), { quantization: 'fp4', block_size: 64, double_quant: false });
    writeFileSync(join(dir, 'README.md'), README(QLORA_YAML.replace('load_in_4bit: true\nadapter: qlora', 'adapter: lora')));
    assert.deepEqual(axolotlBaseQuantization(dir), { quantization: 'none', block_size: 64, double_quant: false });
    writeFileSync(join(dir, 'README.md'), '# my adapter\n```yaml\nadapter: qlora\n```\n');
    assert.equal(axolotlBaseQuantization(dir), undefined, 'a card that is not Axolotl\'s');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an Axolotl QLoRA adapter (bf16, hub-id base) merges, evaluates and generates on the NF4 base it recorded', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qlora-axolotl-import-'));
  try {
    writeTinyModel(join(dir, 'l2c'), shipLogs(60, 1), { ...TINY_MODEL, nLayers: 2 });
    const conv = qlora(['convert', join(dir, 'l2c'), '--out', join(dir, 'base')]);
    assert.equal(conv.code, 0, conv.stderr);
    const c = readModelConfig(join(dir, 'base'));
    const adapter = join(dir, 'outputs', 'lora-out');
    mkdirSync(adapter, { recursive: true });
    const targets = ['q_proj', 'v_proj', 'down_proj'] as const;
    const r = 4;
    const rng = new Rng(11);
    const tensors: WeightMap = new Map();
    const shapes: Record<string, [number, number]> = {
      q_proj: [c.numHeads * c.headDim, c.hiddenSize], v_proj: [c.numKvHeads * c.headDim, c.hiddenSize], down_proj: [c.hiddenSize, c.intermediateSize],
    };
    for (let l = 0; l < c.numLayers; l++) {
      for (const m of targets) {
        const [out, inp] = shapes[m];
        const where = m === 'down_proj' ? 'mlp' : 'self_attn';
        const prefix = `base_model.model.model.layers.${l}.${where}.${m}`;
        tensors.set(`${prefix}.lora_A.weight`, { shape: [r, inp], data: Float32Array.from({ length: r * inp }, () => rng.normal() * 0.3) });
        tensors.set(`${prefix}.lora_B.weight`, { shape: [out, r], data: Float32Array.from({ length: out * r }, () => rng.normal() * 0.3) });
      }
    }
    writeSafetensors(join(adapter, 'adapter_model.safetensors'), tensors, { dtype: 'BF16', metadata: { format: 'pt' } });
    writeFileSync(join(adapter, 'adapter_config.json'), JSON.stringify({
      alpha_pattern: {}, auto_mapping: null, base_model_name_or_path: 'HuggingFaceTB/SmolLM2-135M', bias: 'none', corda_config: null,
      eva_config: null, exclude_modules: null, fan_in_fan_out: null, inference_mode: true, init_lora_weights: true, layer_replication: null,
      layers_pattern: null, layers_to_transform: null, loftq_config: {}, lora_alpha: 8, lora_bias: false, lora_dropout: 0.05,
      megatron_config: null, megatron_core: 'megatron.core', modules_to_save: null, peft_type: 'LORA', r, rank_pattern: {}, revision: null,
      target_modules: ['v_proj', 'down_proj', 'q_proj'], task_type: 'CAUSAL_LM', trainable_token_indices: null, use_dora: false, use_rslora: false,
    }, null, 2));
    writeFileSync(join(adapter, 'README.md'), README(QLORA_YAML));
    writeFileSync(join(dir, 'text.txt'), shipLogs(3, 9).join('\n'));

    const evalWith = (...extra: string[]) => qloraJson<{ loss: number }>(['eval', '--model', join(dir, 'base'), '--adapter', adapter, '--text', join(dir, 'text.txt'), ...extra]).loss;
    const recorded = evalWith();
    const nf4 = evalWith('--quantization', 'nf4', '--block-size', '64');
    const full = evalWith('--quantization', 'none');
    assert.equal(recorded, nf4, 'eval uses the NF4 base the card records');
    assert.notEqual(recorded, full);

    const merged = qlora(['merge', '--adapter', adapter, '--base', join(dir, 'base'), '--out', join(dir, 'merged'), '--dtype', 'float32']);
    assert.equal(merged.code, 0, merged.stderr);
    assert.match(merged.stdout + merged.stderr, /NF4-dequantized base \(block 64, double quant\)/);
    const mergedLoss = qloraJson<{ loss: number }>(['eval', '--model', join(dir, 'merged'), '--text', join(dir, 'text.txt')]).loss;
    // The NF4 run keeps its embedding and head in bf16 (the memory plan); the merged model is
    // evaluated at full precision: equal up to that rounding.
    assert.ok(Math.abs(mergedLoss - recorded) <= 1e-3 * Math.abs(recorded), `merged ${mergedLoss} vs NF4 base + adapter ${recorded}`);
    assert.ok(JSON.parse(readFileSync(join(dir, 'merged', 'config.json'), 'utf8')));

    const gen = qlora(['generate', '--model', join(dir, 'base'), '--adapter', adapter, '--prompt', 'Day 1.', '--max-tokens', '8', '--temperature', '0']);
    assert.equal(gen.code, 0, gen.stderr);
    assert.ok(gen.stdout.length > 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
