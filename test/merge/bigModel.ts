// A generated Hugging Face model large enough to measure a merge's memory on (>= 100 MB of
// float32 weights), with a random adapter beside it. Weights are uniform noise from a cheap
// generator: the merge's memory and time do not depend on their values.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tokenizerBin } from '../../server/demo/tinyModel';
import { shipLogs } from '../../server/demo/corpus';
import { Llama2cTokenizer } from '../../server/engine/tokenizer/llama2c';
import { llama2cToHuggingFace } from '../../server/engine/tokenizer/toHuggingFace';
import { toHfConfigJson } from '../../server/engine/formats/hfConfig';
import { expectedWeightShapes } from '../../server/engine/formats/modelFolder';
import { writeSafetensors, type SafetensorsDtype } from '../../server/engine/formats/safetensors';
import type { WeightMap } from '../../server/engine/formats/types';
import type { LlamaConfig } from '../../server/engine/model/config';
import { writeAdapter } from './fixtures';

export function bigConfig(hiddenSize: number, intermediateSize: number, numLayers: number): LlamaConfig {
  return {
    family: 'llama', vocabSize: 4096, hiddenSize, intermediateSize, numLayers, numHeads: hiddenSize / 64, numKvHeads: hiddenSize / 64,
    headDim: 64, maxPositionEmbeddings: 512, rmsNormEps: 1e-5, ropeTheta: 10000, tieWordEmbeddings: false, attentionBias: false,
    bosTokenId: 1, eosTokenId: 2,
  };
}

/** xorshift32 noise in [-scale, scale). */
function noise(n: number, seed: number, scale: number): Float32Array {
  const out = new Float32Array(n);
  let x = seed | 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = ((x >>> 0) / 2 ** 32 - 0.5) * 2 * scale;
  }
  return out;
}

/** Writes `dir/base` (config, tokenizer, one model.safetensors) and `dir/adapter`; returns the float32 weight bytes. */
export function writeBigModel(dir: string, c: LlamaConfig, dtype: SafetensorsDtype = 'F32'): number {
  const base = join(dir, 'base');
  mkdirSync(base, { recursive: true });
  const tokBin = join(dir, 'tok.bin');
  writeFileSync(tokBin, tokenizerBin(shipLogs(100, 1), 100).bytes);
  const tok = llama2cToHuggingFace(Llama2cTokenizer.fromFile(tokBin), { modelMaxLength: c.maxPositionEmbeddings });
  writeFileSync(join(base, 'tokenizer.json'), JSON.stringify(tok.tokenizer));
  writeFileSync(join(base, 'tokenizer_config.json'), JSON.stringify(tok.tokenizerConfig));
  writeFileSync(join(base, 'config.json'), JSON.stringify(toHfConfigJson(c, dtype === 'F32' ? 'float32' : dtype === 'F16' ? 'float16' : 'bfloat16')));
  const weights: WeightMap = new Map();
  let seed = 1, bytes = 0;
  for (const [name, shape] of expectedWeightShapes(c)) {
    const n = shape.reduce((a, b) => a * b, 1);
    weights.set(name, { shape, data: name.endsWith('norm.weight') ? new Float32Array(n).fill(1) : noise(n, seed++, 0.05) });
    bytes += 4 * n;
  }
  writeSafetensors(join(base, 'model.safetensors'), weights, { dtype });
  weights.clear();
  writeAdapter(join(dir, 'adapter'), c, { baseModel: '../base', r: 16, alpha: 32 });
  return bytes;
}
