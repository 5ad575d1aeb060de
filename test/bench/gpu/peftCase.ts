// Prepares, on this machine, the PEFT interop check that the GPU machine runs with real
// transformers + peft (peft_check.py): stories260K converted to the Hugging Face layout,
// an adapter this project trains on it (NF4 base, LoRA on all seven projections, 30
// steps, so that B is no longer zero), a held-out text, and our own answer on that text
// from `qlora eval --quantization none` (the fp32 base plus the adapter: the same model
// PeftModel.from_pretrained builds). Nothing here needs a GPU.
//   node --import tsx test/bench/gpu/peftCase.ts OUT_DIR [STORIES260K_DIR]
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { configText } from '../../../server/config/write';
import { shipLogs } from '../../../server/demo/corpus';

const out = resolve(process.argv[2] ?? '.tmp/gpu-pack/peft');
const stories = resolve(process.argv[3] ?? join(__dirname, '../../../../shared/models/stories260K'));
const cli = join(__dirname, '../../../server/cli.ts');

function qlora(args: string[]): string {
  const r = spawnSync(process.execPath, ['--import', 'tsx', cli, ...args], { encoding: 'utf8', cwd: join(__dirname, '../../..') });
  if (r.status !== 0) throw new Error(`qlora ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

mkdirSync(out, { recursive: true });
qlora(['convert', stories, '--out', join(out, 'base'), '--force']);
writeFileSync(join(out, 'train.jsonl'), shipLogs(80, 3).map((text) => JSON.stringify({ text })).join('\n') + '\n');
writeFileSync(join(out, 'heldout.txt'), shipLogs(3, 11).join('\n'));
writeFileSync(join(out, 'peft.qlora'), configText({
  model: { base: './base', quantization: 'nf4' },
  lora: { r: 8, alpha: 16, dropout: 0, target_modules: 'all-linear' },
  data: { train: './train.jsonl', format: 'text', validation_split: 0, max_seq_len: 128 },
  training: { max_steps: 30, micro_batch_size: 4, gradient_accumulation_steps: 1, learning_rate: 1e-2, warmup_steps: 2, eval_every: 0, save_every: 0, backend: 'wasm' },
  output: { dir: './run' },
}));
qlora(['train', join(out, 'peft.qlora'), '--json']);
const ours = {
  base: JSON.parse(qlora(['eval', '--model', join(out, 'base'), '--quantization', 'none', '--text', join(out, 'heldout.txt'), '--json']).trim().split('\n').pop()!),
  adapter: JSON.parse(qlora(['eval', '--model', join(out, 'base'), '--adapter', join(out, 'run/adapter'), '--quantization', 'none', '--text', join(out, 'heldout.txt'), '--json']).trim().split('\n').pop()!),
};
writeFileSync(join(out, 'ours.json'), JSON.stringify(ours, null, 2) + '\n');
console.log(JSON.stringify(ours));
