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

export { locateModel, readModelConfig, type ModelLocation } from './modelConfig';
import { fileSize, locateModel, readConfigJson } from './modelConfig';

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
