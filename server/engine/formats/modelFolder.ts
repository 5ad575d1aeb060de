// Finding and loading a model: a Hugging Face folder (config.json + model.safetensors or a
// sharded index + tokenizer.json) or a llama2.c folder (one checkpoint .bin + its tokenizer
// .bin, or the checkpoint's path itself). Weights are checked against the config before
// anything downstream sees them, so a wrong or damaged model fails here with the file and the
// tensor named, not later inside a matmul.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { LINEAR_MODULES, linearName, linearShape, type LlamaConfig } from '../model/config';
import { HuggingFaceTokenizer } from '../tokenizer/huggingface';
import { Llama2cTokenizer } from '../tokenizer/llama2c';
import type { Tokenizer } from '../tokenizer/types';
import { parseHfConfig } from './hfConfig';
import { checkLlama2cFileSize, llama2cConfig, llama2cFileBytes, readLlama2cCheckpoint, readLlama2cHeader } from './llama2c';
import { INDEX_FILE_NAME, SINGLE_FILE_NAME, streamSafetensors, streamSafetensorsSharded } from './safetensors';
import { LoadedModel, ModelFormatError, WeightMap } from './types';

/** Where a model's files are, before reading any weights. */
export type ModelLocation =
  | { format: 'huggingface'; dir: string; configFile: string; weightsFile: string; sharded: boolean }
  | { format: 'llama2c'; dir: string; checkpoint: string; tokenizer?: string };

const LOOKED_FOR = 'looked for config.json with model.safetensors (Hugging Face) or a llama2.c checkpoint .bin with its tokenizer .bin';
/** A llama2.c tokenizer.bin is a few hundred KB even for 32k tokens; larger .bin files are not parsed as one. */
const MAX_TOKENIZER_BYTES = 16 << 20;

function fileSize(file: string): number {
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

function readConfigJson(file: string): Record<string, unknown> {
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

/** Parameter names and shapes that a LlamaForCausalLM with this config has. */
export function expectedWeightShapes(c: LlamaConfig): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  shapes.set('model.embed_tokens.weight', [c.vocabSize, c.hiddenSize]);
  for (let layer = 0; layer < c.numLayers; layer++) {
    shapes.set(`model.layers.${layer}.input_layernorm.weight`, [c.hiddenSize]);
    for (const m of LINEAR_MODULES) {
      shapes.set(`${linearName(layer, m)}.weight`, linearShape(c, m));
      if (c.attentionBias && (m === 'q_proj' || m === 'k_proj' || m === 'v_proj')) {
        shapes.set(`${linearName(layer, m)}.bias`, [linearShape(c, m)[0]]);
      }
    }
    shapes.set(`model.layers.${layer}.post_attention_layernorm.weight`, [c.hiddenSize]);
  }
  shapes.set('model.norm.weight', [c.hiddenSize]);
  if (!c.tieWordEmbeddings) shapes.set('lm_head.weight', [c.vocabSize, c.hiddenSize]);
  return shapes;
}

/**
 * config.json's num_hidden_layers against the blocks the weights hold, before anything
 * per layer is built: a mutated count (1e9) must fail at once, not loop or allocate.
 */
function checkLayerCount(weights: WeightMap, c: LlamaConfig, file: string): void {
  let present = 0;
  for (const name of weights.keys()) {
    const m = /^model\.layers\.(\d+)\./.exec(name);
    if (m) present = Math.max(present, Number(m[1]) + 1);
  }
  if (present !== c.numLayers) {
    const held = present === 0 ? 'no model.layers.* tensors' : `${present} blocks (model.layers.0 to model.layers.${present - 1})`;
    throw new ModelFormatError(file, `config.json says num_hidden_layers ${c.numLayers} but the weights hold ${held}`);
  }
}

/**
 * Checks that `weights` are exactly the model's parameters with the config's shapes, after
 * dropping what some exporters add but the model does not own (a copy of a tied head,
 * rotary inv_freq buffers). `file` is named in the error.
 */
export function checkWeights(weights: WeightMap, c: LlamaConfig, file: string): void {
  checkLayerCount(weights, c, file);
  const expected = expectedWeightShapes(c);
  for (const name of [...weights.keys()]) {
    if (expected.has(name)) continue;
    if ((name === 'lm_head.weight' && c.tieWordEmbeddings) || name.endsWith('.rotary_emb.inv_freq')) weights.delete(name);
    else throw new ModelFormatError(file, `unexpected tensor "${name}": not a parameter of a ${c.family} model with this config`);
  }
  for (const [name, shape] of expected) {
    const t = weights.get(name);
    if (!t) throw new ModelFormatError(file, `missing tensor "${name}" (shape [${shape.join(', ')}])`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new ModelFormatError(file, `tensor "${name}" has shape [${t.shape.join(', ')}] but the config needs [${shape.join(', ')}]`);
    }
  }
}

/**
 * Loads a Hugging Face or llama2.c model: config, tokenizer, and checked weights. Hugging
 * Face weights are streamed: every header is checked against config.json (names, shapes,
 * dtypes, offsets) here, before any tensor data is read; each tensor's data is read when
 * the model first uses it (LlamaModel quantizes it then), and unused tensors never are.
 */
export async function loadModel(path: string): Promise<LoadedModel> {
  const loc = locateModel(path);
  if (loc.format === 'huggingface') {
    const configJson = readConfigJson(loc.configFile);
    const config = parseHfConfig(configJson, loc.configFile);
    const tokenizer = HuggingFaceTokenizer.fromFolder(loc.dir, configJson);
    if (tokenizer.vocabSize > config.vocabSize) {
      // Embeddings are often padded past the tokenizer (Qwen2, Phi), so only a larger tokenizer is wrong.
      throw new ModelFormatError(join(loc.dir, 'tokenizer.json'), `has ${tokenizer.vocabSize} tokens but config.json vocab_size is ${config.vocabSize}: ids past ${config.vocabSize - 1} would have no embedding`);
    }
    const weights = loc.sharded ? streamSafetensorsSharded(loc.dir).tensors : streamSafetensors([loc.weightsFile]).tensors;
    checkWeights(weights, config, loc.weightsFile);
    return { dir: loc.dir, format: 'huggingface', config, weights, tokenizer };
  }
  const header = readLlama2cHeader(loc.checkpoint);
  checkLlama2cFileSize(header, fileSize(loc.checkpoint), loc.checkpoint);
  if (!loc.tokenizer) {
    throw new ModelFormatError(loc.dir, `has the llama2.c checkpoint ${basename(loc.checkpoint)} but no tokenizer .bin beside it (e.g. tokenizer.bin or tok512.bin)`);
  }
  const tokenizer: Tokenizer = Llama2cTokenizer.fromFile(loc.tokenizer);
  if (tokenizer.vocabSize !== header.vocabSize) {
    throw new ModelFormatError(loc.tokenizer, `has ${tokenizer.vocabSize} tokens but the checkpoint ${basename(loc.checkpoint)} has vocab_size ${header.vocabSize}`);
  }
  const { config, weights } = readLlama2cCheckpoint(loc.checkpoint);
  checkWeights(weights, config, loc.checkpoint);
  return { dir: loc.dir, format: 'llama2c', config, weights, tokenizer };
}
