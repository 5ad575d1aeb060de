// A throwaway project folder for config and language-server tests: a tiny Hugging Face
// model, a folder that is not a model, and data files good and bad, written by the test
// itself so nothing depends on files outside the repository.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Position } from '../../server/config';

/** The tiny model's architecture, for expected parameter counts. */
export const TINY = { hidden: 16, intermediate: 40, layers: 2, heads: 4, kvHeads: 2, vocab: 32 } as const;

export interface Workspace {
  dir: string;
  cleanup(): void;
}

export function makeWorkspace(): Workspace {
  const dir = mkdtempSync(join(tmpdir(), 'qlora-config-'));
  const model = join(dir, 'models', 'tiny');
  mkdirSync(model, { recursive: true });
  writeFileSync(
    join(model, 'config.json'),
    JSON.stringify({
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      hidden_size: TINY.hidden,
      intermediate_size: TINY.intermediate,
      num_hidden_layers: TINY.layers,
      num_attention_heads: TINY.heads,
      num_key_value_heads: TINY.kvHeads,
      vocab_size: TINY.vocab,
      max_position_embeddings: 128,
      tie_word_embeddings: true,
    }),
  );
  // The config checks read config.json only, but a model folder needs its weights file
  // to be recognised; a safetensors file holding no tensors is a valid one.
  writeFileSync(join(model, 'model.safetensors'), safetensorsWithNoTensors());
  mkdirSync(join(dir, 'models', 'notamodel'), { recursive: true });
  writeFileSync(join(dir, 'models', 'notamodel', 'README.txt'), 'just notes\n');

  mkdirSync(join(dir, 'data'));
  writeFileSync(
    join(dir, 'data', 'alpaca.jsonl'),
    [
      { instruction: 'Say hi', input: '', output: 'Hi!' },
      { instruction: 'Add', input: '2 + 2', output: '4' },
    ].map((r) => JSON.stringify(r)).join('\n') + '\n',
  );
  writeFileSync(join(dir, 'data', 'text.jsonl'), '{"text": "once upon a time"}\n{"text": "the end"}\n');
  // Line 2 lacks "output": an alpaca file that breaks on its second line.
  writeFileSync(join(dir, 'data', 'broken.jsonl'), '{"instruction": "a", "output": "b"}\n{"instruction": "c"}\n');
  writeFileSync(join(dir, 'data', 'empty.jsonl'), '');
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

function safetensorsWithNoTensors(): Buffer {
  const header = Buffer.from('{}');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(header.length));
  return Buffer.concat([length, header]);
}

/** A config that is valid against the workspace: every key DESIGN.md's sketch names. */
export const GOOD_CONFIG = `model:
  base: ./models/tiny
  quantization: nf4
  double_quant: true
  block_size: 64
lora:
  r: 8
  alpha: 16
  dropout: 0.05
  target_modules: [q_proj, k_proj, v_proj, o_proj]
  rslora: false
data:
  train: ./data/alpaca.jsonl
  format: alpaca
  validation_split: 0.1
  max_seq_len: 64
training:
  epochs: 3
  micro_batch_size: 4
  gradient_accumulation_steps: 4
  learning_rate: 2.0e-4
  lr_scheduler: cosine
  warmup_steps: 10
  max_grad_norm: 0.3
  seed: 42
  eval_every: 50
  save_every: 100
  backend: auto
output:
  dir: ./runs/my-run
`;

/** Splits a fixture at its `|` caret: the text without it and the caret's position. */
export function caret(marked: string): { text: string; position: Position } {
  const at = marked.indexOf('|');
  if (at < 0 || marked.indexOf('|', at + 1) >= 0) throw new Error('a fixture needs exactly one | caret');
  const text = marked.slice(0, at) + marked.slice(at + 1);
  const before = marked.slice(0, at).split('\n');
  return { text, position: { line: before.length - 1, character: before[before.length - 1].length } };
}
