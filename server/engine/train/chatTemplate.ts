// Renders chat records with the model's own Jinja chat template (@huggingface/jinja,
// the implementation transformers.js uses) and finds which tokens belong to assistant
// turns. A template is opaque text, and real ones render a turn differently depending on
// what follows it (Qwen3 writes an empty <think> block only in the last assistant turn),
// so turns are not found by rendering prefixes. Instead, for each assistant turn the whole
// conversation is rendered again with that turn's content swapped for a marker: where the
// two renderings start and stop differing is where the content sits. The turn's closing
// text (<|eot_id|>, <|im_end|>, " </s>") is the template's own: what it writes right after
// a marker turn. Character positions become token positions by tokenizing the text before
// and after them, so a token that straddles a boundary is trained, never split.
import { Template } from '@huggingface/jinja';
import type { Tokenizer } from '../tokenizer/types';
import type { ChatMessage } from './formats';

/** How BOS and EOS are spelled in the template's text (tokenizer_config.json's bos_token / eos_token). */
export interface SpecialTokens { bos?: string; eos?: string }
export const LLAMA_SPECIAL_TOKENS: SpecialTokens = { bos: '<s>', eos: '</s>' };

/**
 * Two stand-ins for a turn's content, differing in their first and last characters, so that
 * whatever the real content starts or ends with, one of them differs from it right there.
 * Plain letters: templates trim, split on "</think>" and compare content; these survive all.
 */
const MARKERS = ['QloraTurnMarkerA', 'qloraturnmarkerb'] as const;

export class ChatRenderer {
  private readonly template: Template;
  private readonly special: SpecialTokens;

  constructor(private readonly tokenizer: Tokenizer, special?: SpecialTokens) {
    if (!tokenizer.chatTemplate) {
      throw new Error(
        'data format "chat" needs a chat template, and this model\'s tokenizer has none ' +
        '(no chat_template in tokenizer_config.json): use format "alpaca" or "text", or a model that ships one',
      );
    }
    this.special = special ?? { bos: tokenizer.bosToken, eos: tokenizer.eosToken };
    try {
      this.template = new Template(tokenizer.chatTemplate);
    } catch (e) {
      throw new Error(`the model's chat template does not parse: ${(e as Error).message}`);
    }
  }

  render(messages: ChatMessage[], addGenerationPrompt: boolean): string {
    return this.template.render({
      messages,
      bos_token: this.special.bos,
      eos_token: this.special.eos,
      add_generation_prompt: addGenerationPrompt,
    });
  }

  /**
   * Token ids of rendered template text, as the model sees it: BOS first when the tokenizer
   * puts one first and the template wrote none (Llama 3's and Gemma's write their own; Qwen
   * uses none, so none is added).
   */
  encode(text: string): number[] {
    const ids = this.encodeText(text);
    if (this.tokenizer.addsBos && ids[0] !== this.tokenizer.bosId) ids.unshift(this.tokenizer.bosId);
    return ids;
  }

  /**
   * Template text to ids, no BOS added. BOS and EOS written out by the template become their
   * ids even for tokenizers that would spell them character by character (the llama2.c
   * one); the text between them is encoded piece by piece, as Hugging Face tokenizers do
   * around special tokens, which they recognize themselves.
   */
  private encodeText(text: string): number[] {
    const tok = this.tokenizer;
    if (tok.splitsSpecialTokens) return tok.encode(text, { bos: false });
    const ids: number[] = [];
    // An absent or empty spelling would match everywhere.
    const find = (rest: string, token?: string) => (token ? rest.indexOf(token) : -1);
    let rest = text;
    while (rest.length > 0) {
      const b = find(rest, this.special.bos);
      const e = find(rest, this.special.eos);
      const useBos = b >= 0 && (e < 0 || b <= e);
      const at = useBos ? b : e;
      const piece = at < 0 ? rest : rest.slice(0, at);
      if (piece !== '') ids.push(...tok.encode(piece, { bos: false }));
      if (at < 0) break;
      ids.push(useBos ? tok.bosId : tok.eosId);
      rest = rest.slice(at + (useBos ? this.special.bos! : this.special.eos!).length);
    }
    return ids;
  }

  /**
   * The whole conversation as ids, and for each assistant turn its token span
   * [start, end): the tokens that turn's loss is taken over (its content and the
   * end-of-turn text the template writes after it, trailing whitespace excluded).
   */
  assistantSpans(messages: ChatMessage[]): { ids: number[]; spans: Array<[number, number]> } {
    const full = this.render(messages, false);
    const body = this.encodeText(full);
    const lead = this.tokenizer.addsBos && body[0] !== this.tokenizer.bosId ? 1 : 0;
    const ids = lead ? [this.tokenizer.bosId, ...body] : body;
    const spans: Array<[number, number]> = [];
    for (let k = 0; k < messages.length; k++) {
      if (messages[k].role !== 'assistant') continue;
      const [start, contentEnd] = this.contentRange(messages, k, full);
      // What the template writes after this turn's content when it is the last one.
      const alone = this.render(withContent(messages.slice(0, k + 1), k, MARKERS[0]), false);
      const close = alone.slice(alone.lastIndexOf(MARKERS[0]) + MARKERS[0].length).trimEnd();
      const end = contentEnd + commonPrefixLength(full.slice(contentEnd), close);
      const first = lead + commonPrefix(this.encodeText(full.slice(0, start)), body);
      const last = lead + body.length - commonSuffix(this.encodeText(full.slice(end)), body);
      spans.push([first, Math.max(first, last)]);
    }
    return { ids, spans };
  }

  /**
   * The ids the template closes an assistant turn with (<|im_end|>, <|eot_id|>, </s>):
   * where a model's EOS is another token, generation from a chat prompt stops on these too.
   */
  endOfTurnIds(): number[] {
    let rendered: string;
    try {
      rendered = this.render([{ role: 'user', content: 'hi' }, { role: 'assistant', content: MARKERS[0] }], false);
    } catch {
      return []; // a template that refuses this conversation (one that wants a system turn first, say)
    }
    const at = rendered.lastIndexOf(MARKERS[0]);
    const close = at < 0 ? '' : rendered.slice(at + MARKERS[0].length).trim();
    return close === '' ? [] : this.encodeText(close);
  }

  /** Where turn k's content sits in `full`, in characters [start, end). */
  private contentRange(messages: ChatMessage[], k: number, full: string): [number, number] {
    let start = full.length, end = 0;
    for (const marker of MARKERS) {
      const marked = this.render(withContent(messages, k, marker), false);
      if (!marked.includes(marker)) {
        throw new Error(`the chat template does not write the content of message ${k} (role "assistant"), so its tokens cannot be located; use train_on_prompt: true`);
      }
      const prefix = commonPrefixLength(full, marked);
      const suffix = Math.min(commonSuffixLength(full, marked), Math.min(full.length, marked.length) - prefix);
      start = Math.min(start, prefix);
      end = Math.max(end, full.length - suffix);
    }
    return [start, Math.max(start, end)];
  }
}

function withContent(messages: ChatMessage[], k: number, content: string): ChatMessage[] {
  return messages.map((m, i) => (i === k ? { ...m, content } : m));
}

/** How many leading ids `a` and `b` share. */
export function commonPrefix(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** How many trailing ids `a` and `b` share. */
function commonSuffix(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[a.length - 1 - i] === b[b.length - 1 - i]) i++;
  return i;
}

function commonPrefixLength(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

function commonSuffixLength(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(a.length - 1 - i) === b.charCodeAt(b.length - 1 - i)) i++;
  return i;
}
