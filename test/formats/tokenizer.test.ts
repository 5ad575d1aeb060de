import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ModelFormatError } from '../../server/engine/formats/types';
import { HuggingFaceTokenizer } from '../../server/engine/tokenizer/huggingface';
import { Llama2cTokenizer } from '../../server/engine/tokenizer/llama2c';
import { llama2cToHuggingFace, mergesOf } from '../../server/engine/tokenizer/toHuggingFace';
import { stories260K } from '../helpers/shared';
import { tinyVocab, tokenizerBytes, TINY_PIECES, writeTinyTokenizer } from './llama2cFixtures';

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'qlora-tok-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A line-by-line port of llama2.c run.c `encode` (bos=1, eos=0): the O(n^2) original,
 * kept as the reference the fast encoder must agree with.
 */
function runCEncode(tok: Llama2cTokenizer, text: string): number[] {
  const lookup = (s: string) => tok.pieces.indexOf(s);
  const tokens = [1];
  if (text !== '') tokens.push(lookup(' '));
  for (const ch of text) {
    const id = lookup(ch);
    if (id !== -1) tokens.push(id);
    else for (const b of Buffer.from(ch, 'utf8')) tokens.push(b + 3);
  }
  for (;;) {
    let bestScore = -1e10;
    let bestId = -1;
    let bestIdx = -1;
    for (let i = 0; i < tokens.length - 1; i++) {
      const id = lookup(tok.pieces[tokens[i]] + tok.pieces[tokens[i + 1]]);
      if (id !== -1 && tok.scores[id] > bestScore) {
        bestScore = tok.scores[id];
        bestId = id;
        bestIdx = i;
      }
    }
    if (bestIdx === -1) break;
    tokens.splice(bestIdx, 2, bestId);
  }
  return tokens;
}

const TEXTS = [
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the park.',
  'One day, Tim said: "Wow! Can I have 3 apples, please?" His mom smiled... and said "yes".',
  'The year 2024 had 366 days; 12 months & 52 weeks (roughly).',
  'Line one\nLine two\n\n\tIndented line\r\nend',
  'café 日本 naïve — “quotes” and emoji 🙂🎉',
  '   leading spaces and trailing   ',
  'a',
  ' ',
  '\n',
];

/** Random text over letters, spaces, punctuation, digits, newlines and multi-byte characters. */
function randomTexts(count: number, seed: number): string[] {
  const alphabet = [...'abcdefghijklmnopqrstuvwxyz     ,.!?\'"0123456789\n\tTLSé日本🙂'];
  let s = seed;
  const next = () => (s = (s * 1103515245 + 12345) % 2 ** 31);
  return Array.from({ length: count }, () => Array.from({ length: 1 + (next() % 60) }, () => alphabet[next() % alphabet.length]).join(''));
}

/** Writes the converted tokenizer.json + tokenizer_config.json and loads them with @huggingface/tokenizers. */
function convertedHf(tok: Llama2cTokenizer, dir: string, extraConfig: Record<string, unknown> = {}): HuggingFaceTokenizer {
  const files = llama2cToHuggingFace(tok, { modelMaxLength: 512 });
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(files.tokenizer));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ ...files.tokenizerConfig, ...extraConfig }));
  return HuggingFaceTokenizer.fromFolder(dir);
}

function tiny(): Llama2cTokenizer {
  const { pieces, scores } = tinyVocab(TINY_PIECES);
  return Llama2cTokenizer.parse(tokenizerBytes(pieces, scores), 'tiny.bin');
}

test('llama2.c encode on a hand-checked vocabulary: dummy prefix, score order, leftmost ties, byte fallback', () => {
  const tok = tiny();
  assert.equal(tok.vocabSize, 272);
  // ids: 259 bc, 260 ' ', 261 a, 262 b, 263 c, 264 ab, 265 ' a', 266 abc, 267 ' ab', 268 é, 269 ca, 270 ' c', 271 aa
  assert.deepEqual(tok.encode('abc'), [1, 265, 259], "'bc' outscores 'ab' and ' a', then ' a'; ' abc' is no piece");
  assert.deepEqual(tok.encode('cab'), [1, 270, 264]);
  assert.deepEqual(tok.encode('aaaa'), [1, 265, 271, 261], 'equal-score pairs merge leftmost first');
  assert.deepEqual(tok.encode('é\n'), [1, 260, 268, 13], 'newline falls back to byte piece <0x0A> = 10 + 3');
  assert.deepEqual(tok.encode('日'), [1, 260, 0xe6 + 3, 0x97 + 3, 0xa5 + 3]);
  assert.deepEqual(tok.encode(''), [1], 'no dummy prefix for empty text');
  assert.deepEqual(tok.encode('abc', { bos: false }), [265, 259]);
  assert.equal(tok.decode([1, 265, 259, 2]), 'abc');
  assert.equal(tok.decode([1, 260, 0xe6 + 3, 0x97 + 3, 0xa5 + 3]), '日');
  assert.equal(tok.decode([265, 259, 1, 265, 270]), 'abca c', 'the leading space goes at the start and after BOS only');
  assert.throws(() => tok.decode([272]), RangeError);
});

