// Turns one parsed record into token ids and a loss mask (see Example in types.ts).
// Every example starts as the model's sequences do (BOS where it uses one) and ends with
// EOS, so the model learns where a response stops; the prompt is context only unless
// trainOnPrompt.
import type { Tokenizer } from '../tokenizer/types';
import { ChatRenderer, commonPrefix } from './chatTemplate';
import type { AlpacaRecord, ChatRecord, DataRecord, TextRecord } from './formats';
import type { Example } from './types';

export interface TokenizeOptions {
  trainOnPrompt: boolean;
  /** Required for chat records. */
  chat?: ChatRenderer;
}

export function tokenizeRecord(record: DataRecord, tokenizer: Tokenizer, opts: TokenizeOptions): Example {
  switch (record.format) {
    case 'text': return tokenizeText(record, tokenizer);
    case 'alpaca': return tokenizeAlpaca(record, tokenizer, opts.trainOnPrompt);
    case 'chat': {
      if (!opts.chat) throw new Error('tokenizeRecord: a chat record needs a ChatRenderer');
      return tokenizeChat(record, opts.chat, tokenizer, opts.trainOnPrompt);
    }
  }
}

function tokenizeText(record: TextRecord, tokenizer: Tokenizer): Example {
  const ids = [...tokenizer.encode(record.text, { bos: true }), tokenizer.eosId];
  return toExample(ids, 1);
}

// The prompt of Stanford Alpaca (tatsu-lab/stanford_alpaca, train.py PROMPT_DICT), the
// template most Alpaca-format data sets and their evaluations assume. An optional
// `system` replaces the opening sentence, as Axolotl's alpaca prompter does.
const ALPACA_PREAMBLE_WITH_INPUT =
  'Below is an instruction that describes a task, paired with an input that provides further context. ' +
  'Write a response that appropriately completes the request.';
const ALPACA_PREAMBLE =
  'Below is an instruction that describes a task. Write a response that appropriately completes the request.';

/** The text an Alpaca model is prompted with; the response follows it directly. */
export function alpacaPrompt(record: Pick<AlpacaRecord, 'instruction' | 'input' | 'system'>): string {
  const input = record.input ?? '';
  const preamble = record.system ?? (input ? ALPACA_PREAMBLE_WITH_INPUT : ALPACA_PREAMBLE);
  const inputBlock = input ? `### Input:\n${input}\n\n` : '';
  return `${preamble}\n\n### Instruction:\n${record.instruction}\n\n${inputBlock}### Response:\n`;
}

function tokenizeAlpaca(record: AlpacaRecord, tokenizer: Tokenizer, trainOnPrompt: boolean): Example {
  const prompt = alpacaPrompt(record);
  // The whole text is tokenized at once (as the model will see it), and the prompt's
  // tokens are its common prefix with the prompt tokenized alone.
  const ids = [...tokenizer.encode(prompt + record.output, { bos: true }), tokenizer.eosId];
  const promptLen = trainOnPrompt ? 1 : commonPrefix(tokenizer.encode(prompt, { bos: true }), ids);
  return toExample(ids, promptLen);
}

function tokenizeChat(record: ChatRecord, chat: ChatRenderer, tokenizer: Tokenizer, trainOnPrompt: boolean): Example {
  const isEos = (id: number | undefined) => id !== undefined && tokenizer.eosIds.includes(id);
  const endsWithAssistant = record.messages[record.messages.length - 1].role === 'assistant';
  if (trainOnPrompt) {
    const ids = chat.encode(chat.render(record.messages, false));
    // ChatML ends "<|im_end|>\n": an EOS before trailing whitespace already closes it.
    let last = ids.length - 1;
    while (last > 0 && !isEos(ids[last]) && tokenizer.decode([ids[last]]).trim() === '') last--;
    if (!isEos(ids[last])) ids.push(tokenizer.eosId);
    return toExample(ids, 1);
  }
  const { ids, spans } = chat.assistantSpans(record.messages);
  const mask = new Uint8Array(ids.length + 1);
  for (const [start, end] of spans) mask.fill(1, start, end);
  // A turn that closes with one of the model's EOS ids (<|eot_id|>, <|im_end|>, </s>)
  // already teaches it to stop. Templates whose end-of-turn marker is not EOS (ChatML on
  // a model whose EOS is </s>) get an EOS so generation stops: trained, with the template's
  // text before it, only when it closes an assistant turn.
  const [, lastEnd] = spans[spans.length - 1];
  if (!isEos(ids[lastEnd - 1]) && !isEos(ids[ids.length - 1])) {
    if (endsWithAssistant) mask.fill(1, lastEnd, ids.length + 1);
    ids.push(tokenizer.eosId);
  }
  mask[0] = 0;
  return { ids: Int32Array.from(ids), mask: mask.slice(0, ids.length) };
}

/** An example whose tokens from `firstTarget` on are trained. */
function toExample(ids: number[], firstTarget: number): Example {
  const mask = new Uint8Array(ids.length);
  mask.fill(1, Math.max(1, firstTarget));
  return { ids: Int32Array.from(ids), mask };
}
