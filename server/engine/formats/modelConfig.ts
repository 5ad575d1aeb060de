// Where a model's files are and its architecture, read cheaply (config.json or a llama2.c
// header, never the weights). Apart from modelFolder.ts so that what needs only the
// architecture (the language server's checks, completion and cost lens) does not bundle
// the Hugging Face tokenizer library.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { LlamaConfig } from '../model/config';
import { Llama2cTokenizer } from '../tokenizer/llama2c';
import { parseHfConfig } from './hfConfig';
import { checkLlama2cFileSize, llama2cConfig, llama2cFileBytes, readLlama2cHeader } from './llama2c';
import { INDEX_FILE_NAME, SINGLE_FILE_NAME } from './safetensors';
import { ModelFormatError } from './types';

/** Where a model's files are, before reading any weights. */
export type ModelLocation =
  | { format: 'huggingface'; dir: string; configFile: string; weightsFile: string; sharded: boolean }
  | { format: 'llama2c'; dir: string; checkpoint: string; tokenizer?: string };

const LOOKED_FOR = 'looked for config.json with model.safetensors (Hugging Face) or a llama2.c checkpoint .bin with its tokenizer .bin';
/** A llama2.c tokenizer.bin is a few hundred KB even for 32k tokens; larger .bin files are not parsed as one. */
const MAX_TOKENIZER_BYTES = 16 << 20;

export function fileSize(file: string): number {
  return statSync(file).size;
}

/** A llama2.c checkpoint is a file whose size is exactly what its header implies. */
function isCheckpoint(file: string): boolean {
  try {
    return llama2cFileBytes(readLlama2cHeader(file)) === fileSize(file);
  } catch {
    return false;
  }
}

function looksLikeTokenizer(file: string): boolean {
  if (/tok/i.test(basename(file))) return true;
  if (fileSize(file) > MAX_TOKENIZER_BYTES) return false;
  try {
    Llama2cTokenizer.fromFile(file);
    return true;
  } catch {
    return false;
  }
}

/** Sorts a folder's .bin files into llama2.c checkpoints and tokenizers. */
function classifyBins(dir: string, exclude?: string): { checkpoints: string[]; tokenizers: string[]; unknown: string[] } {
  const bins = readdirSync(dir).filter((n) => n.toLowerCase().endsWith('.bin')).map((n) => join(dir, n)).filter((f) => f !== exclude && statSync(f).isFile());
  const out = { checkpoints: [] as string[], tokenizers: [] as string[], unknown: [] as string[] };
  for (const f of bins) {
    if (isCheckpoint(f)) out.checkpoints.push(f);
    else if (looksLikeTokenizer(f)) out.tokenizers.push(f);
    else out.unknown.push(f);
  }
  return out;
}

function pickTokenizer(where: string, tokenizers: string[]): string | undefined {
  if (tokenizers.length > 1) {
    throw new ModelFormatError(where, `has several llama2.c tokenizer files (${tokenizers.map((f) => basename(f)).join(', ')}); keep one beside the checkpoint`);
  }
  return tokenizers[0];
}

/** Finds a model's files from a folder or a llama2.c checkpoint path. Reads headers only. */
export function locateModel(path: string): ModelLocation {
  const target = resolve(path);
  if (!existsSync(target)) throw new ModelFormatError(target, `does not exist (${LOOKED_FOR})`);
  if (statSync(target).isFile()) {
    if (!target.toLowerCase().endsWith('.bin')) throw new ModelFormatError(target, `is not a model folder or a llama2.c checkpoint .bin (${LOOKED_FOR})`);
    const dir = dirname(target);
    return { format: 'llama2c', dir, checkpoint: target, tokenizer: pickTokenizer(dir, classifyBins(dir, target).tokenizers) };
  }
  const dir = target;
  const configFile = join(dir, 'config.json');
  if (existsSync(configFile)) {
    const single = join(dir, SINGLE_FILE_NAME);
    const index = join(dir, INDEX_FILE_NAME);
    if (existsSync(single)) return { format: 'huggingface', dir, configFile, weightsFile: single, sharded: false };
    if (existsSync(index)) return { format: 'huggingface', dir, configFile, weightsFile: index, sharded: true };
    const pickle = existsSync(join(dir, 'pytorch_model.bin')) ? ' (pytorch_model.bin is a PyTorch pickle: convert it to safetensors)' : '';
    throw new ModelFormatError(dir, `has config.json but no ${SINGLE_FILE_NAME} or ${INDEX_FILE_NAME}${pickle}`);
  }
  if (existsSync(join(dir, 'adapter_config.json'))) {
    throw new ModelFormatError(dir, `is a LoRA adapter folder (adapter_config.json), not a base model (${LOOKED_FOR})`);
  }
  const { checkpoints, tokenizers, unknown } = classifyBins(dir);
  // A damaged checkpoint fails the size check: when it is the only candidate, read it anyway
  // so the user gets the size error rather than "no model here".
  const candidates = checkpoints.length > 0 ? checkpoints : unknown;
  if (candidates.length === 0) throw new ModelFormatError(dir, `is not a model folder: ${LOOKED_FOR}`);
  if (candidates.length > 1) {
    throw new ModelFormatError(dir, `has several llama2.c checkpoint candidates (${candidates.map((f) => basename(f)).join(', ')}); keep one or pass the checkpoint's path`);
  }
  return { format: 'llama2c', dir, checkpoint: candidates[0], tokenizer: pickTokenizer(dir, tokenizers) };
}

export function readConfigJson(file: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ModelFormatError(file, `cannot read as JSON (${(err as Error).message})`);
  }
}

/** The architecture only (config.json or the llama2.c header): cheap, for completion, hover and cost estimates. */
export function readModelConfig(path: string): LlamaConfig {
  const loc = locateModel(path);
  if (loc.format === 'huggingface') return parseHfConfig(readConfigJson(loc.configFile), loc.configFile);
  const header = readLlama2cHeader(loc.checkpoint);
  checkLlama2cFileSize(header, fileSize(loc.checkpoint), loc.checkpoint);
  return llama2cConfig(header);
}

