import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { buildExamples, loadDataSet, splitValidation, type DataOptions } from '../../server/engine/train/data';
import { alpacaPrompt } from '../../server/engine/train/tokenize';
import type { Example } from '../../server/engine/train/types';
import { BOS, CharTokenizer, EOS, chars } from './charTokenizer';

const tok = new CharTokenizer();
const opts = (o: Partial<DataOptions> = {}): DataOptions => ({ format: 'text', maxSeqLen: 512, seed: 7, ...o });
const jsonl = (...rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
const zeros = (n: number) => Array<number>(n).fill(0);
const ones = (n: number) => Array<number>(n).fill(1);
const one = (text: string, o: Partial<DataOptions>, t = tok): Example => {
  const { examples } = buildExamples(text, 'f.jsonl', t, opts(o));
  assert.equal(examples.length, 1);
  return examples[0];
};

describe('text format', () => {
  test('BOS + text + EOS, every token after BOS trained', () => {
    const ex = one(jsonl({ text: 'ab' }), {});
    assert.deepEqual([...ex.ids], [BOS, ...chars('ab'), EOS]);
    assert.deepEqual([...ex.mask], [0, 1, 1, 1]);
  });
});

describe('alpaca format', () => {
  const withInput =
    'Below is an instruction that describes a task, paired with an input that provides further context. ' +
    'Write a response that appropriately completes the request.\n\n### Instruction:\nAdd\n\n### Input:\n1 2\n\n### Response:\n';

  test('the Stanford Alpaca prompt, with and without input, system replacing the preamble', () => {
    assert.equal(alpacaPrompt({ instruction: 'Add', input: '1 2' }), withInput);
    assert.equal(alpacaPrompt({ instruction: 'Hi', input: '' }),
      'Below is an instruction that describes a task. Write a response that appropriately completes the request.' +
      '\n\n### Instruction:\nHi\n\n### Response:\n');
    assert.equal(alpacaPrompt({ instruction: 'Hi', input: '', system: 'Be brief.' }),
      'Be brief.\n\n### Instruction:\nHi\n\n### Response:\n');
  });

  test('prompt masked, response and EOS trained', () => {
    const ex = one(jsonl({ instruction: 'Add', input: '1 2', output: '3' }), { format: 'alpaca' });
    assert.deepEqual([...ex.ids], [BOS, ...chars(withInput + '3'), EOS]);
    assert.deepEqual([...ex.mask], [0, ...zeros(withInput.length), 1, 1]);
  });

  test('trainOnPrompt trains everything after BOS', () => {
    const ex = one(jsonl({ instruction: 'Add', input: '1 2', output: '3' }), { format: 'alpaca', trainOnPrompt: true });
    assert.deepEqual([...ex.mask], [0, ...ones(withInput.length + 2)]);
  });
});

describe('chat format', () => {
  // BOS/EOS written by the template, as Llama-2's template does.
  const plain =
    "{{ bos_token }}{% for m in messages %}{% if m.role == 'user' %}U:{{ m.content }}\n" +
    "{% elif m.role == 'assistant' %}A:{{ m.content }}{{ eos_token }}{% else %}S:{{ m.content }}\n{% endif %}" +
    "{% endfor %}{% if add_generation_prompt %}A:{% endif %}";
  const chatml =
    "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}" +
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
  const conversation = {
    messages: [
      { role: 'user', content: 'hi' }, { role: 'assistant', content: 'yo' },
      { role: 'user', content: 'ok?' }, { role: 'assistant', content: 'no' },
    ],
  };

  test('only assistant turns trained; template BOS/EOS become their ids', () => {
    const ex = one(jsonl(conversation), { format: 'chat' }, new CharTokenizer(plain));
    assert.deepEqual([...ex.ids],
      [BOS, ...chars('U:hi\nA:yo'), EOS, ...chars('U:ok?\nA:no'), EOS]);
    assert.deepEqual([...ex.mask],
      [0, ...zeros(7), 1, 1, 1, ...zeros(8), 1, 1, 1]);
  });

  test('a template without EOS (ChatML) gets one after the last assistant turn, trained', () => {
    const messages = [{ role: 'system', content: 'S' }, { role: 'user', content: 'U' }, { role: 'assistant', content: 'A' }];
    const prompt = '<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n';
    const reply = 'A<|im_end|>\n';
    const ex = one(jsonl({ messages }), { format: 'chat' }, new CharTokenizer(chatml));
    assert.deepEqual([...ex.ids], [BOS, ...chars(prompt + reply), EOS]);
    assert.deepEqual([...ex.mask], [0, ...zeros(prompt.length), ...ones(reply.length), 1]);
  });

  test('a conversation ending on a user turn: its appended EOS is not trained', () => {
    const messages = [{ role: 'user', content: 'U' }, { role: 'assistant', content: 'A' }, { role: 'user', content: 'V' }];
    const ex = one(jsonl({ messages }), { format: 'chat' }, new CharTokenizer(chatml));
    assert.equal(ex.ids[ex.ids.length - 1], EOS);
    assert.equal(ex.mask[ex.mask.length - 1], 0);
    const first = '<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n'.length;
    const reply = 'A<|im_end|>'.length; // the turn's close, not the newline after it
    assert.deepEqual([...ex.mask], [0, ...zeros(first), ...ones(reply), ...zeros(ex.ids.length - 1 - first - reply)]);
  });

  test('trainOnPrompt trains every turn', () => {
    const ex = one(jsonl(conversation), { format: 'chat', trainOnPrompt: true }, new CharTokenizer(plain));
    assert.deepEqual([...ex.mask], [0, ...ones(ex.ids.length - 1)]);
  });

  test('a tokenizer without a chat template is refused with a clear error', () => {
    assert.throws(() => buildExamples(jsonl(conversation), 'f.jsonl', tok, opts({ format: 'chat' })),
      { message: /^f\.jsonl: data format "chat" needs a chat template, and this model's tokenizer has none/ });
  });

  test("an error raised by the template is reported at the example's line", () => {
    const strict = "{% if messages[0].role != 'system' %}{{ raise_exception('a system message must come first') }}{% endif %}";
    assert.throws(() => buildExamples(jsonl(conversation), 'f.jsonl', new CharTokenizer(strict), opts({ format: 'chat' })),
      { message: /^f\.jsonl:1: .*a system message must come first/ });
  });

  test('a template that renders a turn differently when a later one follows still gets the right mask', () => {
    // Qwen3 does this (an empty <think> block only in the last assistant turn); prefixes of
    // the conversation render differently from the start of the whole conversation.
    const lastDiffers = "{% for m in messages %}{{ m.role[0] }}{% if loop.last %}!{% endif %}:{{ m.content }};{% endfor %}";
    const ex = one(jsonl(conversation), { format: 'chat' }, new CharTokenizer(lastDiffers));
    assert.deepEqual([...ex.ids], [BOS, ...chars('u:hi;a:yo;u:ok?;a!:no;'), EOS]);
    assert.deepEqual([...ex.mask], [0, ...zeros(7), 1, 1, 1, ...zeros(9), 1, 1, 1, 1]);
  });

  test('a template that drops an assistant turn\'s content is reported at its line', () => {
    const dropping = "{% for m in messages %}{% if m.role == 'user' %}{{ m.content }}{% endif %}{% endfor %}";
    assert.throws(() => buildExamples('\n' + jsonl(conversation), 'f.jsonl', new CharTokenizer(dropping), opts({ format: 'chat' })),
      { message: /^f\.jsonl:2: the chat template does not write the content of message 1 \(role "assistant"\)/ });
  });
});

describe('malformed lines are reported as file:line: reason', () => {
  const cases: Array<[string, DataOptions['format'], string, string | RegExp]> = [
    ['invalid JSON', 'text', '{"text":"a"}\n\n{"text": ', /^f\.jsonl:3: invalid JSON \(.+\)$/],
    ['not an object', 'text', '[1, 2]', 'f.jsonl:1: expected a JSON object, got an array'],
    ['missing text', 'text', '{"txt": "a"}', 'f.jsonl:1: missing field "text"'],
    ['text not a string', 'text', '{"text":"a"}\r\n{"text": 5}\r\n', 'f.jsonl:2: field "text" must be a string, got a number'],
    ['empty text', 'text', '{"text": ""}', 'f.jsonl:1: field "text" is empty'],
    ['missing output', 'alpaca', '{"instruction": "a"}', 'f.jsonl:1: missing field "output"'],
    ['input not a string', 'alpaca', '{"instruction": "a", "input": 1, "output": "b"}', 'f.jsonl:1: field "input" must be a string, got a number'],
    ['messages not an array', 'chat', '{"messages": {"role": "user"}}', 'f.jsonl:1: field "messages" must be an array, got an object'],
    ['message without role', 'chat', '{"messages": [{"content": "a"}]}', 'f.jsonl:1: messages[0]: missing field "role"'],
    ['content not a string', 'chat', '{"messages": [{"role": "user", "content": null}]}', 'f.jsonl:1: messages[0].content must be a string, got null'],
    ['no assistant turn', 'chat', '{"messages": [{"role": "user", "content": "a"}]}', 'f.jsonl:1: field "messages" has no "assistant" message'],
  ];
  for (const [name, format, text, message] of cases) {
    test(name, () => {
      assert.throws(() => buildExamples(text, 'f.jsonl', new CharTokenizer('{{ "x" }}'), opts({ format })), { message });
    });
  }
});

describe('refusals, truncation and drops', () => {
  test('an empty data set is refused', () => {
    for (const text of ['', '\n  \n']) {
      assert.throws(() => buildExamples(text, 'f.jsonl', tok, opts()), { message: 'f.jsonl: the data set is empty (no JSON lines)' });
    }
  });

  test('a set whose every example is longer than max_seq_len is refused', () => {
    assert.throws(() => buildExamples(jsonl({ text: 'abcdef' }, { text: 'abcdefgh' }), 'f.jsonl', tok, opts({ maxSeqLen: 3 })),
      { message: /^f\.jsonl: every example is longer than max_seq_len 3 \(the shortest has 8 tokens/ });
  });

  test('long examples are truncated to maxSeqLen + 1 tokens and counted', () => {
    const { examples, stats } = buildExamples(jsonl({ text: 'ab' }, { text: 'abcdefg' }), 'f.jsonl', tok, opts({ maxSeqLen: 4 }));
    assert.deepEqual([...examples[1].ids], [BOS, ...chars('abcd')]);
    assert.deepEqual([...examples[1].mask], [0, 1, 1, 1, 1]);
    assert.deepEqual(stats, { file: 'f.jsonl', records: 2, examples: 2, truncated: 1, dropped: 0, longest: 9, targetTokens: 7 });
  });

  test('an example with no trained token left after truncation is dropped and counted', () => {
    const short = { instruction: 'a', output: 'b' };
    const long = { instruction: 'x'.repeat(300), output: 'b' };
    const maxSeqLen = alpacaPrompt({ instruction: 'a', input: '' }).length + 2;
    const { examples, stats } = buildExamples(jsonl(long, short), 'f.jsonl', tok, opts({ format: 'alpaca', maxSeqLen }));
    assert.equal(examples.length, 1);
    assert.equal(tok.decode([...examples[0].ids]), alpacaPrompt({ instruction: 'a', input: '' }) + 'b');
    assert.equal(stats.dropped, 1);
    assert.equal(stats.truncated, 0);
  });
});

describe('validation split and files', () => {
  const examples = buildExamples(jsonl(...'abcdefghij'.split('').map((text) => ({ text }))), 'f.jsonl', tok, opts()).examples;
  const names = (list: Example[]) => list.map((e) => tok.decode([...e.ids])).join('');

  test('ceil(split * n) held out, chosen by the seed, both parts in file order', () => {
    const a = splitValidation(examples, 0.25, 1);
    assert.equal(a.validation.length, 3);
    assert.equal(a.train.length, 7);
    assert.equal([...names(a.train) + names(a.validation)].sort().join(''), 'abcdefghij');
    assert.equal(names(a.train), [...names(a.train)].sort().join(''));
    assert.equal(names(a.validation), [...names(a.validation)].sort().join(''));
    assert.equal(names(splitValidation(examples, 0.25, 1).validation), names(a.validation));
    assert.notEqual(names(splitValidation(examples, 0.25, 2).validation), names(a.validation));
    assert.equal(splitValidation(examples, 0.12, 1).validation.length, 2);
  });

  test('a split that leaves nothing to train on is refused', () => {
    assert.throws(() => splitValidation(examples.slice(0, 1), 0.5, 1, 'f.jsonl'),
      { message: 'f.jsonl: validation_split 0.5 of 1 example leaves none to train on' });
  });

  const dir = mkdtempSync(join(tmpdir(), 'qlora-data-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('loadDataSet reads a train file and a separate validation file', () => {
    const train = join(dir, 'train.jsonl');
    const val = join(dir, 'val.jsonl');
    writeFileSync(train, jsonl({ text: 'ab' }, { text: 'cd' }));
    writeFileSync(val, jsonl({ text: 'ef' }));
    const set = loadDataSet(train, tok, opts({ validationFile: val }));
    assert.equal(names(set.train), 'abcd');
    assert.equal(names(set.validation), 'ef');
    assert.equal(set.validationStats?.file, val);
    const split = loadDataSet(train, tok, opts({ validationSplit: 0.5 }));
    assert.equal(split.train.length + split.validation.length, 2);
    assert.equal(split.validation.length, 1);
    assert.throws(() => loadDataSet(train, tok, opts({ validationFile: val, validationSplit: 0.1 })), /not both/);
    assert.throws(() => loadDataSet(join(dir, 'nope.jsonl'), tok, opts()),
      { message: `${join(dir, 'nope.jsonl')}: cannot read the data file (ENOENT)` });
  });
});
