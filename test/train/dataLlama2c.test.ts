// The data pipeline with a real SentencePiece-style tokenizer (stories260K's tok512),
// where tokens merge across the prompt/response boundary and text gets a dummy prefix.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { Llama2cTokenizer } from '../../server/engine/tokenizer/llama2c';
import { Batcher } from '../../server/engine/train/batching';
import { buildExamples } from '../../server/engine/train/data';
import { alpacaPrompt } from '../../server/engine/train/tokenize';
import { stories260K } from '../helpers/shared';

const model = stories260K();
const tokenizer = () => Llama2cTokenizer.fromFile(join(model.dir, 'tok512.bin'));
const opts = { maxSeqLen: 256, seed: 1 };

test('alpaca: the masked prompt is the prompt tokenized alone; the rest decodes to the output', { skip: model.skip }, () => {
  const tok = tokenizer();
  const record = { instruction: 'Tell a story about a cat.', input: '', output: 'Once upon a time, there was a cat.' };
  const { examples } = buildExamples(JSON.stringify(record), 'f.jsonl', tok, { format: 'alpaca', ...opts });
  const { ids, mask } = examples[0];
  const prompt = alpacaPrompt(record);
  assert.deepEqual([...ids], [...tok.encode(prompt + record.output), tok.eosId]);
  const promptLen = mask.indexOf(1);
  assert.ok(promptLen > 1);
  assert.deepEqual([...mask.subarray(promptLen)], Array(ids.length - promptLen).fill(1));
  assert.deepEqual([...ids.subarray(0, promptLen)], tok.encode(prompt).slice(0, promptLen));
  assert.equal(tok.decode([...ids.subarray(0, promptLen)]) + tok.decode([...ids.subarray(promptLen)]), prompt + record.output);
  assert.ok(tok.decode([...ids.subarray(promptLen)]).endsWith(record.output));
});

test('text examples batch into [B, T] with the pad id and zero weights on padding', { skip: model.skip }, () => {
  const tok = tokenizer();
  const lines = ['Lily had a red ball.', 'Tom ran.'].map((text) => JSON.stringify({ text })).join('\n');
  const { examples } = buildExamples(lines, 'f.jsonl', tok, { format: 'text', ...opts });
  const b = new Batcher(examples, { microBatchSize: 2, maxSeqLen: 256, padId: 0, seed: 1 }).next();
  const lengths = examples.map((e) => e.ids.length - 1);
  assert.deepEqual(b.shape, [2, Math.max(...lengths)]);
  assert.equal(b.weights.reduce((s, w) => s + w, 0), lengths[0] + lengths[1]);
  assert.equal(b.targetCount, lengths[0] + lengths[1]);
});

test('chat format is refused for a model without a chat template', { skip: model.skip }, () => {
  const line = JSON.stringify({ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'yo' }] });
  assert.throws(() => buildExamples(line, 'f.jsonl', tokenizer(), { format: 'chat', ...opts }),
    /^DataError: f\.jsonl: data format "chat" needs a chat template/);
});
