// A merged Llama 3.x model still stops on every id of its EOS list ([128001, 128008, 128009]:
// <|end_of_text|>, <|eom_id|>, <|eot_id|>): merge writes the list whole into config.json and
// generation_config.json, and loading the merged folder gives the tokenizer the same list.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeHuggingFaceFolder } from '../../server/engine/formats/hfWriter';
import { loadModel } from '../../server/engine/formats/modelFolder';
import { HuggingFaceTokenizer } from '../../server/engine/tokenizer/huggingface';
import { mergeAdapter } from '../../server/engine/merge';
import { randomLlama } from '../helpers/reference';
import { realTokenizerDir } from '../helpers/realTokenizers';
import { writeAdapter } from './fixtures';

const LLAMA3_EOS = [128001, 128008, 128009];

test('merge keeps a Llama 3.x EOS id list whole (config.json, generation_config.json, the loaded tokenizer)', async (t) => {
  const found = realTokenizerDir('Llama 3.1 (byte-level BPE, 128K)');
  if (found.skip) return t.skip(found.skip);
  const root = mkdtempSync(join(tmpdir(), 'qlora-eos-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const tokenizer = HuggingFaceTokenizer.fromFolder(found.dir);
  const { config, weights } = randomLlama(4, { vocabSize: tokenizer.vocabSize, hiddenSize: 16, intermediateSize: 24, headDim: 4, bosTokenId: 128000, eosTokenId: 128001 });
  const base = writeHuggingFaceFolder(join(root, 'base'), { config, weights, tokenizer }, { dtype: 'BF16' });
  // As Meta ships Llama 3.1 Instruct: the list in config.json; here no generation_config.json.
  const configJson = JSON.parse(readFileSync(join(base, 'config.json'), 'utf8'));
  writeFileSync(join(base, 'config.json'), JSON.stringify({ ...configJson, eos_token_id: LLAMA3_EOS }));
  rmSync(join(base, 'generation_config.json'));
  const loadedBase = await loadModel(base);
  assert.deepEqual([...loadedBase.tokenizer.eosIds].sort(), LLAMA3_EOS);

  writeAdapter(join(root, 'adapter'), config, { baseModel: base });
  const out = join(root, 'merged');
  await mergeAdapter({ adapter: join(root, 'adapter'), out, base });
  const written = (name: string) => JSON.parse(readFileSync(join(out, name), 'utf8')).eos_token_id as number[];
  assert.deepEqual([...written('config.json')].sort(), LLAMA3_EOS);
  assert.deepEqual([...written('generation_config.json')].sort(), LLAMA3_EOS);
  const merged = await loadModel(out);
  assert.deepEqual([...merged.tokenizer.eosIds].sort(), LLAMA3_EOS);
  assert.equal(merged.tokenizer.eosId, 128009); // tokenizer_config.json's eos_token, <|eot_id|>
});