test('the heap-based encoder agrees with the run.c port on fixed and random texts', () => {
  const tok = tiny();
  for (const text of [...TEXTS, ...randomTexts(200, 1), 'abcabcaaab cab  ca é abc']) {
    assert.deepEqual(tok.encode(text), runCEncode(tok, text), JSON.stringify(text));
  }
});

test('stories260K tokenizer: run.c agreement, round trips, and a 20 KB text in well under a second', (t) => {
  const model = stories260K();
  if (model.skip) return t.skip(model.skip);
  const tok = Llama2cTokenizer.fromFile(join(model.dir, 'tok512.bin'));
  assert.equal(tok.vocabSize, 512);
  assert.equal(tok.maxTokenLength, 7);
  for (const text of [...TEXTS, ...randomTexts(100, 2)]) {
    const ids = tok.encode(text);
    assert.deepEqual(ids, runCEncode(tok, text), JSON.stringify(text));
    assert.equal(tok.decode(ids), text, JSON.stringify(text));
  }
  // The opening the model is known to generate is a handful of whole-word pieces.
  assert.deepEqual(tok.decode(tok.encode('Once upon a time')), 'Once upon a time');
  assert.ok(tok.encode('Once upon a time').length <= 6);
  const paragraph = TEXTS.slice(0, 4).join(' ');
  const long = paragraph.repeat(Math.ceil(20_000 / paragraph.length));
  const started = performance.now();
  const ids = tok.encode(long);
  const ms = performance.now() - started;
  assert.equal(tok.decode(ids), long);
  // Not a timing target (a shared machine's load decides wall time): a bound 30x above the
  // measured ~35 ms that only run.c's quadratic merge loop (minutes) could cross.
  assert.ok(ms < 30_000, `encoding ${long.length} characters took ${ms.toFixed(0)} ms (run.c's quadratic loop takes minutes)`);
});

test('converted merges rank pieces by score, every split of each piece included', () => {
  const merges = mergesOf(tiny());
  // 'bc' (score 0) first; 'abc' has two splits (a|bc, ab|c), ordered by left then right id.
  assert.deepEqual(merges, [['b', 'c'], ['a', 'b'], ['▁', 'a'], ['a', 'bc'], ['ab', 'c'], ['▁', 'ab'], ['▁a', 'b'], ['c', 'a'], ['▁', 'c'], ['a', 'a']]);
});

test('the converted Hugging Face tokenizer encodes and decodes exactly like llama2.c (tiny vocabulary)', (t) => {
  const tok = tiny();
  const hf = convertedHf(tok, tempDir(t));
  assert.equal(hf.vocabSize, 272);
  assert.equal(hf.bosId, 1);
  assert.equal(hf.eosId, 2);
  assert.equal(hf.chatTemplate, undefined);
  for (const text of [...TEXTS, ...randomTexts(200, 3)]) {
    const ids = tok.encode(text);
    assert.deepEqual(hf.encode(text), ids, JSON.stringify(text));
    assert.deepEqual(hf.encode(text, { bos: false }), ids.slice(1));
    assert.equal(hf.decode(ids), tok.decode(ids), JSON.stringify(text));
  }
  assert.equal(hf.decode([]), '');
  assert.throws(() => hf.decode([272]), RangeError);
});

test('the converted Hugging Face tokenizer equals the stories260K llama2.c tokenizer', (t) => {
  const model = stories260K();
  if (model.skip) return t.skip(model.skip);
  const tok = Llama2cTokenizer.fromFile(join(model.dir, 'tok512.bin'));
  const hf = convertedHf(tok, tempDir(t));
  for (const text of [...TEXTS, ...randomTexts(300, 4)]) {
    const ids = tok.encode(text);
    assert.deepEqual(hf.encode(text), ids, JSON.stringify(text));
    assert.equal(hf.decode(ids), text, JSON.stringify(text));
  }
});

test('HuggingFaceTokenizer reads the chat template and special tokens from tokenizer_config.json', (t) => {
  const dir = tempDir(t);
  const template = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}";
  const hf = convertedHf(tiny(), dir, { chat_template: template, bos_token: { content: '<s>' } });
  assert.equal(hf.chatTemplate, template);
  assert.equal(hf.bosId, 1);
  const listed = convertedHf(tiny(), dir, { chat_template: [{ name: 'tool_use', template: 'x' }, { name: 'default', template: 'y' }] });
  assert.equal(listed.chatTemplate, 'y');
  // Without bos/eos in tokenizer_config.json, config.json's ids are used.
  const files = llama2cToHuggingFace(tiny());
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ ...files.tokenizerConfig, bos_token: null, eos_token: null }));
  const fromConfig = HuggingFaceTokenizer.fromFolder(dir, { bos_token_id: 2, eos_token_id: [1, 2] });
  assert.equal(fromConfig.bosId, 2);
  assert.equal(fromConfig.eosId, 1);
  assert.throws(() => HuggingFaceTokenizer.fromFolder(dir), (e: unknown) => e instanceof ModelFormatError && /no eos_token/.test(e.message));
  rmSync(join(dir, 'tokenizer.json'));
  assert.throws(() => HuggingFaceTokenizer.fromFolder(dir), (e: unknown) => e instanceof ModelFormatError && e.file === join(dir, 'tokenizer.json'));
});

