// Renders chat records with the model's own Jinja chat template (@huggingface/jinja,
// the implementation transformers.js uses) and finds which tokens belong to assistant
// turns. A template is opaque text, so the spans come from rendering prefixes: the
// conversation before turn k with the generation prompt (where turn k starts) and
// through turn k (where it ends), each tokenized and matched as a common token prefix
// of the whole conversation, so a token that straddles a boundary is never split.
import { Template } from '@huggingface/jinja';
import type { Tokenizer } from '../tokenizer/types';
import type { ChatMessage } from './formats';

/** How BOS and EOS are spelled in the template's text (tokenizer_config.json's bos_token / eos_token). */
export interface SpecialTokens { bos: string; eos: string }
export const LLAMA_SPECIAL_TOKENS: SpecialTokens = { bos: '<s>', eos: '</s>' };

export class ChatRenderer {
  private readonly template: Template;

  constructor(private readonly tokenizer: Tokenizer, private readonly special: SpecialTokens = LLAMA_SPECIAL_TOKENS) {
    if (!tokenizer.chatTemplate) {
      throw new Error(
        'data format "chat" needs a chat template, and this model\'s tokenizer has none ' +
        '(no chat_template in tokenizer_config.json): use format "alpaca" or "text", or a model that ships one',
      );
    }
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
   * Token ids of rendered template text. BOS and EOS written out by the template become
   * their ids even for tokenizers that would spell them character by character (the
   * llama2.c one); the text between them is encoded piece by piece, as Hugging Face
   * tokenizers do around special tokens. A BOS is put first if the template wrote none.
   */
  encode(text: string): number[] {
    const ids: number[] = [];
    // An empty spelling (a model without BOS) would match everywhere.
    const find = (rest: string, token: string) => (token === '' ? -1 : rest.indexOf(token));
    let rest = text;
    while (rest.length > 0) {
      const b = find(rest, this.special.bos);
      const e = find(rest, this.special.eos);
      const useBos = b >= 0 && (e < 0 || b <= e);
      const at = useBos ? b : e;
      const piece = at < 0 ? rest : rest.slice(0, at);
      if (piece !== '') ids.push(...this.tokenizer.encode(piece, { bos: false }));
      if (at < 0) break;
      ids.push(useBos ? this.tokenizer.bosId : this.tokenizer.eosId);
      rest = rest.slice(at + (useBos ? this.special.bos.length : this.special.eos.length));
    }
    if (ids[0] !== this.tokenizer.bosId) ids.unshift(this.tokenizer.bosId);
    return ids;
  }

  /**
   * The whole conversation as ids, and for each assistant turn its token span
   * [start, end): the tokens that turn's loss is taken over (its content and whatever
   * end-of-turn text the template writes after it).
   */
  assistantSpans(messages: ChatMessage[]): { ids: number[]; spans: Array<[number, number]> } {
    const full = this.render(messages, false);
    const ids = this.encode(full);
    const spans: Array<[number, number]> = [];
    for (let k = 0; k < messages.length; k++) {
      if (messages[k].role !== 'assistant') continue;
      const before = this.render(messages.slice(0, k), true);
      const through = this.render(messages.slice(0, k + 1), false);
      // A template whose rendering of earlier turns depends on later ones (some strip
      // reasoning from all but the last assistant turn) has no stable prefixes.
      if (!full.startsWith(before) || !full.startsWith(through)) {
        throw new Error(
          'the chat template renders a conversation prefix differently from the start of the whole ' +
          'conversation, so assistant turns cannot be located; use train_on_prompt: true',
        );
      }
      spans.push([commonPrefix(this.encode(before), ids), commonPrefix(this.encode(through), ids)]);
    }
    return { ids, spans };
  }
}

/** How many leading ids `a` and `b` share. */
export function commonPrefix(a: number[], b: number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}
