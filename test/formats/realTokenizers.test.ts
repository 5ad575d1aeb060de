// The project's tokenizer (HuggingFaceTokenizer on @huggingface/tokenizers) against each
// package's own tokenizer (@lenml/tokenizers, a transformers.js port), on the real files of
// four families: the ids must be equal for varied text, with and without the special tokens
// a sequence starts with (no BOS for Qwen, one for the others).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { HuggingFaceTokenizer } from '../../server/engine/tokenizer/huggingface';
import { REAL_TOKENIZERS, realTokenizerDir, type RealTokenizerName } from '../helpers/realTokenizers';

const TEXTS = [
  'Hello world',
  'The quick brown fox jumps over the lazy dog.',
  '  two leading spaces, trailing  ',
  'tabs\tand\t\ttabs',
  'line one\nline two\n\n\nafter three newlines\r\nCRLF',
  '        eight spaces then text',
  'naïve café, Zürich, Ångström, façade',
  'emoji 😀🎉👩‍💻 and flags 🇯🇵',
  '日本語のテキストと中文文本和한국어',
  'Привет, мир! Γειά σου κόσμε',
  'def f(x):\n    return {"a": x ** 2}  # square\n',
  'for (let i = 0; i < n; i++) { sum += a[i]; }',
  '1234567890 3.14159 -42 1e-5 0xFF',
  'literal <|eot_id|> in user text',
  'ChatML markers <|im_start|>user and <|im_end|> typed out',
  'SentencePiece controls <s> and </s> and <unk>',
  'Gemma turn markers <start_of_turn>model and <end_of_turn>',
  'URL https://example.com/a?b=c&d=e#frag, email a.b@c.de',
  'mixed\u00a0non-breaking\u2009thin\u200bzero-width',
  '',
];

const families = Object.keys(REAL_TOKENIZERS) as RealTokenizerName[];
for (const name of families) {
  const found = realTokenizerDir(name);
  describe(name, { skip: found.skip }, () => {
    let ours: HuggingFaceTokenizer;
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    let theirs: any;
    test('loads', () => {
      ours = HuggingFaceTokenizer.fromFolder(found.dir);
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      theirs = require(REAL_TOKENIZERS[name]).fromPreTrained();
    });

    test(`ids equal the package's for ${TEXTS.length} texts (unicode, emoji, CJK, code, whitespace runs, special-token text)`, () => {
      let same = 0;
      for (const text of TEXTS) {
        assert.deepEqual(ours.encode(text, { bos: false }), theirs.encode(text, { add_special_tokens: false }), JSON.stringify(text));
        same++;
      }
      assert.equal(same, TEXTS.length);
    });

    test('a sequence starts as the package starts it: BOS where the model uses one', () => {
      for (const text of TEXTS.slice(0, 5)) {
        assert.deepEqual(ours.encode(text), theirs.encode(text, { add_special_tokens: true }), JSON.stringify(text));
      }
      assert.equal(ours.addsBos, !name.startsWith('Qwen'));
    });

    test('decode gives the text back (texts without special-token text)', () => {
      for (const text of TEXTS.filter((t) => !/<[|/a-z_]/.test(t))) {
        assert.equal(ours.decode(ours.encode(text)), text, JSON.stringify(text));
      }
    });
  });
}
