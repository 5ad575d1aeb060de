// Chat data on the real tokenizers and chat templates of model families: the rendering
// equals transformers' (the package's own rendering where it can render the template;
// hand-written from the template otherwise), the ids equal the tokenizer's ids of that text
// with no BOS the template does not write, and the assistant-only loss mask covers exactly
// each assistant turn's content and the template's end-of-turn token.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { HuggingFaceTokenizer } from '../../server/engine/tokenizer/huggingface';
import type { Tokenizer } from '../../server/engine/tokenizer/types';
import { ChatRenderer } from '../../server/engine/train/chatTemplate';
import type { ChatMessage } from '../../server/engine/train/formats';
import { tokenizeRecord } from '../../server/engine/train/tokenize';
import { buildExamples } from '../../server/engine/train/data';
import { REAL_TOKENIZERS, realTokenizerDir, type RealTokenizerName } from '../helpers/realTokenizers';

const MESSAGES: ChatMessage[] = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello!' },
  { role: 'user', content: 'How are you?' }, { role: 'assistant', content: 'Fine.' },
  { role: 'user', content: 'Bye' }, { role: 'assistant', content: 'Bye now.' },
];
const REPLIES = MESSAGES.filter((m) => m.role === 'assistant').map((m) => m.content);

// Templates as their models ship them (tokenizer_config.json), for families whose package
// has none: Llama 2 chat, SmolLM2's ChatML, TinyLlama's Zephyr.
const LLAMA2_TEMPLATE = "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";
const CHATML_TEMPLATE = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
const ZEPHYR_TEMPLATE = "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";

/** The tokenizer with another chat template (as a model folder with that tokenizer_config would give). */
function withTemplate(tok: Tokenizer, chatTemplate: string): Tokenizer {
  return Object.create(tok, { chatTemplate: { value: chatTemplate } });
}

/** Runs of consecutive trained ids. */
function trainedRuns(ids: Int32Array, mask: Uint8Array): number[][] {
  const runs: number[][] = [];
  let run: number[] | undefined;
  ids.forEach((id, i) => {
    if (!mask[i]) run = undefined;
    else {
      if (!run) runs.push(run = []);
      run.push(id);
    }
  });
  return runs;
}

interface Case {
  name: string;
  family: RealTokenizerName;
  template?: string;
  /** transformers' rendering of MESSAGES (omitted where the package renders it). */
  rendered?: string;
  /** The ids each assistant turn trains, given the tokenizer. */
  turn: (tok: HuggingFaceTokenizer, reply: string) => number[];
  firstIds: number[];
}

const special = (tok: HuggingFaceTokenizer, text: string) => {
  const ids = tok.encode(text, { bos: false });
  assert.equal(ids.length, 1, `${text} is one token`);
  return ids[0];
};

const CASES: Case[] = [
  {
    name: 'Llama 3.1 template (the package\'s)', family: 'Llama 3.1 (byte-level BPE, 128K)',
    turn: (tok, reply) => [...tok.encode(reply, { bos: false }), special(tok, '<|eot_id|>')],
    firstIds: [128000, 128006], // one <|begin_of_text|>, written by the template
  },
  {
    name: 'Qwen3 template (the package\'s; an empty <think> block in the last turn)', family: 'Qwen3 (byte-level BPE, 151K)',
    rendered:
      '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n' +
      '<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\nFine.<|im_end|>\n' +
      '<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nBye now.<|im_end|>\n',
    turn: (tok, reply) => [...tok.encode(reply, { bos: false }), special(tok, '<|im_end|>')],
    firstIds: [151644], // <|im_start|>: no <|endoftext|> put first
  },
  {
    name: 'Gemma 3 template (the package\'s; system folded into the first user turn)', family: 'Gemma 3 (SentencePiece BPE, 262K)',
    rendered:
      '<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n' +
      '<start_of_turn>user\nHow are you?<end_of_turn>\n<start_of_turn>model\nFine.<end_of_turn>\n' +
      '<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\nBye now.<end_of_turn>\n',
    turn: (tok, reply) => [...tok.encode(reply, { bos: false }), special(tok, '<end_of_turn>')],
    firstIds: [2, 105], // one <bos>
  },
  {
    name: 'Llama 2 chat template on the Mistral tokenizer (a reply\'s first piece straddles "[/INST] ")', family: 'Mistral 7B (SentencePiece BPE, 32K)',
    template: LLAMA2_TEMPLATE,
    rendered:
      '<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] How are you? [/INST] Fine. </s>' +
      '<s>[INST] Bye [/INST] Bye now. </s>',
    // "▁Hello" (dummy-prefixed, as the reply's first piece is in context), "▁", "</s>".
    turn: (tok, reply) => [...tok.encode(reply, { bos: false }), 28705, 2],
    firstIds: [1, 733],
  },
  {
    name: 'ChatML (SmolLM2\'s template) on the Qwen3 tokenizer', family: 'Qwen3 (byte-level BPE, 151K)',
    template: CHATML_TEMPLATE,
    rendered:
      '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n' +
      '<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\nFine.<|im_end|>\n' +
      '<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\nBye now.<|im_end|>\n',
    turn: (tok, reply) => [...tok.encode(reply, { bos: false }), special(tok, '<|im_end|>')],
    firstIds: [151644],
  },
  {
    name: 'Zephyr (TinyLlama chat\'s template) on the Mistral tokenizer', family: 'Mistral 7B (SentencePiece BPE, 32K)',
    template: ZEPHYR_TEMPLATE,
    rendered:
      '<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello!</s>\n<|user|>\nHow are you?</s>\n' +
      '<|assistant|>\nFine.</s>\n<|user|>\nBye</s>\n<|assistant|>\nBye now.</s>\n',
    // After "\n" the reply has no dummy prefix: its pieces are those of the whole text.
    turn: (tok, reply) => {
      const context = tok.encode('\n' + reply + '</s>', { bos: false });
      return context.slice(context.indexOf(13) + 1); // 13 is "<0x0A>"
    },
    firstIds: [1, 523], // the tokenizer's own BOS (TinyLlama chat was trained on it), then "▁<"
  },
];

