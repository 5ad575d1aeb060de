// `qlora generate` on a chat model: a random-weight model folder with the real Qwen3
// tokenizer (ChatML template, no BOS). The prompt goes through the chat template unless
// --raw; the cache and no-cache paths print the same text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeHuggingFaceFolder } from '../../server/engine/formats/hfWriter';
import { HuggingFaceTokenizer } from '../../server/engine/tokenizer/huggingface';
import { ChatRenderer } from '../../server/engine/train/chatTemplate';
import { qlora } from '../helpers/cli';
import { randomLlama } from '../helpers/reference';
import { realTokenizerDir } from '../helpers/realTokenizers';

interface Generated { text: string; tokens: number; promptTokens: number; chatTemplate: boolean; kvCache: boolean }

test('generate applies the chat template to --prompt (not with --raw); cached and uncached print the same', async (t) => {
  const found = realTokenizerDir('Qwen3 (byte-level BPE, 151K)');
  if (found.skip) return t.skip(found.skip);
  const tokenizer = HuggingFaceTokenizer.fromFolder(found.dir);
  const work = mkdtempSync(join(tmpdir(), 'qlora-gen-'));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  const { config, weights } = randomLlama(21, { family: 'qwen2', attentionBias: true, vocabSize: tokenizer.vocabSize, hiddenSize: 16, intermediateSize: 24, headDim: 4, bosTokenId: 151643, eosTokenId: 151645 });
  const dir = writeHuggingFaceFolder(join(work, 'model'), { config, weights, tokenizer }, { dtype: 'F32' });
  const run = (...extra: string[]): Generated => {
    const r = qlora(['generate', '--model', dir, '--quantization', 'none', '--max-tokens', '12', '--temperature', '0', '--json', ...extra]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as Generated;
  };
  const chat = new ChatRenderer(tokenizer);
  const rendered = chat.encode(chat.render([{ role: 'user', content: 'Hello there' }], true));
  const viaChat = run('--prompt', 'Hello there');
  assert.equal(viaChat.chatTemplate, true);
  assert.equal(viaChat.promptTokens, rendered.length); // <|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n
  assert.ok(!viaChat.text.includes('Hello there'), 'only the reply is printed');
  const raw = run('--prompt', 'Hello there', '--raw');
  assert.equal(raw.chatTemplate, false);
  assert.equal(raw.promptTokens, tokenizer.encode('Hello there').length); // no BOS for Qwen
  assert.ok(raw.text.startsWith('Hello there'));
  const uncached = run('--prompt', 'Hello there', '--no-kv-cache');
  assert.equal(uncached.kvCache, false);
  assert.equal(uncached.text, viaChat.text);
  assert.equal(uncached.tokens, viaChat.tokens);
});
