// The end-to-end workspace: the demo's tiny Llama (random weights, a vocabulary learnt
// from the data), its ship's-log data set and a train.qlora, all made here so that the
// suite needs nothing downloaded. The config starts with one wrong value that the test
// sees in the Problems panel and then fixes by accepting a completion.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { shipLogs } from '../../server/demo/corpus';
import { writeTinyModel } from '../../server/demo/tinyModel';
import { configText as qloraText } from '../../server/config/write';

/** The value the test types over: `nf5` is not a quantization, `nf4` is. */
export const WRONG_VALUE = 'nf5';
export const RIGHT_VALUE = 'nf4';

export function configText(quantization: string, maxSteps = 2000): string {
  return qloraText({
    model: { base: './model', quantization, double_quant: true, block_size: 64 },
    lora: { r: 8, alpha: 16, dropout: 0, target_modules: 'all-linear' },
    data: { train: './data/train.jsonl', format: 'text', validation_split: 0.1, max_seq_len: 64 },
    training: {
      max_steps: maxSteps, micro_batch_size: 8, gradient_accumulation_steps: 4, learning_rate: 1e-2, lr_scheduler: 'cosine',
      warmup_steps: 3, seed: 42, eval_every: 10, save_every: 20, backend: 'wasm',
    },
    output: { dir: './runs/e2e' },
  }, "End-to-end fixture: the demo's tiny model on ship's logs.");
}

/** Writes the workspace into `dir` (model, data, train.qlora with the wrong value). */
export function writeWorkspace(dir: string): void {
  mkdirSync(join(dir, 'data'), { recursive: true });
  const logs = shipLogs(300, 7);
  writeFileSync(join(dir, 'data', 'train.jsonl'), logs.map((text) => JSON.stringify({ text })).join('\n') + '\n');
  writeTinyModel(join(dir, 'model'), logs);
  writeFileSync(join(dir, 'train.qlora'), configText(WRONG_VALUE));
}
