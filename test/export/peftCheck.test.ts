// Issue 14: one adapter check for every load path. An adapter with an option this project
// cannot apply (DoRA, alpha_pattern, lora_bias, fan_in_fan_out, modules_to_save) or with
// tensors that are not save_pretrained's PEFT names (".default" adapter names, MLX-LM keys) is
// refused with the same reason by `qlora generate`, `eval`, `merge`, `export gguf` and
// `train --resume`, never loaded as if the option were absent. And the adapters the trainer
// writes name their base by a loadable name, with the local folder in the sidecar.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { qlora } from '../helpers/cli';
import { readModelConfig } from '../../server/engine/formats/modelFolder';
import { readSafetensors, writeSafetensors } from '../../server/engine/formats/safetensors';
import type { WeightMap } from '../../server/engine/formats/types';
import { BASE_MODEL_SIDECAR } from '../../server/engine/lora/peft';
import { shipLogs } from '../../server/demo/corpus';
import { tinyBase, writeAdapter } from '../merge/fixtures';

const root = mkdtempSync(join(tmpdir(), 'qlora-peft-check-'));
test.after(() => rmSync(root, { recursive: true, force: true }));
const base = tinyBase(join(root, 'base'));
const text = join(root, 'text.txt');
writeFileSync(text, shipLogs(4, 3).join(' '));

type Change = (dir: string) => void;
const config = (dir: string, patch: Record<string, unknown>) => {
  const file = join(dir, 'adapter_config.json');
  writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), ...patch }, null, 2));
};
const renameTensors = (dir: string, rename: (name: string) => string) => {
  const file = join(dir, 'adapter_model.safetensors');
  const t = readSafetensors(file).tensors;
  const out: WeightMap = new Map([...t].map(([n, v]) => [rename(n), v]));
  writeSafetensors(file, out, { dtype: 'F32' });
};

/** Each unsupported adapter, and the reason every path must give (after the file name). */
const CASES: [string, Change, RegExp][] = [
  ['DoRA', (d) => config(d, { use_dora: true }), /adapter_config\.json: use_dora is true: DoRA adapters rescale/],
  ['alpha_pattern', (d) => config(d, { alpha_pattern: { 'model.layers.0.self_attn.q_proj': 32 } }), /adapter_config\.json: alpha_pattern \{.*\} is not supported: it gives some layers their own lora_alpha/],
  ['lora_bias', (d) => config(d, { lora_bias: true }), /adapter_config\.json: lora_bias is true: the adapter has a bias on its B matrix/],
  ['fan_in_fan_out', (d) => config(d, { fan_in_fan_out: true }), /adapter_config\.json: fan_in_fan_out is true \(GPT-2 style Conv1D/],
  ['modules_to_save', (d) => config(d, { modules_to_save: ['lm_head'] }), /adapter_config\.json: modules_to_save \["lm_head"\] is not supported: the adapter carries fully trained copies/],
  ['.default keys', (d) => renameTensors(d, (n) => n.replace(/\.weight$/, '.default.weight')), /adapter_model\.safetensors: tensor ".*\.lora_[AB]\.default\.weight" carries an adapter name \("\.default"\)/],
  ['MLX keys', (d) => renameTensors(d, (n) => n.replace('base_model.model.', '').replace('lora_A.weight', 'lora_a').replace('lora_B.weight', 'lora_b')), /adapter_model\.safetensors: tensor ".*lora_[ab]" is in MLX-LM's layout/],
];

test('generate, eval, merge and export gguf refuse each unsupported adapter with the same reason, writing nothing', () => {
  const good = join(root, 'good');
  writeAdapter(good, readModelConfig(base), { baseModel: '../base' });
  for (const [label, change, want] of CASES) {
    const bad = join(root, 'bad');
    rmSync(bad, { recursive: true, force: true });
    cpSync(good, bad, { recursive: true });
    change(bad);
    const runs: [string, string[]][] = [
      ['generate', ['generate', '--model', base, '--adapter', bad, '--max-tokens', '4', '--backend', 'cpu']],
      ['eval', ['eval', '--model', base, '--adapter', bad, '--text', text, '--backend', 'cpu']],
      ['merge', ['merge', '--adapter', bad, '--out', join(root, 'merged')]],
      ['export', ['export', 'gguf', '--adapter', bad, '--out', join(root, 'x.gguf')]],
    ];
    const reasons: string[] = [];
    for (const [path, args] of runs) {
      const r = qlora(args);
      assert.equal(r.code, 1, `${label} / ${path}: exit ${r.code} (${r.stderr})`);
      assert.match(r.stderr, want, `${label} / ${path}`);
      reasons.push(r.stderr.slice(r.stderr.indexOf(bad)).trim());
    }
    assert.equal(new Set(reasons).size, 1, `${label}: the paths give different reasons:\n${reasons.join('\n')}`);
    console.log(`# ${label}: ${reasons[0]}`);
    assert.ok(!existsSync(join(root, 'merged')) && !existsSync(join(root, 'x.gguf')));
    assert.deepEqual(readdirSync(root).filter((n) => n.startsWith('.')), [], `${label}: no temporary output left`);
  }
});

test('train --resume refuses a checkpoint adapter with an unsupported option the same way; a trained adapter names its base loadably', () => {
  const dir = join(root, 'run');
  writeFileSync(join(root, 'train.jsonl'), shipLogs(24, 5).map((t) => JSON.stringify({ text: t })).join('\n') + '\n');
  const cfg = join(root, 'run.qlora');
  writeFileSync(cfg, `model:
  base: ${base}
  quantization: nf4
lora:
  r: 4
  alpha: 8
  target_modules: [q_proj, v_proj]
data:
  train: ./train.jsonl
  format: text
  validation_split: 0
  max_seq_len: 32
training:
  max_steps: 2
  micro_batch_size: 2
  eval_every: 0
  save_every: 1
  backend: cpu
output:
  dir: ${dir}
`);
  const t = qlora(['train', cfg, '--max-steps', '1', '--json']);
  assert.equal(t.code, 0, t.stderr);
  const ckpt = join(dir, 'checkpoints', 'step-1');
  const peft = JSON.parse(readFileSync(join(ckpt, 'adapter_config.json'), 'utf8'));
  assert.equal(peft.base_model_name_or_path, 'base', 'the folder name: a llama2.c base has no hub name');
  assert.equal(JSON.parse(readFileSync(join(ckpt, BASE_MODEL_SIDECAR), 'utf8')).path, base);
  const saved = join(root, 'step-1.saved');
  cpSync(ckpt, saved, { recursive: true });
  for (const [label, change, want] of CASES) {
    rmSync(ckpt, { recursive: true, force: true });
    cpSync(saved, ckpt, { recursive: true });
    change(ckpt);
    const r = qlora(['train', cfg, '--resume', '--json']);
    assert.equal(r.code, 1, `${label} / resume: exit ${r.code} (${r.stderr})`);
    assert.match(r.stderr, want, `${label} / resume`);
  }
  // The untouched checkpoint resumes, and its merge finds the base through the sidecar alone.
  rmSync(ckpt, { recursive: true, force: true });
  cpSync(saved, ckpt, { recursive: true });
  const ok = qlora(['train', cfg, '--resume', '--json']);
  assert.equal(ok.code, 0, ok.stderr);
  const m = qlora(['merge', '--adapter', join(dir, 'adapter'), '--out', join(root, 'merged-run')]);
  assert.equal(m.code, 0, m.stderr);
});
