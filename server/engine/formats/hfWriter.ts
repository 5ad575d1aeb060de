// Saves a model as a standalone Hugging Face folder that transformers (and loadModel) can
// load: config.json, generation_config.json, model.safetensors (sharded when large), and
// the tokenizer — copied from a Hugging Face source, converted from a llama2.c one.
// Everything is written into a temporary folder beside outDir and renamed at the end, so
// outDir is either the complete new model or untouched.
import { copyFileSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { isNonEmptyDir, replaceDir } from './binaryFile';
import { basename, dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { LlamaConfig } from '../model/config';
import { HuggingFaceTokenizer, TOKENIZER_FILES } from '../tokenizer/huggingface';
import { Llama2cTokenizer } from '../tokenizer/llama2c';
import { llama2cToHuggingFace } from '../tokenizer/toHuggingFace';
import type { Tokenizer } from '../tokenizer/types';
import { toHfConfigJson, type TorchDtype } from './hfConfig';
import { checkWeights, expectedWeightShapes } from './modelFolder';
import { writeSafetensorsSharded, type SafetensorsDtype } from './safetensors';
import type { LoadedModel, WeightMap } from './types';

export interface WriteHuggingFaceOptions {
  dtype: SafetensorsDtype;
  /** Replace an existing non-empty outDir. */
  force?: boolean;
  /** Shard size limit; transformers' default of 5 GB. */
  maxShardBytes?: number;
}

const TORCH_DTYPE: Record<SafetensorsDtype, TorchDtype> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

/** The tokenizer files to write, name -> contents or a source path to copy. */
function tokenizerFiles(tokenizer: Tokenizer, config: LlamaConfig): Map<string, { json: unknown } | { copy: string }> {
  const files = new Map<string, { json: unknown } | { copy: string }>();
  if (tokenizer instanceof Llama2cTokenizer) {
    const converted = llama2cToHuggingFace(tokenizer, { modelMaxLength: config.maxPositionEmbeddings });
    files.set('tokenizer.json', { json: converted.tokenizer });
    files.set('tokenizer_config.json', { json: converted.tokenizerConfig });
  } else if (tokenizer instanceof HuggingFaceTokenizer) {
    for (const name of TOKENIZER_FILES) {
      const source = join(tokenizer.dir, name);
      if (existsSync(source)) files.set(name, { copy: source });
    }
  } else {
    throw new Error('cannot save this tokenizer: only tokenizers loaded from a llama2.c or Hugging Face model can be written');
  }
  return files;
}

function generationConfig(tokenizer: Tokenizer): { json: unknown } | { copy: string } {
  if (tokenizer instanceof HuggingFaceTokenizer && existsSync(join(tokenizer.dir, 'generation_config.json'))) {
    return { copy: join(tokenizer.dir, 'generation_config.json') }; // keeps the model's sampling defaults
  }
  return { json: { _from_model_config: true, bos_token_id: tokenizer.bosId, eos_token_id: eosField(tokenizer) } };
}

function eosField(tokenizer: Tokenizer): number | number[] {
  return tokenizer.eosIds.length > 1 ? [...tokenizer.eosIds] : tokenizer.eosId;
}

/** Weights in the model's parameter order, without a tied head (it is the embedding). */
function orderedWeights(weights: WeightMap, config: LlamaConfig, target: string): WeightMap {
  const checked: WeightMap = new Map(weights);
  checkWeights(checked, config, target);
  const out: WeightMap = new Map();
  for (const name of expectedWeightShapes(config).keys()) out.set(name, checked.get(name)!);
  return out;
}

/** config.json, generation_config.json and the tokenizer files of a Hugging Face folder. */
export function writeModelSideFiles(dir: string, config: LlamaConfig, tokenizer: Tokenizer, torchDtype: TorchDtype): void {
  const put = (name: string, content: { json: unknown } | { copy: string }) => {
    if ('copy' in content) copyFileSync(content.copy, join(dir, name));
    else writeFileSync(join(dir, name), JSON.stringify(content.json, null, 2) + '\n');
  };
  // Llama 3.x ends on any of several ids: the tokenizer keeps the list whole, and so does config.json.
  put('config.json', { json: { ...toHfConfigJson(config, torchDtype), ...(tokenizer.eosIds.length > 1 ? { eos_token_id: eosField(tokenizer) } : {}) } });
  put('generation_config.json', generationConfig(tokenizer));
  for (const [name, content] of tokenizerFiles(tokenizer, config)) put(name, content);
}

/**
 * Writes `model` as a Hugging Face LlamaForCausalLM-family folder at `outDir` with weights in
 * `opts.dtype`. Refuses an existing non-empty outDir unless `opts.force`. Returns the folder.
 */
export function writeHuggingFaceFolder(
  outDir: string,
  model: Pick<LoadedModel, 'config' | 'weights' | 'tokenizer'>,
  opts: WriteHuggingFaceOptions,
): string {
  const target = resolve(outDir);
  if (isNonEmptyDir(target) && !opts.force) {
    throw new Error(`${target} already exists and is not empty; choose another folder or replace it (force)`);
  }
  const weights = orderedWeights(model.weights, model.config, target);
  tokenizerFiles(model.tokenizer, model.config); // refuses an unsavable tokenizer before anything is written

  const temp = join(dirname(target), `.${basename(target)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  mkdirSync(temp, { recursive: true });
  try {
    writeModelSideFiles(temp, model.config, model.tokenizer, TORCH_DTYPE[opts.dtype]);
    writeSafetensorsSharded(temp, weights, { dtype: opts.dtype, maxShardBytes: opts.maxShardBytes ?? 5e9 });
    replaceDir(temp, target);
  } catch (err) {
    rmSync(temp, { recursive: true, force: true });
    throw err;
  }
  return target;
}