test('HuggingFaceTokenizer keeps every EOS id (config.json and generation_config.json lists) and BOS only where used', (t) => {
  const dir = tempDir(t);
  const files = llama2cToHuggingFace(tiny());
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(files.tokenizer));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(files.tokenizerConfig));
  // Llama 3.x lists three ids; here the tiny vocabulary's 0..2 stand in for them.
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [2, 0] }));
  const listed = HuggingFaceTokenizer.fromFolder(dir, { eos_token_id: [1, 2] });
  assert.equal(listed.eosId, 2);
  assert.deepEqual(listed.eosIds, [1, 2, 0]);
  assert.equal(listed.addsBos, true);
  assert.equal(listed.bosToken, '<s>');
  assert.equal(listed.eosToken, '</s>');
  // add_bos_token false (Qwen2's tokenizer_config.json): no BOS put first, whatever the post-processor does.
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ ...files.tokenizerConfig, add_bos_token: false }));
  const noBos = HuggingFaceTokenizer.fromFolder(dir);
  assert.equal(noBos.addsBos, false);
  assert.deepEqual(noBos.encode('ab'), noBos.encode('ab', { bos: false }));
  writeFileSync(join(dir, 'generation_config.json'), '{"eos_token_id": [2,');
  assert.throws(() => HuggingFaceTokenizer.fromFolder(dir), (e: unknown) => e instanceof ModelFormatError && e.file === join(dir, 'generation_config.json'));
});

test('damaged tokenizer.bin files give a ModelFormatError naming the file', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'tokenizer.bin');
  writeTinyTokenizer(file);
  assert.equal(Llama2cTokenizer.fromFile(file).vocabSize, 272);
  truncateSync(file, 2000);
  assert.throws(() => Llama2cTokenizer.fromFile(file), (e: unknown) => e instanceof ModelFormatError && e.file === file && /token \d+ at byte \d+ has length/.test(e.message));
  writeFileSync(file, Buffer.from([0, 0, 0, 0]));
  assert.throws(() => Llama2cTokenizer.fromFile(file), (e: unknown) => e instanceof ModelFormatError && /max_token_length 0/.test(e.message));
  assert.throws(() => Llama2cTokenizer.fromFile(join(dir, 'absent.bin')), (e: unknown) => e instanceof ModelFormatError && /ENOENT/.test(e.message));
});

// Issue 20, finding 8's last part: a damaged tokenizer.json hung `qlora eval` (an added
// token's id of 2^31 made the library list two billion vocabulary slots) or failed later
// with a library TypeError that named no file.
test('damaged tokenizer.json files are refused at load, at once, naming the file', (t) => {
  const dir = tempDir(t);
  const good = llama2cToHuggingFace(tiny(), { modelMaxLength: 512 });
  const damaged = (edit: (json: Record<string, any>) => void) => {
    const json = structuredClone(good.tokenizer) as Record<string, any>;
    edit(json);
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(good.tokenizerConfig));
    return () => HuggingFaceTokenizer.fromFolder(dir);
  };
  const file = join(dir, 'tokenizer.json');
  const refused = (pattern: RegExp) => (e: unknown) => e instanceof ModelFormatError && e.file === file && pattern.test(e.message);
  const started = Date.now();
  assert.throws(damaged((j) => { j.added_tokens[0].id = 2 ** 31; }), refused(/added_tokens\[0\].* has id 2147483648: a token id is a whole number/));
  assert.ok(Date.now() - started < 10_000, 'refused without listing 2^31 slots');
  assert.throws(damaged((j) => { j.model.vocab[Object.keys(j.model.vocab)[5]] = -3; }), refused(/model\.vocab entry .* has id -3/));
  assert.throws(damaged((j) => { j.model.vocab = 'WordPiece'; }), refused(/model\.vocab is "WordPiece"/));
  assert.throws(damaged((j) => { j.added_tokens = { a: 1 }; }), refused(/added_tokens is not a list/));
  // Parts the library only runs on use: the decoder, the post-processor.
  assert.throws(damaged((j) => { j.decoder = null; }), refused(/cannot be loaded \(it does not decode what it encodes/));
  assert.throws(damaged((j) => { j.post_processor = { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, 'BPE'], pair: [], special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } } }; }), refused(/cannot be loaded|cannot encode/));
  // And the good file still loads.
  assert.equal(damaged(() => {})().vocabSize, tiny().vocabSize);
});