const tokenizers = new Map<RealTokenizerName, HuggingFaceTokenizer>();
function load(family: RealTokenizerName, dir: string): HuggingFaceTokenizer {
  if (!tokenizers.has(family)) tokenizers.set(family, HuggingFaceTokenizer.fromFolder(dir));
  return tokenizers.get(family)!;
}

for (const c of CASES) {
  const found = realTokenizerDir(c.family);
  describe(c.name, { skip: found.skip }, () => {
    test('rendering equals transformers\'; ids are the tokenizer\'s for that text; assistant-only mask on content + end of turn', () => {
      const base = load(c.family, found.dir);
      const tok = c.template ? withTemplate(base, c.template) : base;
      const chat = new ChatRenderer(tok);
      let expected = c.rendered;
      if (expected === undefined) {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const theirs = require(REAL_TOKENIZERS[c.family]).fromPreTrained();
        expected = theirs.apply_chat_template(MESSAGES, { tokenize: false }) as string;
        const theirIds = Array.from(theirs.apply_chat_template(MESSAGES, { tokenize: true, return_tensor: false }) as number[]);
        const ex = tokenizeRecord({ format: 'chat', line: 1, messages: MESSAGES }, tok, { trainOnPrompt: false, chat });
        assert.deepEqual([...ex.ids], theirIds, 'ids equal the package\'s apply_chat_template');
      }
      const text = chat.render(MESSAGES, false);
      assert.equal(text, expected);
      const ex = tokenizeRecord({ format: 'chat', line: 1, messages: MESSAGES }, tok, { trainOnPrompt: false, chat });
      const plain = base.encode(text, { bos: false });
      assert.deepEqual([...ex.ids], plain[0] === base.bosId || !base.addsBos ? plain : [base.bosId, ...plain]);
      assert.deepEqual([...ex.ids.slice(0, c.firstIds.length)], c.firstIds);
      assert.notEqual(ex.ids[c.firstIds.length], ex.ids[0], 'never two BOS');
      assert.deepEqual(trainedRuns(ex.ids, ex.mask), REPLIES.map((r) => c.turn(base, r)));
      // Generation from a chat prompt also stops on the template's end-of-turn token.
      assert.deepEqual(chat.endOfTurnIds(), c.turn(base, 'x').slice(-1));
      // The turn's end is one of the model's EOS ids here, so nothing is appended.
      assert.equal(ex.ids.length, ids(base, text).length);
    });

    test('a generation prompt ends where the assistant\'s reply starts', () => {
      const base = load(c.family, found.dir);
      const tok = c.template ? withTemplate(base, c.template) : base;
      const chat = new ChatRenderer(tok);
      const prompt = chat.render(MESSAGES.slice(0, 6), true);
      const full = chat.render(MESSAGES, false);
      if (!c.family.startsWith('Qwen3') || c.template) assert.ok(full.startsWith(prompt), JSON.stringify(prompt.slice(-40)));
      else assert.ok(prompt.endsWith('<|im_start|>assistant\n'));
    });
  });
}

function ids(tok: HuggingFaceTokenizer, text: string): number[] {
  const plain = tok.encode(text, { bos: false });
  return plain[0] === tok.bosId || !tok.addsBos ? plain : [tok.bosId, ...plain];
}

// What the trainer reads (loadDataSet -> buildExamples): multi-turn chat data at the Llama 3
// and Qwen3 templates, which were refused before ("renders a conversation prefix differently").
for (const family of ['Llama 3.1 (byte-level BPE, 128K)', 'Qwen3 (byte-level BPE, 151K)'] as const) {
  const found = realTokenizerDir(family);
  test(`${family}: a multi-turn chat file loads with assistant-only masks`, { skip: found.skip }, () => {
    const tok = load(family, found.dir);
    const lines = [MESSAGES, MESSAGES.slice(1, 5)].map((messages) => JSON.stringify({ messages })).join('\n');
    const { examples, stats } = buildExamples(lines, 'chat.jsonl', tok, { format: 'chat', maxSeqLen: 256, seed: 1 });
    assert.equal(examples.length, 2);
    assert.equal(stats.truncated, 0);
    const eot = tok.encode(family.startsWith('Llama') ? '<|eot_id|>' : '<|im_end|>', { bos: false })[0];
    assert.deepEqual(trainedRuns(examples[1].ids, examples[1].mask), ['Hello!', 'Fine.'].map((r) => [...tok.encode(r, { bos: false }), eot]));
  });
}
